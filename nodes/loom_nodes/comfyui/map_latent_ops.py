"""Latent operations: compositing, blending, cropping, batches, noise masks and latent files.

Positions and sizes are pixels in both (ComfyUI divides by 8, Loom by the latent's downscale,
8 for every model it loads), so they carry over one for one.
"""
from __future__ import annotations

from typing import Any

from .context import Mapper
from .map_image import image_name, prefix
from .model import CNode, as_float, as_int
from .table import Spec, define, direct, is_value, ranged

FAMILY = "latent"
OFFSET = ranged(0, 16384, "offset")
PIXELS = ranged(8, 16384, "size")
_L = ("LATENT",)


def _int(fix: Any) -> Any:
    """A coerce that reads an int first (UI files may hold 8.0)."""
    return lambda ctx, node, name, value: fix(ctx, node, name, as_int(value))


def latent_composite_masked(ctx: Mapper, node: CNode) -> None:
    """LatentCompositeMasked → latent_composite (no feathering; the mask, resized bilinearly
    to the source, weighs the paste). resize_source has no Loom counterpart."""
    inputs: dict[str, Any] = {"destination": ctx.value(node, "destination"),
                              "source": ctx.value(node, "source"), "feather": 0}
    for name in ("x", "y"):
        v = ctx.value(node, name)
        if v is not ctx.ABSENT:
            inputs[name] = _int(OFFSET)(ctx, node, name, v) if is_value(v) else v
    if "mask" in node.links:
        inputs["mask"] = ctx.value(node, "mask")
    nid = ctx.add(node, "latent_composite", inputs)
    ctx.output(node, 0, ctx.link(nid, "latent"))
    if ctx.value(node, "resize_source", False) is True:
        ctx.changed(node, "resize_source", True, False, "Loom pastes the source at its own size "
                                                        "(ComfyUI first stretches it over the destination)")
        ctx.mapped(node, [nid], "approximate")
        return
    ctx.mapped(node, [nid], "exact")


def latent_blend(ctx: Mapper, node: CNode) -> None:
    """LatentBlend (normal mode) → latent_blend: ComfyUI's ``samples1·f + samples2·(1 − f)``
    is Loom's ``a·(1 − factor) + b·factor`` with factor = 1 − f (samples1 stays ``a``, whose
    noise mask and batch indices are kept, as in ComfyUI)."""
    inputs: dict[str, Any] = {"a": ctx.value(node, "samples1"), "b": ctx.value(node, "samples2")}
    f = as_float(ctx.value(node, "blend_factor", 0.5))
    status = "exact"
    if isinstance(f, float):
        f = min(max(f, 0.0), 1.0)
        inputs["factor"] = round(1.0 - f, 10)
        ctx.changed(node, "blend_factor", f, inputs["factor"], "Loom's factor weighs the second "
                                                               "latent: 1 − blend_factor")
    elif f is not ctx.ABSENT:
        status = "approximate"
        ctx.note(node, "blend_factor comes from a link: Loom's factor weighs the other latent")
        inputs["factor"] = f
    mode = ctx.value(node, "blend_mode", "normal")
    if mode not in ("normal", ctx.ABSENT):
        ctx.changed(node, "blend_mode", mode, "normal", "Loom blends latents linearly only")
        status = "approximate"
    nid = ctx.add(node, "latent_blend", inputs)
    ctx.output(node, 0, ctx.link(nid, "latent"))
    ctx.mapped(node, [nid], status)


def set_latent_noise_mask(ctx: Mapper, node: CNode) -> None:
    """SetLatentNoiseMask → set_latent_noise_mask: the mask travels inside the latent, through
    crops, batches and upscales, to the sampler, as in ComfyUI."""
    direct("set_latent_noise_mask", {"samples": "latent", "mask": "mask"}, ("latent",))(ctx, node)


def save_latent(ctx: Mapper, node: CNode) -> None:
    """SaveLatent → save_latent (the file keeps ComfyUI's tensor names, so either reads it)."""
    inputs: dict[str, Any] = {"latent": ctx.value(node, "samples")}
    v = ctx.value(node, "filename_prefix")
    if v is not ctx.ABSENT:
        inputs["prefix"] = prefix(ctx, node, "filename_prefix", v) if is_value(v) else v
    nid = ctx.add(node, "save_latent", inputs)
    ctx.mapped(node, [nid], "exact", "written as <prefix>_NNNNN.safetensors (ComfyUI: "
                                     "<prefix>_NNNNN_.latent), the same tensors")


