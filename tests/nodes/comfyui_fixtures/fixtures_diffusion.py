"""Fixtures for the latent, conditioning, ControlNet and custom-sampling nodes (see build_fixtures.py)."""
from __future__ import annotations

from typing import Any

from comfy_builder import UI, api

NEG = "blurry, low quality"


def latent_conditioning_ops() -> dict[str, Any]:
    """Latent batches and compositing, conditioning ops, Canny + ControlNetApply, CLIP skip, a
    base/refiner KSamplerAdvanced pair, latent files and an inpainting-model conditioning."""
    return api(
        ("1", "CheckpointLoaderSimple", {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}),
        ("2", "CLIPSetLastLayer", {"stop_at_clip_layer": -2, "clip": ["1", 1]}),
        ("3", "CLIPTextEncode", {"text": "a lighthouse at dusk", "clip": ["2", 0]}),
        ("4", "CLIPTextEncode", {"text": NEG, "clip": ["2", 0]}),
        ("5", "CLIPTextEncode", {"text": "a stormy sea", "clip": ["2", 0]}),
        ("6", "ConditioningConcat", {"conditioning_to": ["3", 0], "conditioning_from": ["5", 0]}),
        ("7", "ConditioningAverage", {"conditioning_to_strength": 0.7, "conditioning_to": ["6", 0],
                                      "conditioning_from": ["3", 0]}),
        ("8", "ConditioningZeroOut", {"conditioning": ["4", 0]}),
        ("9", "LoadImage", {"image": "lighthouse.png", "upload": "image"}),
        ("10", "Canny", {"low_threshold": 0.4, "high_threshold": 0.8, "image": ["9", 0]}),
        ("11", "ControlNetLoader", {"control_net_name": "control_v11p_sd15_canny.pth"}),
        ("12", "ControlNetApply", {"strength": 0.8, "conditioning": ["7", 0], "control_net": ["11", 0],
                                   "image": ["10", 0]}),
        ("13", "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 4}),
        ("14", "LatentFromBatch", {"batch_index": 1, "length": 2, "samples": ["13", 0]}),
        ("15", "RepeatLatentBatch", {"amount": 2, "samples": ["14", 0]}),
        ("16", "LatentBatch", {"samples1": ["15", 0], "samples2": ["13", 0]}),
        ("17", "KSamplerAdvanced", {"add_noise": "enable", "noise_seed": 7, "steps": 30, "cfg": 6,
                                    "sampler_name": "euler", "scheduler": "karras", "start_at_step": 0,
                                    "end_at_step": 20, "return_with_leftover_noise": "enable",
                                    "model": ["1", 0], "positive": ["12", 0], "negative": ["8", 0],
                                    "latent_image": ["16", 0]}),
        ("18", "KSamplerAdvanced", {"add_noise": "disable", "noise_seed": 7, "steps": 30, "cfg": 6,
                                    "sampler_name": "euler", "scheduler": "karras", "start_at_step": 20,
                                    "end_at_step": 10000, "return_with_leftover_noise": "disable",
                                    "model": ["1", 0], "positive": ["12", 0], "negative": ["8", 0],
                                    "latent_image": ["17", 0]}),
        ("19", "LatentCrop", {"width": 256, "height": 256, "x": 64, "y": 64, "samples": ["18", 0]}),
        ("20", "SolidMask", {"value": 1.0, "width": 256, "height": 256}),
        ("21", "LatentCompositeMasked", {"x": 128, "y": 128, "resize_source": False, "destination": ["18", 0],
                                         "source": ["19", 0], "mask": ["20", 0]}),
        ("22", "LatentComposite", {"x": 0, "y": 0, "feather": 16, "samples_to": ["21", 0],
                                   "samples_from": ["19", 0]}),
        ("23", "LatentBlend", {"blend_factor": 0.25, "blend_mode": "normal", "samples1": ["22", 0],
                               "samples2": ["18", 0]}),
        ("24", "SaveLatent", {"filename_prefix": "latents/lighthouse", "samples": ["23", 0]}),
        ("25", "LoadLatent", {"latent": "lighthouse_00001_.latent"}),
        ("26", "SetLatentNoiseMask", {"samples": ["25", 0], "mask": ["9", 1]}),
        ("27", "InpaintModelConditioning", {"noise_mask": True, "positive": ["3", 0], "negative": ["4", 0],
                                            "vae": ["1", 2], "pixels": ["9", 0], "mask": ["9", 1]}),
        ("28", "KSampler", {"seed": 3, "steps": 20, "cfg": 7, "sampler_name": "euler", "scheduler": "normal",
                            "denoise": 0.6, "model": ["1", 0], "positive": ["27", 0], "negative": ["27", 1],
                            "latent_image": ["26", 0]}),
        ("29", "VAEDecode", {"samples": ["28", 0], "vae": ["1", 2]}),
        ("30", "SaveImage", {"filename_prefix": "lighthouse", "images": ["29", 0]}))


def custom_sampling() -> UI:
    """SamplerCustom twice on the two halves of a Karras schedule (KSamplerSelect, SplitSigmas),
    and a BasicScheduler at denoise 0.5 flipped for unsampling."""
    g = UI()
    ckpt = g.node("CheckpointLoaderSimple", (20, 80), ["dreamshaper_8.safetensors"], (315, 98))
    pos = g.node("CLIPTextEncode", (400, 40), ["a paper boat on a pond"], (400, 160))
    neg = g.node("CLIPTextEncode", (400, 240), [NEG], (400, 160))
    empty = g.node("EmptyLatentImage", (20, 260), [512, 512, 1], (315, 106))
    select = g.node("KSamplerSelect", (20, 400), ["euler"], (315, 58))
    karras = g.node("KarrasScheduler", (20, 500), [20, 14.614642, 0.0291675, 7.0], (315, 130))
    split = g.node("SplitSigmas", (400, 500), [12], (315, 78))
    high = g.node("SamplerCustom", (860, 40), [True, 42, "fixed", 7.0], (355, 230))
    low = g.node("SamplerCustom", (1240, 40), [False, 42, "fixed", 7.0], (355, 230))
    basic = g.node("BasicScheduler", (400, 640), ["karras", 10, 0.5], (315, 106))
    flip = g.node("FlipSigmas", (760, 640), [], (140, 26))
    dec = g.node("VAEDecode", (1620, 40), [], (210, 46))
    save = g.node("SaveImage", (1860, 40), ["boat"], (315, 270))
    for a, s, b, name in ((ckpt, 1, pos, "clip"), (ckpt, 1, neg, "clip"), (karras, 0, split, "sigmas"),
                          (ckpt, 0, high, "model"), (pos, 0, high, "positive"), (neg, 0, high, "negative"),
                          (select, 0, high, "sampler"), (split, 0, high, "sigmas"), (empty, 0, high, "latent_image"),
                          (ckpt, 0, low, "model"), (pos, 0, low, "positive"), (neg, 0, low, "negative"),
                          (select, 0, low, "sampler"), (split, 1, low, "sigmas"), (high, 0, low, "latent_image"),
                          (ckpt, 0, basic, "model"), (basic, 0, flip, "sigmas"),
                          (low, 0, dec, "samples"), (ckpt, 2, dec, "vae"), (dec, 0, save, "images")):
        g.link(a, s, b, name)
    return g
