"""ComfyUI workflows for transformer models (Flux dev/schnell, SD3.5), as ComfyUI saves them.

    python tests/nodes/comfyui_fixtures/fixtures_transformers.py   # writes the five files

The graphs follow the shape of ComfyUI's published Flux and SD3.5 example workflows (the Flux
dev one with SamplerCustomAdvanced, BasicGuider and ModelSamplingFlux fed by width/height
primitives; SD3.5 with TripleCLIPLoader and a KSampler); prompts, seeds and values are made up.
Used by tests/nodes/test_comfyui_transformers.py.
"""
from __future__ import annotations

import json
from typing import Any

from comfy_builder import HERE, UI, C, L, M, V, api

F, INT = "FLOAT", "INT"
SIG: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "ModelSamplingFlux": ([("model", M), ("width", INT), ("height", INT)], [(M, M)]),
    "PrimitiveNode": ([], [(INT, INT)]),
    "CLIPTextEncodeSD3": ([("clip", "CLIP")], [(C, C)]),
    "EmptySD3LatentImage": ([("width", INT), ("height", INT)], [(L, L)]),
}


def _sig(type_: str) -> Any:
    return SIG.get(type_)


def ui_flux_dev() -> dict[str, Any]:
    """Flux dev, split sampling: UNETLoader + DualCLIPLoader + VAELoader, FluxGuidance,
    ModelSamplingFlux, BasicGuider / RandomNoise / KSamplerSelect / BasicScheduler →
    SamplerCustomAdvanced; width and height from primitives shared by the shift and the latent."""
    g = UI()
    unet = g.node("UNETLoader", (-20, 30), ["flux1-dev.safetensors", "default"], (315, 82),
                  properties={"cnr_id": "comfy-core", "ver": "0.3.40"})
    clip = g.node("DualCLIPLoader", (-20, 170),
                  ["t5xxl_fp16.safetensors", "clip_l.safetensors", "flux", "default"], (315, 130),
                  properties={"cnr_id": "comfy-core", "ver": "0.3.40"})
    vae = g.node("VAELoader", (-20, 360), ["ae.safetensors"], (315, 58))
    enc = g.node("CLIPTextEncode", (380, 170), ["a lighthouse keeper's cat asleep on a stack of charts, "
                                                "warm lamp light"], (422, 164), title="CLIP Text Encode (Positive Prompt)",
                 color="#232", bgcolor="#353")
    guid = g.node("FluxGuidance", (830, 170), [3.5], (317, 58))
    width = g.node("PrimitiveNode", (380, 420), [1024, "fixed"], (210, 82), sig=_sig("PrimitiveNode"),
                   title="width")
    height = g.node("PrimitiveNode", (380, 540), [1024, "fixed"], (210, 82), sig=_sig("PrimitiveNode"),
                    title="height")
    msf = g.node("ModelSamplingFlux", (830, 30), [1.15, 0.5, 1024, 1024], (315, 130), sig=_sig("ModelSamplingFlux"))
    lat = g.node("EmptySD3LatentImage", (830, 420), [1024, 1024, 1], (315, 106), sig=_sig("EmptySD3LatentImage"))
    noise = g.node("RandomNoise", (1200, 30), [219670278747233, "randomize"], (315, 82))
    guider = g.node("BasicGuider", (1200, 150), [], (222, 46))
    sel = g.node("KSamplerSelect", (1200, 230), ["euler"], (315, 58))
    sched = g.node("BasicScheduler", (1200, 330), ["simple", 20, 1.0], (315, 106))
    samp = g.node("SamplerCustomAdvanced", (1560, 30), [], (355, 326))
    dec = g.node("VAEDecode", (1960, 30), [], (210, 46))
    save = g.node("SaveImage", (2200, 30), ["flux_dev"], (640, 660))
    g.node("Note", (-20, 470), ["flux1-dev goes in models/diffusion_models, the text encoders in "
                                "models/text_encoders and ae.safetensors in models/vae."], (320, 120),
           sig=([], []))
    for a, s, b, name in ((clip, 0, enc, "clip"), (enc, 0, guid, "conditioning"), (unet, 0, msf, "model"),
                          (width, 0, msf, "width"), (height, 0, msf, "height"), (width, 0, lat, "width"),
                          (height, 0, lat, "height"), (msf, 0, guider, "model"), (guid, 0, guider, "conditioning"),
                          (msf, 0, sched, "model"), (noise, 0, samp, "noise"), (guider, 0, samp, "guider"),
                          (sel, 0, samp, "sampler"), (sched, 0, samp, "sigmas"), (lat, 0, samp, "latent_image"),
                          (samp, 0, dec, "samples"), (vae, 0, dec, "vae"), (dec, 0, save, "images")):
        g.link(a, s, b, name)
    for n in g.nodes:   # widgets converted to inputs are marked as such
        for inp in n["inputs"]:
            if inp["name"] in ("width", "height"):
                inp["widget"] = {"name": inp["name"]}
    g.group("Load models", [-40, -40, 360, 520])
    g.group("Sampling", [1180, -40, 760, 500], "#b06634")
    return g.json()


