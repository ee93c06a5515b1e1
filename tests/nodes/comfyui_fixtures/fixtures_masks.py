"""Fixtures for the mask, compositing, upscale and LoRA mappings (see build_fixtures.py)."""
from __future__ import annotations

from typing import Any

from comfy_builder import UI, api

NEG = "lowres, smudged"


def inpaint_paste_back() -> UI:
    """Inpaint a masked region, then paste the result back onto the untouched original."""
    g = UI()
    ckpt = g.node("CheckpointLoaderSimple", (20, 120), ["realisticVision_v51.safetensors"])
    pos = g.node("CLIPTextEncode", (400, 40), ["a silver pendant necklace"], (400, 160))
    neg = g.node("CLIPTextEncode", (400, 240), [NEG], (400, 160))
    img = g.node("LoadImage", (20, 420), ["portrait.png", "image"], (315, 314))
    grow = g.node("GrowMask", (400, 460), [12, True], (315, 82), title="Grow the mask")
    hard = g.node("ThresholdMask", (400, 580), [0.5], (315, 58))
    solid = g.node("SolidMask", (20, 780), [1.0, 512, 512], (315, 106))
    both = g.node("MaskComposite", (400, 680), [0, 0, "multiply"], (315, 130))
    enc = g.node("VAEEncode", (760, 460), [], (210, 46))
    setm = g.node("SetLatentNoiseMask", (760, 560), [], (264, 46))
    ks = g.node("KSampler", (1060, 40), [314, "fixed", 25, 6.5, "dpmpp_2m", "karras", 0.85], (315, 262))
    dec = g.node("VAEDecode", (1420, 40), [], (210, 46))
    paste = g.node("ImageCompositeMasked", (1660, 40), [0, 0, False], (315, 146), title="Paste back")
    sharp = g.node("ImageSharpen", (2020, 40), [1, 1.0, 0.3], (315, 106))
    save = g.node("SaveImage", (2380, 40), ["inpaint/pasted"], (320, 300))
    show = g.node("MaskToImage", (760, 680), [], (210, 26))
    prev = g.node("PreviewImage", (1060, 680), [], (300, 300), title="Mask used")
    for a, s, b, name in ((ckpt, 1, pos, "clip"), (ckpt, 1, neg, "clip"), (img, 1, grow, "mask"),
                          (grow, 0, hard, "mask"), (hard, 0, both, "destination"), (solid, 0, both, "source"),
                          (img, 0, enc, "pixels"), (ckpt, 2, enc, "vae"), (enc, 0, setm, "samples"),
                          (both, 0, setm, "mask"), (ckpt, 0, ks, "model"), (pos, 0, ks, "positive"),
                          (neg, 0, ks, "negative"), (setm, 0, ks, "latent_image"), (ks, 0, dec, "samples"),
                          (ckpt, 2, dec, "vae"), (img, 0, paste, "destination"), (dec, 0, paste, "source"),
                          (grow, 0, paste, "mask"), (paste, 0, sharp, "image"), (sharp, 0, save, "images"),
                          (both, 0, show, "mask"), (show, 0, prev, "images")):
        g.link(a, s, b, name)
    g.group("Mask", [0, 380, 740, 540], "#88a")
    return g


def upscale_esrgan() -> UI:
    """A batch of four, two of them picked and enlarged with an ESRGAN model, then resized."""
    g = UI()
    ckpt = g.node("CheckpointLoaderSimple", (20, 300), ["v1-5-pruned-emaonly.safetensors"], (315, 98))
    pos = g.node("CLIPTextEncode", (400, 100), ["a lighthouse on a cliff, oil painting"], (420, 160))
    neg = g.node("CLIPTextEncode", (400, 320), [NEG], (420, 160))
    lat = g.node("EmptyLatentImage", (400, 540), [512, 512, 4], (315, 106))
    ks = g.node("KSampler", (880, 100), [9, "increment", 20, 7, "euler", "normal", 1.0], (315, 262))
    dec = g.node("VAEDecode", (1240, 100), [], (210, 46))
    pick = g.node("ImageFromBatch", (1240, 200), [1, 2], (315, 82))
    loader = g.node("UpscaleModelLoader", (1240, 320), ["RealESRGAN_x4plus.pth"], (315, 58))
    up = g.node("ImageUpscaleWithModel", (1600, 100), [], (241, 46))
    down = g.node("ImageScale", (1880, 100), ["bilinear", 1024, 1024, "disabled"], (315, 130))
    save = g.node("SaveImage", (2240, 100), ["upscaled/lighthouse"], (320, 300))
    for a, s, b, name in ((ckpt, 1, pos, "clip"), (ckpt, 1, neg, "clip"), (ckpt, 0, ks, "model"),
                          (pos, 0, ks, "positive"), (neg, 0, ks, "negative"), (lat, 0, ks, "latent_image"),
                          (ks, 0, dec, "samples"), (ckpt, 2, dec, "vae"), (dec, 0, pick, "image"),
                          (loader, 0, up, "upscale_model"), (pick, 0, up, "image"), (up, 0, down, "image"),
                          (down, 0, save, "images")):
        g.link(a, s, b, name)
    return g


