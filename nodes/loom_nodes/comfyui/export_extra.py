"""Exports that depend on a node's values: LoRA (with or without a text encoder), thresholds,
mask combinations, alpha masks, latent compositing and blending, CLIP skip, ControlNet, the
advanced sampler and the flow models' shift. Each writes the ComfyUI node(s) that compute what the Loom
node computes, or reports why it cannot."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from loom.workflow import is_link

from .f32 import next_down

if TYPE_CHECKING:
    from .exporter import _Export

Writer = Callable[["_Export", str, dict[str, Any], dict[str, Any]], bool]
ARITHMETIC = ("add", "subtract", "multiply")


def load_lora(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """LoraLoader when a text encoder is linked, else LoraLoaderModelOnly."""
    inputs = {"lora_name": given.get("lora"), "strength_model": given["strength_model"],
              "model": given.get("denoiser")}
    class_type = "LoraLoaderModelOnly"
    if given.get("text_encoder") is not None:
        class_type = "LoraLoader"
        inputs.update(strength_clip=given["strength_clip"], clip=given["text_encoder"])
    job.emit(nid, class_type, {k: job.value(nid, k, v) for k, v in inputs.items()}, entry)
    job.mapped(nid, class_type)
    return True


def threshold_mask(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """ThresholdMask keeps values above its value: the float32 just below Loom's level."""
    level = given["level"]
    value = level
    if isinstance(level, (int, float)) and not isinstance(level, bool):
        value = next_down(float(level))
        if float(level) <= 0.0:
            value = 0.0
            job.changed(nid, "level 0 keeps every pixel; ComfyUI's lowest threshold (0) drops the "
                             "pixels that are exactly 0")
    job.emit(nid, "ThresholdMask", {"mask": job.value(nid, "mask", given.get("mask")),
                                    "value": job.value(nid, "level", value)}, entry)
    job.mapped(nid, "ThresholdMask")
    return True