define(Spec("LatentComposite", FAMILY, ("x", "y", "feather"), inputs=("samples_to", "samples_from"),
            outputs=_L, loom="latent_composite", status="exact", display="Latent Composite",
            handler=direct("latent_composite", {"samples_to": "destination", "samples_from": "source",
                                                "x": "x", "y": "y", "feather": "feather"}, ("latent",),
                           {"x": _int(OFFSET), "y": _int(OFFSET), "feather": _int(OFFSET)}),
            note="feathered inner edges as ComfyUI ramps them"))
define(Spec("LatentCompositeMasked", FAMILY, ("x", "y", "resize_source"),
            inputs=("destination", "source", "mask"), outputs=_L, loom="latent_composite",
            status="exact", handler=latent_composite_masked, display="LatentCompositeMasked",
            note="resize_source (stretching the source over the destination) has no Loom counterpart"))
define(Spec("LatentBlend", FAMILY, ("blend_factor", "blend_mode"), variants=(("blend_factor",),),
            inputs=("samples1", "samples2"), outputs=_L, loom="latent_blend", status="exact",
            handler=latent_blend, display="Latent Blend",
            note="factor = 1 − blend_factor; same-size latents (ComfyUI resizes samples2 to samples1)"))
define(Spec("LatentCrop", FAMILY, ("width", "height", "x", "y"), inputs=("samples",), outputs=_L,
            loom="latent_crop", status="approximate", display="Crop Latent",
            handler=direct("latent_crop", {"samples": "latent", "x": "x", "y": "y", "width": "width",
                                           "height": "height"}, ("latent",),
                           {"x": _int(OFFSET), "y": _int(OFFSET), "width": _int(PIXELS),
                            "height": _int(PIXELS)}, "approximate"),
            note="the same for a box inside the latent; ComfyUI moves a box starting within 64 px "
                 "of the right/bottom edge back inside and keeps a noise mask uncropped, Loom clips "
                 "the box and crops the mask with it"))
define(Spec("LatentFromBatch", FAMILY, ("batch_index", "length"), inputs=("samples",), outputs=_L,
            loom="latent_from_batch", status="exact", display="Latent From Batch",
            handler=direct("latent_from_batch", {"samples": "latent", "batch_index": "index",
                                                 "length": "length"}, ("latent",),
                           {"batch_index": _int(ranged(0, 4095)), "length": _int(ranged(1, 4096))}),
            note="the images keep the noise they had in the batch"))
define(Spec("RepeatLatentBatch", FAMILY, ("amount",), inputs=("samples",), outputs=_L,
            loom="repeat_latent_batch", status="exact", display="Repeat Latent Batch",
            handler=direct("repeat_latent_batch", {"samples": "latent", "amount": "amount"}, ("latent",),
                           {"amount": _int(ranged(1, 64))})))
define(Spec("LatentBatch", FAMILY, inputs=("samples1", "samples2"), outputs=_L, loom="latent_batch",
            status="exact", display="Latent Batch",
            handler=direct("latent_batch", {"samples1": "a", "samples2": "b"}, ("latent",)),
            note="same-size latents (ComfyUI resizes samples2 to samples1; Loom refuses another size)"))
define(Spec("SetLatentNoiseMask", FAMILY, inputs=("samples", "mask"), outputs=_L,
            loom="set_latent_noise_mask", status="exact", handler=set_latent_noise_mask,
            display="Set Latent Noise Mask", note="the mask rides in the latent to the sampler"))
define(Spec("SaveLatent", FAMILY, ("filename_prefix",), inputs=("samples",), loom="save_latent",
            status="exact", handler=save_latent, display="SaveLatent",
            note="a .safetensors file with ComfyUI's tensor names"))
define(Spec("LoadLatent", FAMILY, ("latent",), outputs=_L, loom="load_latent", status="exact",
            display="LoadLatent",
            handler=direct("load_latent", {"latent": "name"}, ("latent",), {"latent": image_name}),
            note="from the input folder, .latent or .safetensors"))