def api_flux_encode_beta() -> dict[str, Any]:
    """Flux (API format): CLIPTextEncodeFlux with its own guidance, a KSampler with cfg 1 on
    euler / beta, an fp8 "fast" transformer, ModelSamplingFlux and a zeroed negative."""
    return api(
        ("10", "UNETLoader", {"unet_name": "flux/flux1-dev-fp8.safetensors", "weight_dtype": "fp8_e4m3fn_fast"}),
        ("11", "DualCLIPLoader", {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp8_e4m3fn.safetensors",
                                  "type": "flux", "device": "default"}),
        ("12", "VAELoader", {"vae_name": "ae.safetensors"}),
        ("13", "ModelSamplingFlux", {"max_shift": 1.15, "base_shift": 0.5, "width": 1024, "height": 768,
                                     "model": ["10", 0]}),
        ("14", "CLIPTextEncodeFlux", {"clip_l": "a red bicycle, film photo",
                                      "t5xxl": "a red bicycle leaning on a blue door, film photo", "guidance": 4.0,
                                      "clip": ["11", 0]}),
        ("15", "ConditioningZeroOut", {"conditioning": ["14", 0]}),
        ("16", "EmptySD3LatentImage", {"width": 1024, "height": 768, "batch_size": 1}),
        ("17", "KSampler", {"seed": 42, "steps": 24, "cfg": 1.0, "sampler_name": "euler", "scheduler": "beta",
                            "denoise": 1.0, "model": ["13", 0], "positive": ["14", 0], "negative": ["15", 0],
                            "latent_image": ["16", 0]}),
        ("18", "VAEDecode", {"samples": ["17", 0], "vae": ["12", 0]}),
        ("19", "SaveImage", {"filename_prefix": "flux_beta", "images": ["18", 0]}),
        titles={"14": "Prompt (Flux)"})


def ui_sd35_large() -> dict[str, Any]:
    """SD3.5 Large: the checkpoint for the model and VAE, TripleCLIPLoader for the prompts,
    ModelSamplingSD3, CLIPTextEncodeSD3 and a KSampler (cfg 4.5, euler / sgm_uniform)."""
    g = UI()
    ckpt = g.node("CheckpointLoaderSimple", (20, 40), ["sd3.5_large.safetensors"], (380, 98))
    clip = g.node("TripleCLIPLoader", (20, 200), ["clip_l.safetensors", "clip_g.safetensors",
                                                  "t5xxl_fp16.safetensors"], (380, 106))
    shift = g.node("ModelSamplingSD3", (460, 40), [3.0], (315, 58))
    pos = g.node("CLIPTextEncodeSD3", (460, 160), ["a glass terrarium with a tiny waterfall",
                                                   "a glass terrarium with a tiny waterfall",
                                                   "a glass terrarium with a tiny waterfall, soft morning light",
                                                   "none"], (420, 300), sig=_sig("CLIPTextEncodeSD3"))
    neg = g.node("CLIPTextEncode", (460, 500), ["blurry, lowres"], (420, 120))
    lat = g.node("EmptySD3LatentImage", (460, 660), [1024, 1024, 1], (315, 106), sig=_sig("EmptySD3LatentImage"))
    ks = g.node("KSampler", (940, 40), [715, "fixed", 28, 4.5, "euler", "sgm_uniform", 1.0], (315, 262))
    dec = g.node("VAEDecode", (1300, 40), [], (210, 46))
    save = g.node("SaveImage", (1540, 40), ["sd35_large"], (480, 520))
    for a, s, b, name in ((ckpt, 0, shift, "model"), (clip, 0, pos, "clip"), (clip, 0, neg, "clip"),
                          (shift, 0, ks, "model"), (pos, 0, ks, "positive"), (neg, 0, ks, "negative"),
                          (lat, 0, ks, "latent_image"), (ks, 0, dec, "samples"), (ckpt, 2, dec, "vae"),
                          (dec, 0, save, "images")):
        g.link(a, s, b, name)
    return g.json()


