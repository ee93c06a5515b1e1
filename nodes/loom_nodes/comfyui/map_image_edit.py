"""Images, continued: masked compositing, outpaint padding, blur and sharpen, batch picking,
and upscale models."""
from __future__ import annotations

from typing import Any

from .context import Mapper
from .model import CNode, as_float, as_int
from .table import Spec, define, direct, is_value, ranged

FAMILY = "image"
UPSCALE_TILE, UPSCALE_OVERLAP = 512, 32   # what ComfyUI's ImageUpscaleWithModel tiles with first
SHARPEN_SCALE = 10.0                      # ComfyUI's sharpen kernel weighs alpha × 10


def _value(ctx: Mapper, node: CNode, name: str, default: Any, fix: Any) -> Any:
    """A widget, coerced when it is a plain value (links pass through)."""
    v = ctx.value(node, name, default)
    return fix(ctx, node, name, v) if is_value(v) else v


def composite_masked(ctx: Mapper, node: CNode) -> None:
    """ImageCompositeMasked → composite_images (source pasted at x, y where the mask is 1)."""
    resize = ctx.value(node, "resize_source", False)
    if resize is True:
        ctx.changed(node, "resize_source", True, False, "Loom's composite_images does not stretch "
                                                        "the source; resize it first")
    inputs: dict[str, Any] = {"destination": ctx.value(node, "destination"),
                              "source": ctx.value(node, "source"),
                              "x": _value(ctx, node, "x", 0, ranged(0, 16384)),
                              "y": _value(ctx, node, "y", 0, ranged(0, 16384))}
    if "mask" in node.links:
        inputs["mask"] = ctx.value(node, "mask")
    nid = ctx.add(node, "composite_images", inputs)
    ctx.output(node, 0, ctx.link(nid, "image"))
    ctx.mapped(node, [nid], "approximate",
               "the same with a source-sized mask; ComfyUI stretches any other mask over the source "
               "(Loom cuts a destination-sized one at the box) and crops a source that overhangs "
               "(an error in Loom)")


