"""Images: load, save, preview, scale, crop, blend, invert, batch."""
from __future__ import annotations

import re
from typing import Any

from .context import Mapper
from .model import UPLOAD, CNode, as_float, as_int
from .table import NOT_YET, Spec, define, direct, is_value

FAMILY = "image"
IMAGE_METHODS = {"nearest-exact": "nearest", "bilinear": "bilinear", "area": "area",
                 "bicubic": "bicubic", "lanczos": "bicubic"}
BLEND_MODES = {"normal": "normal", "multiply": "multiply", "screen": "screen", "overlay": "overlay",
               "difference": "difference", "soft_light": "overlay"}
_PREFIX_BAD = re.compile(r"[^\w\-. /]")


def image_name(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    """An input image's name as Loom's upload list shows it (no folder annotation, '/')."""
    if not isinstance(value, str):
        return value
    return ctx.clean_name(node, name, value)


def prefix(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    """SaveImage's filename_prefix: Loom allows letters, digits, '-', '_', '.', spaces and '/'
    (ComfyUI's %date:…% and %Node.widget% tokens are dropped)."""
    if not isinstance(value, str):
        return value
    new = re.sub(r"%[^%]*%", "", value)
    new = _PREFIX_BAD.sub("_", new)
    new = "/".join(p for p in new.split("/") if p.strip(" .")) or "ComfyUI"
    if new != value:
        ctx.changed(node, name, value, new, "Loom's file prefixes take letters, digits, "
                                            "'-', '_', '.', spaces and '/' (no %tokens%)")
    return new


def size(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    """A pixel size within Loom's 0…8192 (0: keep the aspect ratio, as in ComfyUI)."""
    value = as_int(value)
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 8192:
        new = min(max(0, value), 8192)
        ctx.changed(node, name, value, new, "Loom's image sizes go from 0 to 8192")
        return new
    return value


def method(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    """ComfyUI's image scaling methods → Loom's."""
    new = IMAGE_METHODS.get(value, "bilinear")
    if new != value:
        why = ("torch's nearest picks pixel centres slightly differently" if value == "nearest-exact"
               else f"Loom has no {value!r} method")
        ctx.changed(node, name, value, new, why)
    return new


def blend_mode(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    """ComfyUI's blend modes → Loom's (soft light becomes overlay)."""
    new = BLEND_MODES.get(value, "normal")
    if new != value:
        ctx.changed(node, name, value, new, f"Loom has no {value!r} blend mode")
    return new


def image_scale(ctx: Mapper, node: CNode) -> None:
    """ImageScale → resize_image; a centre crop is not available (the image is stretched)."""
    crop = ctx.value(node, "crop", "disabled")
    if is_value(crop) and crop not in ("disabled", ctx.ABSENT):
        ctx.changed(node, "crop", crop, "disabled", "Loom's resize stretches to the size; "
                                                    "crop the image first to keep its aspect")
    direct("resize_image", {"image": "image", "width": "width", "height": "height",
                            "upscale_method": "method"}, ("image",),
           {"width": size, "height": size, "upscale_method": method}, status="exact")(ctx, node)


def load_image_mask(ctx: Mapper, node: CNode) -> None:
    """LoadImageMask: the alpha channel is load_image's mask; colour channels are not yet."""
    channel = ctx.value(node, "channel", "alpha")
    if channel != "alpha":
        ctx.placeholder(node, f"{NOT_YET}: a mask from the {channel!r} channel")
        return
    image = ctx.value(node, "image")
    nid = ctx.add(node, "load_image", {} if image is ctx.ABSENT else
                  {"image": image_name(ctx, node, "image", image) if is_value(image) else image})
    ctx.output(node, 0, ctx.link(nid, "mask"))
    ctx.mapped(node, [nid], "exact", "its mask output")


def _pos_int(lo: int, hi: int) -> Any:
    def fix(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
        value = as_int(value)
        if isinstance(value, int) and not isinstance(value, bool) and not lo <= value <= hi:
            new = min(max(lo, value), hi)
            ctx.changed(node, name, value, new, f"Loom's range is {lo} to {hi}")
            return new
        return value
    return fix


def _factor(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    value = as_float(value)
    if isinstance(value, float) and not 0.0 <= value <= 1.0:
        new = min(max(0.0, value), 1.0)
        ctx.changed(node, name, value, new, "Loom's blend factor goes from 0 to 1")
        return new
    return value


define(Spec("LoadImage", FAMILY, ("image", UPLOAD), outputs=("IMAGE", "MASK"), loom="load_image",
            status="exact", display="Load Image", note="the mask is 1 where the image is transparent",
            handler=direct("load_image", {"image": "image"}, ("image", "mask"), {"image": image_name})))
define(Spec("LoadImageMask", FAMILY, ("image", "channel", UPLOAD), outputs=("MASK",),
            loom="load_image (mask)", status="exact", handler=load_image_mask,
            display="Load Image (as Mask)", note="alpha only; colour channels: no Loom node yet"))
define(Spec("SaveImage", FAMILY, ("filename_prefix",), inputs=("images",), loom="save_image",
            status="exact", display="Save Image", note="%tokens% in the prefix are dropped",
            handler=direct("save_image", {"images": "images", "filename_prefix": "prefix"}, (),
                           {"filename_prefix": prefix})))
define(Spec("PreviewImage", FAMILY, inputs=("images",), loom="preview_image", status="exact",
            display="Preview Image", handler=direct("preview_image", {"images": "images"}, ())))
define(Spec("ImageScale", FAMILY, ("upscale_method", "width", "height", "crop"), inputs=("image",),
            outputs=("IMAGE",), loom="resize_image", status="approximate", handler=image_scale,
            display="Upscale Image", note="lanczos becomes bicubic; no centre crop"))
define(Spec("ImageCrop", FAMILY, ("width", "height", "x", "y"), inputs=("image",), outputs=("IMAGE",),
            loom="crop_image", status="exact", display="Image Crop",
            handler=direct("crop_image", {"image": "image", "width": "width", "height": "height",
                                          "x": "x", "y": "y"}, ("image",),
                           {"width": _pos_int(1, 8192), "height": _pos_int(1, 8192),
                            "x": _pos_int(0, 8192), "y": _pos_int(0, 8192)})))
define(Spec("ImageBlend", FAMILY, ("blend_factor", "blend_mode"), inputs=("image1", "image2"),
            outputs=("IMAGE",), loom="blend_images", status="exact", display="Image Blend",
            note="soft_light becomes overlay",
            handler=direct("blend_images", {"image1": "a", "image2": "b", "blend_factor": "factor",
                                            "blend_mode": "mode"}, ("image",),
                           {"blend_mode": blend_mode, "blend_factor": _factor})))
define(Spec("ImageInvert", FAMILY, inputs=("image",), outputs=("IMAGE",), loom="invert_image",
            status="exact", display="Invert Image",
            handler=direct("invert_image", {"image": "image"}, ("image",))))
define(Spec("ImageBatch", FAMILY, inputs=("image1", "image2"), outputs=("IMAGE",), loom="image_batch",
            status="exact", display="Batch Images",
            handler=direct("image_batch", {"image1": "a", "image2": "b"}, ("image",))))