def api_sd35_medium_img2img() -> dict[str, Any]:
    """SD3.5 Medium (API format) from separate files, image to image through CFGGuider,
    RandomNoise, KSamplerSelect (heun) and BasicScheduler (denoise 0.6)."""
    return api(
        ("1", "UNETLoader", {"unet_name": "sd3.5_medium.safetensors", "weight_dtype": "default"}),
        ("2", "TripleCLIPLoader", {"clip_name1": "t5xxl_fp8_e4m3fn.safetensors", "clip_name2": "clip_g.safetensors",
                                   "clip_name3": "clip_l.safetensors"}),
        ("3", "VAELoader", {"vae_name": "sd3_vae.safetensors"}),
        ("4", "LoadImage", {"image": "sketch.png", "upload": "image"}),
        ("5", "VAEEncode", {"pixels": ["4", 0], "vae": ["3", 0]}),
        ("6", "CLIPTextEncode", {"text": "a watercolor harbour at dusk", "clip": ["2", 0]}),
        ("7", "CLIPTextEncode", {"text": "text, watermark", "clip": ["2", 0]}),
        ("8", "CFGGuider", {"cfg": 5.0, "model": ["1", 0], "positive": ["6", 0], "negative": ["7", 0]}),
        ("9", "RandomNoise", {"noise_seed": 77}),
        ("10", "KSamplerSelect", {"sampler_name": "heun"}),
        ("11", "BasicScheduler", {"scheduler": "normal", "steps": 12, "denoise": 0.6, "model": ["1", 0]}),
        ("12", "SamplerCustomAdvanced", {"noise": ["9", 0], "guider": ["8", 0], "sampler": ["10", 0],
                                         "sigmas": ["11", 0], "latent_image": ["5", 0]}),
        ("13", "VAEDecode", {"samples": ["12", 0], "vae": ["3", 0]}),
        ("14", "SaveImage", {"filename_prefix": "sd35_img2img", "images": ["13", 0]}))


def api_sd35_all_in_one() -> dict[str, Any]:
    """SD3.5 Medium from the all-in-one checkpoint (its CLIPs and T5 inside), the simplest SD3
    workflow: ModelSamplingSD3, two CLIPTextEncodes, EmptySD3LatentImage, KSampler."""
    return api(
        ("4", "CheckpointLoaderSimple", {"ckpt_name": "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors"}),
        ("13", "ModelSamplingSD3", {"shift": 3.0, "model": ["4", 0]}),
        ("6", "CLIPTextEncode", {"text": "a tin robot watering a fern, studio light", "clip": ["4", 1]}),
        ("7", "CLIPTextEncode", {"text": "", "clip": ["4", 1]}),
        ("135", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}),
        ("3", "KSampler", {"seed": 314, "steps": 40, "cfg": 4.5, "sampler_name": "euler",
                           "scheduler": "sgm_uniform", "denoise": 1.0, "model": ["13", 0], "positive": ["6", 0],
                           "negative": ["7", 0], "latent_image": ["135", 0]}),
        ("8", "VAEDecode", {"samples": ["3", 0], "vae": ["4", 2]}),
        ("9", "SaveImage", {"filename_prefix": "sd35_medium", "images": ["8", 0]}),
        titles={"6": "Positive", "7": "Negative"})


BUILDERS = {"ui_flux_dev": ui_flux_dev, "api_flux_encode_beta": api_flux_encode_beta,
            "ui_sd35_large": ui_sd35_large, "api_sd35_medium_img2img": api_sd35_medium_img2img,
            "api_sd35_all_in_one": api_sd35_all_in_one}


def main() -> None:
    for name, build in BUILDERS.items():
        (HERE / f"{name}.json").write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