def combine_masks(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """MaskComposite at 0, 0 for add / subtract / multiply (max and min have no exact match)."""
    op = given["operation"]
    if op not in ARITHMETIC:
        job.unmapped(nid, f"operation {op!r}: ComfyUI's MaskComposite has and/or, which round "
                          "the masks to 0 or 1 first; left out")
        return False
    inputs = {"destination": job.value(nid, "a", given.get("a")),
              "source": job.value(nid, "b", given.get("b")), "x": 0, "y": 0, "operation": op}
    job.emit(nid, "MaskComposite", inputs, entry)
    job.mapped(nid, "MaskComposite")
    return True


def mask_from_alpha(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """ImageToMask (alpha) gives the alpha as it is: Loom's invert on; invert off adds an InvertMask."""
    invert = given["invert"]
    if is_link(invert):
        job.unmapped(nid, "invert comes from a link; ComfyUI needs it fixed; left out")
        return False
    image = job.value(nid, "image", given.get("image"))
    if invert:
        job.emit(nid, "ImageToMask", {"image": image, "channel": "alpha"}, entry)
        job.mapped(nid, "ImageToMask")
        return True
    alpha = f"{nid}_alpha"
    job.emit(alpha, "ImageToMask", {"image": image, "channel": "alpha"}, {})
    job.emit(nid, "InvertMask", {"mask": [alpha, 0]}, entry)
    job.mapped(nid, f"InvertMask + ImageToMask {alpha}")
    return True


def latent_composite(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """LatentComposite (feathered, no mask) or LatentCompositeMasked (a mask, no feathering)."""
    inputs = {"x": job.value(nid, "x", given["x"]), "y": job.value(nid, "y", given["y"])}
    dest, src = job.value(nid, "destination", given.get("destination")), job.value(nid, "source", given.get("source"))
    if given.get("mask") is None:
        inputs.update(samples_to=dest, samples_from=src, feather=job.value(nid, "feather", given["feather"]))
        class_type = "LatentComposite"
    elif given["feather"] == 0:
        inputs.update(destination=dest, source=src, resize_source=False,
                      mask=job.value(nid, "mask", given["mask"]))
        class_type = "LatentCompositeMasked"
    else:
        job.unmapped(nid, "a mask and feathered edges together: ComfyUI's LatentComposite has no "
                          "mask and LatentCompositeMasked no feathering; left out")
        return False
    job.emit(nid, class_type, inputs, entry)
    job.mapped(nid, class_type)
    return True


def latent_blend(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """LatentBlend weighs samples1 by blend_factor: 1 − Loom's factor."""
    factor = given["factor"]
    if is_link(factor):
        job.unmapped(nid, "factor comes from a link; ComfyUI's blend_factor weighs the other "
                          "latent (1 − factor); left out")
        return False
    inputs = {"samples1": job.value(nid, "a", given.get("a")), "samples2": job.value(nid, "b", given.get("b")),
              "blend_factor": round(1.0 - float(factor), 10), "blend_mode": "normal"}
    job.emit(nid, "LatentBlend", inputs, entry)
    job.mapped(nid, "LatentBlend")
    return True


def clip_set_last_layer(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """CLIPSetLastLayer −k for clip_skip k (0 and 1: −1, the encoder as it is)."""
    skip = given["clip_skip"]
    layer = skip if is_link(skip) else -max(1, int(skip))
    if is_link(skip):
        job.changed(nid, "clip_skip comes from a link: ComfyUI counts the layer down (−2 for 2)")
    job.emit(nid, "CLIPSetLastLayer", {"clip": job.value(nid, "encoder", given.get("encoder")),
                                       "stop_at_clip_layer": job.value(nid, "clip_skip", layer)}, entry)
    job.mapped(nid, "CLIPSetLastLayer")
    return True


def apply_controlnet(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """ControlNetApply: a full window and no inpainting mask only."""
    if given["start_percent"] != 0.0 or given["end_percent"] != 1.0 or given.get("mask") is not None:
        job.unmapped(nid, "a step window or a mask: ComfyUI's ControlNetApply has neither (its "
                          "advanced node needs a negative); left out")
        return False
    inputs = {"conditioning": job.value(nid, "conditioning", given.get("conditioning")),
              "control_net": job.value(nid, "control_net", given.get("control_net")),
              "image": job.value(nid, "image", given.get("image")),
              "strength": job.value(nid, "strength", given["strength"])}
    job.emit(nid, "ControlNetApply", inputs, entry)
    job.mapped(nid, "ControlNetApply")
    return True


def sampler_custom(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """SamplerCustom (its scheduler as KSamplerSelect): the whole of the linked sigmas, with the
    leftover noise of a schedule that ends above 0 — what SamplerCustom's output is."""
    sched = given.get("scheduler")
    whole = given["start_step"] == 0 and given["end_step"] >= 10000 and given["return_with_leftover_noise"] is True
    if not (whole and is_link(sched)) or given.get("mask") is not None:
        job.unmapped(nid, "linked sigmas with a step window, a noise mask or a clean last step: "
                          "ComfyUI's SamplerCustom runs the whole schedule and KSamplerAdvanced "
                          "takes no sigmas; left out")
        return False
    add_noise = given["add_noise"]
    inputs = {"add_noise": job.value(nid, "add_noise", add_noise), "noise_seed": job.value(nid, "seed", given["seed"]),
              "cfg": job.value(nid, "cfg", given["cfg"]), "model": job.value(nid, "denoiser", given.get("denoiser")),
              "positive": job.value(nid, "positive", given.get("positive")),
              "negative": job.value(nid, "negative", given.get("negative")),
              "sampler": [str(sched["node"]), 0], "sigmas": job.value(nid, "sigmas", given.get("sigmas")),
              "latent_image": job.value(nid, "latent", given.get("latent"))}
    job.emit(nid, "SamplerCustom", inputs, entry)
    job.mapped(nid, "SamplerCustom")
    return True


def sample_advanced(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """KSamplerAdvanced: the same window, add_noise and leftover noise ("enable"/"disable")."""
    if given.get("sigmas") is not None:
        return sampler_custom(job, nid, entry, given)
    sampler_name, scheduler = job.sampler_names(nid, given)
    latent, masked = job.noise_masked(nid, given)

    def flag(name: str) -> Any:
        v = given[name]
        return job.value(nid, name, v) if is_link(v) else ("enable" if v else "disable")

    inputs = {"add_noise": flag("add_noise"), "noise_seed": job.value(nid, "seed", given["seed"]),
              "steps": job.value(nid, "steps", given["steps"]), "cfg": job.value(nid, "cfg", given["cfg"]),
              "sampler_name": sampler_name, "scheduler": scheduler,
              "start_at_step": job.value(nid, "start_step", given["start_step"]),
              "end_at_step": job.value(nid, "end_step", given["end_step"]),
              "return_with_leftover_noise": flag("return_with_leftover_noise"),
              "model": job.value(nid, "denoiser", given.get("denoiser")),
              "positive": job.value(nid, "positive", given.get("positive")),
              "negative": job.value(nid, "negative", given.get("negative")), "latent_image": latent}
    job.emit(nid, "KSamplerAdvanced", inputs, entry)
    job.mapped(nid, f"KSamplerAdvanced ({sampler_name}, {scheduler}){masked}")
    return True


def model_sampling_flow(job: "_Export", nid: str, entry: dict[str, Any], given: dict[str, Any]) -> bool:
    """ModelSamplingSD3 (fixed shift) or ModelSamplingFlux (dynamic: ComfyUI fixes the shift from
    a width and height, written as 1024 × 1024)."""
    model = job.value(nid, "denoiser", given.get("denoiser"))
    if given["mode"] == "fixed":
        job.emit(nid, "ModelSamplingSD3", {"shift": job.value(nid, "shift", given["shift"]), "model": model}, entry)
        job.mapped(nid, "ModelSamplingSD3")
        return True
    if given["mode"] != "dynamic":
        job.unmapped(nid, f"mode {given['mode']!r} comes from a link; ComfyUI has one node per mode; left out")
        return False
    job.emit(nid, "ModelSamplingFlux", {"max_shift": job.value(nid, "max_shift", given["max_shift"]),
                                        "base_shift": job.value(nid, "base_shift", given["base_shift"]),
                                        "width": 1024, "height": 1024, "model": model}, entry)
    job.changed(nid, "width/height 1024: ComfyUI computes the shift once from these, Loom from each "
                     "latent's size (set them to the image size in ComfyUI)")
    job.mapped(nid, "ModelSamplingFlux")
    return True


# Loom type → (its outputs by ComfyUI slot, the writer)
CUSTOM: dict[str, tuple[tuple[str, ...], Writer]] = {
    "load_lora": (("denoiser", "text_encoder"), load_lora),
    "threshold_mask": (("mask",), threshold_mask),
    "combine_masks": (("mask",), combine_masks),
    "mask_from_alpha": (("mask",), mask_from_alpha),
    "latent_composite": (("latent",), latent_composite),
    "latent_blend": (("latent",), latent_blend),
    "clip_set_last_layer": (("text_encoder",), clip_set_last_layer),
    "apply_controlnet": (("conditioning",), apply_controlnet),
    "sample_advanced": (("latent",), sample_advanced),
    "model_sampling_flow": (("denoiser",), model_sampling_flow),
}
