"""Masks: solid, invert, grow, threshold, combine, crop, and the image ⇄ mask conversions.

ComfyUI's masks are (B, H, W) with 1 = the area to change, Loom's (B, 1, H, W) with the same
meaning, so values carry over one for one; where the operations differ the report says how.
"""
from __future__ import annotations

from typing import Any

from .context import Mapper
from .f32 import next_up
from .model import CNode, as_float, as_int
from .table import Spec, define, direct, is_value, ranged, unmapped

FAMILY = "mask"
SIZE = ranged(1, 16384, "mask size")
ARITHMETIC = ("multiply", "add", "subtract")
BOOLEAN_OPS = {"and": "min", "or": "max"}


def grow_mask(ctx: Mapper, node: CNode) -> None:
    """GrowMask → grow_mask: ComfyUI repeats a 3×3 step ``expand`` times (a diamond with
    tapered corners, else a square); Loom grows by a round disk of the same radius."""
    expand = as_int(ctx.value(node, "expand", 0))
    tapered = ctx.value(node, "tapered_corners", True)
    inputs: dict[str, Any] = {"mask": ctx.value(node, "mask")}
    if expand is not ctx.ABSENT:
        inputs["radius"] = ranged(-1024, 1024, "grow radius")(ctx, node, "expand", expand) \
            if is_value(expand) else expand
    nid = ctx.add(node, "grow_mask", inputs)
    ctx.output(node, 0, ctx.link(nid, "mask"))
    shape = "a diamond (tapered corners)" if tapered is not False else "a square"
    ctx.mapped(node, [nid], "approximate", f"ComfyUI grows by {shape} of that radius, Loom by a "
                                           "round disk: edges match, corners differ")


def threshold_mask(ctx: Mapper, node: CNode) -> None:
    """ThresholdMask → threshold_mask: ComfyUI keeps values above ``value``, Loom those at or
    above its level; the next float32 up gives exactly the same pixels."""
    value = as_float(ctx.value(node, "value", 0.5))
    inputs: dict[str, Any] = {"mask": ctx.value(node, "mask")}
    status = "exact"
    if isinstance(value, float):
        level = next_up(min(max(value, 0.0), 1.0))
        if level > 1.0:
            level, status = 1.0, "approximate"
            ctx.changed(node, "value", value, level, "no mask value is above 1, so ComfyUI keeps "
                                                     "nothing; Loom keeps the values that are 1")
        else:
            ctx.changed(node, "value", value, level, "ComfyUI keeps values above the threshold, "
                                                     "Loom at or above: the next float32 up keeps "
                                                     "the same pixels")
        inputs["level"] = level
    elif value is not ctx.ABSENT:
        inputs["level"] = value
        status = "approximate"
        ctx.note(node, "the threshold comes from a link: Loom also keeps values equal to it")
    nid = ctx.add(node, "threshold_mask", inputs)
    ctx.output(node, 0, ctx.link(nid, "mask"))
    ctx.mapped(node, [nid], status)


def mask_composite(ctx: Mapper, node: CNode) -> None:
    """MaskComposite at x = y = 0 → combine_masks; an offset source, or xor, has no Loom node."""
    x, y = as_int(ctx.value(node, "x", 0)), as_int(ctx.value(node, "y", 0))
    op = ctx.value(node, "operation", "multiply")
    if not (x == 0 and y == 0):
        ctx.placeholder(node, f"a source placed at x={x!r}, y={y!r}: Loom's combine_masks "
                              "combines masks of the same size in place (no offset)")
        return
    if op not in ARITHMETIC and op not in BOOLEAN_OPS:
        ctx.placeholder(node, f"operation {op!r}: Loom's combine_masks has no such operation")
        return
    loom_op = op if op in ARITHMETIC else BOOLEAN_OPS[op]
    nid = ctx.add(node, "combine_masks", {"a": ctx.value(node, "destination"),
                                          "b": ctx.value(node, "source"), "operation": loom_op})
    ctx.output(node, 0, ctx.link(nid, "mask"))
    if op in BOOLEAN_OPS:
        ctx.changed(node, "operation", op, loom_op, "ComfyUI rounds both masks to 0 or 1 first; "
                                                    "the same for hard masks")
        ctx.mapped(node, [nid], "approximate")
        return
    ctx.mapped(node, [nid], "exact", "for a source the size of the destination (Loom stretches "
                                     "another size over it, ComfyUI combines the overlap)")