def outpaint() -> dict[str, Any]:
    """Pad an image to the right, outpaint two variations; blur a preview of the mask."""
    return api(
        ("1", "CheckpointLoaderSimple", {"ckpt_name": "sd-v1-5-inpainting.ckpt"}),
        ("2", "LoadImage", {"image": "harbour.png", "upload": "image"}),
        ("3", "ImagePadForOutpaint", {"left": 0, "top": 0, "right": 256, "bottom": 64, "feathering": 40,
                                      "image": ["2", 0]}),
        ("4", "RepeatImageBatch", {"amount": 2, "image": ["3", 0]}),
        ("5", "CLIPTextEncode", {"text": "a harbour at dusk, boats, warm lights", "clip": ["1", 1]}),
        ("6", "CLIPTextEncode", {"text": NEG, "clip": ["1", 1]}),
        ("7", "VAEEncodeForInpaint", {"grow_mask_by": 8, "pixels": ["4", 0], "vae": ["1", 2],
                                      "mask": ["3", 1]}),
        ("8", "KSampler", {"seed": 12, "steps": 30, "cfg": 7, "sampler_name": "euler", "scheduler": "normal",
                           "denoise": 1, "model": ["1", 0], "positive": ["5", 0], "negative": ["6", 0],
                           "latent_image": ["7", 0]}),
        ("9", "VAEDecode", {"samples": ["8", 0], "vae": ["1", 2]}),
        ("10", "SaveImage", {"filename_prefix": "outpaint", "images": ["9", 0]}),
        ("11", "CropMask", {"x": 256, "y": 0, "width": 256, "height": 512, "mask": ["3", 1]}),
        ("12", "MaskToImage", {"mask": ["11", 0]}),
        ("13", "ImageBlur", {"blur_radius": 4, "sigma": 0.5, "image": ["12", 0]}),
        ("14", "ImageToMask", {"channel": "red", "image": ["13", 0]}),
        ("15", "MaskToImage", {"mask": ["14", 0]}),
        ("16", "PreviewImage", {"images": ["15", 0]}),
        titles={"3": "Pad right and bottom", "13": "Soft mask preview"})


def lora_stack() -> dict[str, Any]:
    """Two LoRAs, one for the model only, under an SD 1.5 text-to-image graph."""
    return api(
        ("1", "CheckpointLoaderSimple", {"ckpt_name": "dreamshaper_8.safetensors"}),
        ("2", "LoraLoader", {"lora_name": "styles\\ink_wash.safetensors", "strength_model": 0.7,
                             "strength_clip": 0.5, "model": ["1", 0], "clip": ["1", 1]}),
        ("3", "LoraLoaderModelOnly", {"lora_name": "detail_slider.safetensors", "strength_model": 6,
                                      "model": ["2", 0]}),
        ("4", "CLIPTextEncode", {"text": "a crane over a misty lake, ink wash", "clip": ["2", 1]}),
        ("5", "CLIPTextEncode", {"text": NEG, "clip": ["2", 1]}),
        ("6", "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
        ("7", "KSampler", {"seed": 8, "steps": 24, "cfg": 6, "sampler_name": "dpmpp_2m", "scheduler": "karras",
                           "denoise": 1, "model": ["3", 0], "positive": ["4", 0], "negative": ["5", 0],
                           "latent_image": ["6", 0]}),
        ("8", "VAEDecode", {"samples": ["7", 0], "vae": ["1", 2]}),
        ("9", "SaveImage", {"filename_prefix": "lora/crane", "images": ["8", 0]}),
        titles={"2": "Style LoRA", "3": "Detail LoRA (model only)"})
