"""API-format fixture prompts (what ComfyUI's "Export (API)" writes; see build_fixtures.py)."""
from __future__ import annotations

from typing import Any

from comfy_builder import api

NEG = "text, watermark"


def sd15_txt2img() -> dict[str, Any]:
    return api(
        ("4", "CheckpointLoaderSimple", {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}),
        ("6", "CLIPTextEncode", {"text": "a red fox in fresh snow, morning light", "clip": ["4", 1]}),
        ("7", "CLIPTextEncode", {"text": NEG, "clip": ["4", 1]}),
        ("5", "EmptyLatentImage", {"width": 512, "height": 768, "batch_size": 2}),
        ("3", "KSampler", {"seed": 42, "steps": 25, "cfg": 6.5, "sampler_name": "euler_ancestral",
                           "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["6", 0],
                           "negative": ["7", 0], "latent_image": ["5", 0]}),
        ("8", "VAEDecode", {"samples": ["3", 0], "vae": ["4", 2]}),
        ("9", "SaveImage", {"filename_prefix": "fox", "images": ["8", 0]}),
        titles={"6": "Fox prompt", "4": "Load Checkpoint", "5": "Empty Latent Image",
                "8": "VAE Decode", "9": "Save Image", "7": "CLIP Text Encode (Prompt)"})


def sdxl_base_refiner() -> dict[str, Any]:
    text = "an origami crane on a desk"
    return api(
        ("1", "CheckpointLoaderSimple", {"ckpt_name": "sd_xl_base_1.0.safetensors"}),
        ("2", "CheckpointLoaderSimple", {"ckpt_name": "sd_xl_refiner_1.0.safetensors"}),
        ("3", "CLIPTextEncodeSDXL", {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0,
                                     "target_width": 1024, "target_height": 1024, "text_g": text,
                                     "text_l": text, "clip": ["1", 1]}),
        ("4", "CLIPTextEncodeSDXL", {"width": 1024, "height": 1024, "crop_w": 64, "crop_h": 0,
                                     "target_width": 1024, "target_height": 1024, "text_g": NEG,
                                     "text_l": NEG, "clip": ["1", 1]}),
        ("5", "CLIPTextEncodeSDXLRefiner", {"ascore": 6, "width": 1024, "height": 1024, "text": text,
                                            "clip": ["2", 1]}),
        ("6", "CLIPTextEncodeSDXLRefiner", {"ascore": 2.5, "width": 1024, "height": 1024, "text": NEG,
                                            "clip": ["2", 1]}),
        ("7", "EmptyLatentImage", {"width": 1024, "height": 1024, "batch_size": 1}),
        ("8", "KSamplerAdvanced", {"add_noise": "enable", "noise_seed": 5, "steps": 30, "cfg": 7,
                                   "sampler_name": "dpmpp_2m", "scheduler": "karras", "start_at_step": 0,
                                   "end_at_step": 24, "return_with_leftover_noise": "enable",
                                   "model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0],
                                   "latent_image": ["7", 0]}),
        ("9", "KSamplerAdvanced", {"add_noise": "disable", "noise_seed": 5, "steps": 30, "cfg": 7,
                                   "sampler_name": "dpmpp_2m", "scheduler": "karras", "start_at_step": 24,
                                   "end_at_step": 10000, "return_with_leftover_noise": "disable",
                                   "model": ["2", 0], "positive": ["5", 0], "negative": ["6", 0],
                                   "latent_image": ["8", 0]}),
        ("10", "VAEDecode", {"samples": ["9", 0], "vae": ["2", 2]}),
        ("11", "SaveImage", {"filename_prefix": "crane", "images": ["10", 0]}))


def img2img() -> dict[str, Any]:
    return api(
        ("1", "CheckpointLoaderSimple", {"ckpt_name": "models\\sd15\\deliberate_v2.safetensors"}),
        ("2", "LoadImage", {"image": "sketch.png", "upload": "image"}),
        ("3", "VAEEncode", {"pixels": ["2", 0], "vae": ["1", 2]}),
        ("4", "CLIPTextEncode", {"text": "a finished oil painting of the sketch", "clip": ["1", 1]}),
        ("5", "CLIPTextEncode", {"text": NEG, "clip": ["1", 1]}),
        ("6", "KSampler", {"seed": 9, "steps": 30, "cfg": 7, "sampler_name": "dpmpp_2m_sde_gpu",
                           "scheduler": "karras", "denoise": 0.6, "model": ["1", 0], "positive": ["4", 0],
                           "negative": ["5", 0], "latent_image": ["3", 0]}),
        ("7", "VAEDecode", {"samples": ["6", 0], "vae": ["1", 2]}),
        ("8", "PreviewImage", {"images": ["7", 0]}))


