"""Exports that depend on a node's values: LoRA (with or without a text encoder), thresholds,
mask combinations and alpha masks. Each writes the ComfyUI node(s) that compute what the Loom
node computes, or reports why it cannot."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from loom.workflow import is_link

from .f32 import next_down

if TYPE_CHECKING:
    from .export import _Export

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


# Loom type → (its outputs by ComfyUI slot, the writer)
CUSTOM: dict[str, tuple[tuple[str, ...], Writer]] = {
    "load_lora": (("denoiser", "text_encoder"), load_lora),
    "threshold_mask": (("mask",), threshold_mask),
    "combine_masks": (("mask",), combine_masks),
    "mask_from_alpha": (("mask",), mask_from_alpha),
}