def image_to_mask(ctx: Mapper, node: CNode) -> None:
    """ImageToMask: alpha → mask_from_alpha (as it is); a colour channel → mask_from_luminance,
    the same for grey images (a mask saved as a picture), not for colour ones."""
    channel = ctx.value(node, "channel", "red")
    image = ctx.value(node, "image")
    if channel == "alpha":
        nid = ctx.add(node, "mask_from_alpha", {"image": image, "invert": True})
        ctx.output(node, 0, ctx.link(nid, "mask"))
        ctx.mapped(node, [nid], "exact", "invert on: the alpha channel as it is")
        return
    nid = ctx.add(node, "mask_from_luminance", {"image": image})
    ctx.output(node, 0, ctx.link(nid, "mask"))
    ctx.changed(node, "channel", channel, "luminance", "Loom has no single-channel mask; the "
                                                       "luminance equals the channel in grey images")
    ctx.mapped(node, [nid], "approximate")


def crop_mask(ctx: Mapper, node: CNode) -> None:
    """CropMask → mask_to_image, crop_image, mask_from_luminance (Loom crops images only)."""
    to_image = ctx.add(node, "mask_to_image", {"mask": ctx.value(node, "mask")}, suffix="image")
    values: dict[str, Any] = {"image": ctx.link(to_image, "image")}
    for name, fix in (("x", ranged(0, 8192)), ("y", ranged(0, 8192)), ("width", ranged(1, 8192)),
                      ("height", ranged(1, 8192))):
        v = ctx.value(node, name)
        if v is not ctx.ABSENT:
            values[name] = fix(ctx, node, name, as_int(v)) if is_value(v) else v
    crop = ctx.add(node, "crop_image", values)
    back = ctx.add(node, "mask_from_luminance", {"image": ctx.link(crop, "image")}, suffix="mask")
    ctx.output(node, 0, ctx.link(back, "mask"))
    ctx.mapped(node, [to_image, crop, back], "approximate",
               "a grey image cropped and read back (values may differ in the last float bit); a "
               "box past the edge is an error in Loom, ComfyUI cuts it short")


define(Spec("SolidMask", FAMILY, ("value", "width", "height"), outputs=("MASK",), loom="solid_mask",
            status="exact", display="SolidMask",
            handler=direct("solid_mask", {"value": "value", "width": "width", "height": "height"},
                           ("mask",), {"width": SIZE, "height": SIZE, "value": ranged(0.0, 1.0)})))
define(Spec("InvertMask", FAMILY, inputs=("mask",), outputs=("MASK",), loom="invert_mask",
            status="exact", display="InvertMask",
            handler=direct("invert_mask", {"mask": "mask"}, ("mask",))))
define(Spec("MaskToImage", FAMILY, inputs=("mask",), outputs=("IMAGE",), loom="mask_to_image",
            status="exact", display="Convert Mask to Image",
            handler=direct("mask_to_image", {"mask": "mask"}, ("image",))))
define(Spec("ImageToMask", FAMILY, ("channel",), inputs=("image",), outputs=("MASK",),
            loom="mask_from_alpha / mask_from_luminance", status="approximate", handler=image_to_mask,
            display="Convert Image to Mask",
            note="alpha is exact; red/green/blue become the luminance (the same in grey images)"))
define(Spec("ThresholdMask", FAMILY, ("value",), inputs=("mask",), outputs=("MASK",),
            loom="threshold_mask", status="exact", handler=threshold_mask, display="ThresholdMask",
            note="the level is the next float32 above the value (ComfyUI keeps values above it)"))
define(Spec("GrowMask", FAMILY, ("expand", "tapered_corners"), inputs=("mask",), outputs=("MASK",),
            loom="grow_mask", status="approximate", handler=grow_mask, display="GrowMask",
            note="a round disk instead of a diamond (tapered) or square; radius up to 1024"))
define(Spec("MaskComposite", FAMILY, ("x", "y", "operation"), inputs=("destination", "source"),
            outputs=("MASK",), loom="combine_masks", status="approximate", handler=mask_composite,
            display="MaskComposite",
            note="x = y = 0 only; multiply/add/subtract exact for same-size masks, and/or become "
                 "min/max (exact for hard masks), xor: no Loom operation"))
define(Spec("CropMask", FAMILY, ("x", "y", "width", "height"), inputs=("mask",), outputs=("MASK",),
            loom="mask_to_image → crop_image → mask_from_luminance", status="approximate",
            handler=crop_mask, display="CropMask", note="three Loom nodes; the box must lie inside"))
unmapped("FeatherMask", FAMILY, "no Loom node yet: ComfyUI's FeatherMask fades the mask towards the "
         "image's borders (a linear ramp per side); Loom's feather_mask blurs the mask's own edges",
         ("left", "top", "right", "bottom"), ("mask",), ("MASK",), display="FeatherMask")