def inpaint() -> dict[str, Any]:
    return api(
        ("1", "CheckpointLoaderSimple", {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}),
        ("2", "LoadImage", {"image": "room.png", "upload": "image"}),
        ("3", "VAEEncodeForInpaint", {"grow_mask_by": 8, "pixels": ["2", 0], "vae": ["1", 2], "mask": ["2", 1]}),
        ("4", "CLIPTextEncode", {"text": "a potted fern", "clip": ["1", 1]}),
        ("5", "CLIPTextEncode", {"text": NEG, "clip": ["1", 1]}),
        ("6", "KSampler", {"seed": 3, "steps": 20, "cfg": 8, "sampler_name": "uni_pc", "scheduler": "simple",
                           "denoise": 1, "model": ["1", 0], "positive": ["4", 0], "negative": ["5", 0],
                           "latent_image": ["3", 0]}),
        ("7", "VAEDecode", {"samples": ["6", 0], "vae": ["1", 2]}),
        ("8", "SaveImage", {"filename_prefix": "inpaint", "images": ["7", 0]}))


def lora_controlnet() -> dict[str, Any]:
    return api(
        ("1", "CheckpointLoaderSimple", {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}),
        ("2", "LoraLoader", {"lora_name": "pixel_art.safetensors", "strength_model": 0.9,
                             "strength_clip": 1, "model": ["1", 0], "clip": ["1", 1]}),
        ("3", "CLIPTextEncode", {"text": "a pixel-art castle", "clip": ["2", 1]}),
        ("4", "CLIPTextEncode", {"text": NEG, "clip": ["2", 1]}),
        ("5", "ControlNetLoader", {"control_net_name": "control_v11f1p_sd15_depth.pth"}),
        ("6", "LoadImage", {"image": "depth.png", "upload": "image"}),
        ("7", "ControlNetApplyAdvanced", {"strength": 1, "start_percent": 0, "end_percent": 1,
                                          "positive": ["3", 0], "negative": ["4", 0],
                                          "control_net": ["5", 0], "image": ["6", 0]}),
        ("8", "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
        ("9", "KSampler", {"seed": 1, "steps": 20, "cfg": 7, "sampler_name": "euler", "scheduler": "normal",
                           "denoise": 1, "model": ["2", 0], "positive": ["7", 0], "negative": ["7", 1],
                           "latent_image": ["8", 0]}),
        ("10", "VAEDecode", {"samples": ["9", 0], "vae": ["1", 2]}),
        ("11", "SaveImage", {"filename_prefix": "castle", "images": ["10", 0]}))


def flux() -> dict[str, Any]:
    return api(
        ("1", "UNETLoader", {"unet_name": "flux1-schnell.safetensors", "weight_dtype": "fp8_e4m3fn"}),
        ("2", "DualCLIPLoader", {"clip_name1": "t5xxl_fp8_e4m3fn.safetensors", "clip_name2": "clip_l.safetensors",
                                 "type": "flux"}),
        ("3", "VAELoader", {"vae_name": "ae.safetensors"}),
        ("4", "CLIPTextEncode", {"text": "a hot-air balloon over a desert", "clip": ["2", 0]}),
        ("5", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}),
        ("6", "KSampler", {"seed": 8, "steps": 4, "cfg": 1, "sampler_name": "euler", "scheduler": "simple",
                           "denoise": 1, "model": ["1", 0], "positive": ["4", 0], "negative": ["4", 0],
                           "latent_image": ["5", 0]}),
        ("7", "VAEDecode", {"samples": ["6", 0], "vae": ["3", 0]}),
        ("8", "SaveImage", {"filename_prefix": "flux", "images": ["7", 0]}))


def custom_nodes() -> dict[str, Any]:
    p = sd15_txt2img()
    p["20"] = {"inputs": {"upscale_method": "bilinear", "width": 1024, "height": 1536, "crop": "disabled",
                          "samples": ["3", 0]}, "class_type": "LatentUpscale", "_meta": {"title": "Upscale Latent"}}
    p["21"] = {"inputs": {"strength": 0.3, "mode": "warm", "samples": ["20", 0]},
               "class_type": "OmegaLatentColorShift", "_meta": {"title": "Colour shift"}}
    p["8"]["inputs"]["samples"] = ["21", 0]
    return p


def prompt_wrapper() -> dict[str, Any]:
    return {"client_id": "c0ffee00-1234-4abc-8def-001122334455", "prompt": sd15_txt2img(),
            "extra_data": {"extra_pnginfo": {}}}


def bad_input() -> dict[str, Any]:
    p = sd15_txt2img()
    p["3"]["inputs"]["sampler_name"] = "my_custom_sampler"
    p["3"]["inputs"]["scheduler"] = "weird_schedule"
    p["3"]["inputs"]["steps"] = 5000
    p["8"]["inputs"]["vae"] = ["99", 2]
    p["12"] = "not a node"
    p["13"] = {"inputs": {"x": 1}}
    p["14"] = {"class_type": "VAEDecode", "inputs": ["samples", "vae"]}
    return p