def _multiple_of_8(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    value = as_int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        new = min(max(0, round(value / 8) * 8), 4096)
        if new != value:
            ctx.changed(node, name, value, new, "Loom pads by multiples of 8 up to 4096")
        return new
    return value


def pad_for_outpaint(ctx: Mapper, node: CNode) -> None:
    """ImagePadForOutpaint → pad_for_outpaint with a grey fill (ComfyUI's)."""
    inputs: dict[str, Any] = {"image": ctx.value(node, "image"), "fill": "gray"}
    for side in ("left", "top", "right", "bottom"):
        inputs[side] = _value(ctx, node, side, 0, _multiple_of_8)
    inputs["feathering"] = _value(ctx, node, "feathering", 40, ranged(0, 1024, "feathering"))
    if all(isinstance(inputs[s], int) and inputs[s] == 0 for s in ("left", "top", "right", "bottom")):
        ctx.note(node, "all four paddings are 0: Loom's pad_for_outpaint refuses that (ComfyUI "
                       "passes the image through with an empty mask)")
    nid = ctx.add(node, "pad_for_outpaint", inputs)
    ctx.output(node, 0, ctx.link(nid, "image"))
    ctx.output(node, 1, ctx.link(nid, "mask"))
    ctx.mapped(node, [nid], "approximate",
               "the same padding and quadratic fade; ComfyUI's fade on the right and bottom sides "
               "sits one pixel further in, and it leaves the fade out when feathering reaches half "
               "the image's width or height")


def _kernel_sigma(ctx: Mapper, node: CNode, radius_name: str) -> Any:
    """ComfyUI's blur/sharpen kernels span ``radius`` pixels with their sigma in units of the
    radius: Loom's sigma in pixels is radius × sigma."""
    radius, sigma = as_int(ctx.value(node, radius_name, 1)), as_float(ctx.value(node, "sigma", 1.0))
    if not (isinstance(radius, int) and isinstance(sigma, float)):
        ctx.note(node, f"{radius_name} or sigma come from a link: Loom's sigma (in pixels) is left "
                       "at its default")
        return ctx.ABSENT
    pixels = round(radius * sigma, 4)
    ctx.changed(node, "sigma", f"{radius_name} {radius}, sigma {sigma:g}", pixels,
                f"Loom's sigma is in pixels: radius × sigma; ComfyUI cuts its kernel at {radius} px "
                "and mirrors the edges, Loom reaches 3 sigma and extends them")
    return ranged(0.1, 256.0, "sigma")(ctx, node, "sigma", pixels)


def image_blur(ctx: Mapper, node: CNode) -> None:
    """ImageBlur → blur_image (a Gaussian of sigma radius × sigma pixels)."""
    inputs: dict[str, Any] = {"image": ctx.value(node, "image")}
    sigma = _kernel_sigma(ctx, node, "blur_radius")
    if sigma is not ctx.ABSENT:
        inputs["sigma"] = sigma
    nid = ctx.add(node, "blur_image", inputs)
    ctx.output(node, 0, ctx.link(nid, "image"))
    ctx.mapped(node, [nid], "approximate")


def image_sharpen(ctx: Mapper, node: CNode) -> None:
    """ImageSharpen → sharpen_image: ComfyUI's kernel is image + 10·alpha·(image − blurred),
    an unsharp mask with amount 10·alpha."""
    inputs: dict[str, Any] = {"image": ctx.value(node, "image"), "threshold": 0.0}
    sigma = _kernel_sigma(ctx, node, "sharpen_radius")
    if sigma is not ctx.ABSENT:
        inputs["sigma"] = max(0.1, sigma)
    alpha = as_float(ctx.value(node, "alpha", 1.0))
    if isinstance(alpha, float):
        amount = round(alpha * SHARPEN_SCALE, 4)
        ctx.changed(node, "alpha", alpha, amount, "Loom's amount is ComfyUI's alpha × 10")
        inputs["amount"] = ranged(0.0, 10.0, "sharpen amount")(ctx, node, "alpha", amount)
    nid = ctx.add(node, "sharpen_image", inputs)
    ctx.output(node, 0, ctx.link(nid, "image"))
    ctx.mapped(node, [nid], "approximate")


def upscale_loader(ctx: Mapper, node: CNode) -> None:
    """UpscaleModelLoader → load_upscale_model (ESRGAN / Real-ESRGAN files)."""
    name = ctx.value(node, "model_name")
    if isinstance(name, str):
        name, _ = ctx.substitute(node, "model_name", name, folders=False)
    nid = ctx.add(node, "load_upscale_model", {} if name is ctx.ABSENT else {"name": name})
    ctx.output(node, 0, ctx.link(nid, "upscale_model"))
    ctx.mapped(node, [nid], "exact", "Loom reads ESRGAN / Real-ESRGAN (RRDBNet) files; other "
                                     "architectures fail when the node runs")


def upscale_with_model(ctx: Mapper, node: CNode) -> None:
    """ImageUpscaleWithModel → upscale_with_model with ComfyUI's first tiling (512, overlap 32)."""
    nid = ctx.add(node, "upscale_with_model", {"model": ctx.value(node, "upscale_model"),
                                               "image": ctx.value(node, "image"),
                                               "tile": UPSCALE_TILE, "overlap": UPSCALE_OVERLAP})
    ctx.output(node, 0, ctx.link(nid, "image"))
    ctx.mapped(node, [nid], "approximate", "the same network on 512-pixel tiles overlapping by 32; "
                                           "the seams are blended differently")


define(Spec("ImageCompositeMasked", FAMILY, ("x", "y", "resize_source"),
            inputs=("destination", "source", "mask"), outputs=("IMAGE",), loom="composite_images",
            status="approximate", handler=composite_masked, display="ImageCompositeMasked",
            note="exact with a source-sized mask and a source that fits; resize_source: no"))
define(Spec("ImagePadForOutpaint", FAMILY, ("left", "top", "right", "bottom", "feathering"),
            inputs=("image",), outputs=("IMAGE", "MASK"), loom="pad_for_outpaint", status="approximate",
            handler=pad_for_outpaint, display="Pad Image for Outpainting",
            note="grey fill; the fade differs by a pixel on the right and bottom sides"))
define(Spec("ImageBlur", FAMILY, ("blur_radius", "sigma"), inputs=("image",), outputs=("IMAGE",),
            loom="blur_image", status="approximate", handler=image_blur, display="Image Blur",
            note="sigma = radius × sigma pixels; Loom's kernel reaches 3 sigma, ComfyUI's the radius"))
define(Spec("ImageSharpen", FAMILY, ("sharpen_radius", "sigma", "alpha"), inputs=("image",),
            outputs=("IMAGE",), loom="sharpen_image", status="approximate", handler=image_sharpen,
            display="Image Sharpen", note="an unsharp mask: sigma = radius × sigma, amount = alpha × 10 "
                                          "(up to 10)"))
define(Spec("ImageFromBatch", FAMILY, ("batch_index", "length"), inputs=("image",), outputs=("IMAGE",),
            loom="image_from_batch", status="exact", display="ImageFromBatch",
            note="an index past the end is an error (ComfyUI takes the last image)",
            handler=direct("image_from_batch", {"image": "image", "batch_index": "index",
                                                "length": "length"}, ("image",),
                           {"batch_index": ranged(0, 4095), "length": ranged(1, 4096)})))
define(Spec("RepeatImageBatch", FAMILY, ("amount",), inputs=("image",), outputs=("IMAGE",),
            loom="repeat_image_batch", status="exact", display="RepeatImageBatch",
            handler=direct("repeat_image_batch", {"image": "image", "amount": "count"}, ("image",),
                           {"amount": ranged(1, 4096)})))
define(Spec("UpscaleModelLoader", FAMILY, ("model_name",), outputs=("UPSCALE_MODEL",),
            loom="load_upscale_model", status="exact", handler=upscale_loader,
            display="Load Upscale Model", note="ESRGAN / Real-ESRGAN (RRDBNet) files"))
define(Spec("ImageUpscaleWithModel", FAMILY, inputs=("upscale_model", "image"), outputs=("IMAGE",),
            loom="upscale_with_model", status="approximate", handler=upscale_with_model,
            display="Upscale Image (using Model)", note="tiles of 512 overlapping by 32; seams blend "
                                                         "differently"))
