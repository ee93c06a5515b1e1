"""Latents: empty latents, VAE encode/decode (tiled, for inpainting), upscaling."""
from __future__ import annotations

from typing import Any

from .context import Mapper
from .model import CNode, as_float, as_int
from .table import Spec, define, direct, is_value

FAMILY = "latent"
TILE_STEP, TILE_MAX = 64, 4096
LATENT_METHODS = {"nearest-exact": "nearest", "bilinear": "bilinear", "area": "area",
                  "bicubic": "bicubic", "bislerp": "bilinear"}


def multiple_of_8(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    """Width/height in pixels: Loom's empty latent takes multiples of 8 from 8 to 16384."""
    value = as_int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        new = min(max(8, value - value % 8), 16384)
        if new != value:
            ctx.changed(node, name, value, new, "Loom's latent sizes are multiples of 8 up to 16384")
        return new
    return value


def batch(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    """Batch size: 1…64 in Loom."""
    value = as_int(value)
    if isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= 64:
        new = min(max(1, value), 64)
        ctx.changed(node, name, value, new, "Loom's batches hold 1 to 64 latents")
        return new
    return value


def empty_latent(ctx: Mapper, node: CNode) -> None:
    """EmptyLatentImage / EmptySD3LatentImage → empty_latent (its VAE is linked at the end, from
    the model of the sampler it feeds, so the latent has that model's channels)."""
    direct("empty_latent", {"width": "width", "height": "height", "batch_size": "batch"},
           ("latent",), {"width": multiple_of_8, "height": multiple_of_8, "batch_size": batch},
           status="exact")(ctx, node)


def _tile(ctx: Mapper, node: CNode) -> Any:
    tile = as_int(ctx.value(node, "tile_size", 512))
    if not isinstance(tile, int) or isinstance(tile, bool):
        return tile
    new = min(max(TILE_STEP, round(tile / TILE_STEP) * TILE_STEP), TILE_MAX)
    if new != tile:
        ctx.changed(node, "tile_size", tile, new, f"Loom's tiles are multiples of {TILE_STEP} px")
    overlap = as_int(ctx.value(node, "overlap", None))
    if isinstance(overlap, int) and overlap != new // 4:
        ctx.changed(node, "overlap", overlap, new // 4, "Loom's tiles overlap by a quarter tile")
    return new


def vae_decode_tiled(ctx: Mapper, node: CNode) -> None:
    """VAEDecodeTiled → vae_decode with ``tile``."""
    nid = ctx.add(node, "vae_decode", {"vae": ctx.value(node, "vae"),
                                       "latent": ctx.value(node, "samples"), "tile": _tile(ctx, node)})
    ctx.output(node, 0, ctx.link(nid, "image"))
    ctx.mapped(node, [nid], "approximate")


def vae_encode_tiled(ctx: Mapper, node: CNode) -> None:
    """VAEEncodeTiled → vae_encode with ``tile``."""
    nid = ctx.add(node, "vae_encode", {"vae": ctx.value(node, "vae"),
                                       "image": ctx.value(node, "pixels"), "tile": _tile(ctx, node)})
    ctx.output(node, 0, ctx.link(nid, "latent"))
    ctx.mapped(node, [nid], "approximate")


def vae_encode_for_inpaint(ctx: Mapper, node: CNode) -> None:
    """VAEEncodeForInpaint → vae_encode + set_latent_noise_mask: the mask rides in the latent to
    the sampler, as ComfyUI's noise mask does."""
    grow = as_int(ctx.value(node, "grow_mask_by", 6))
    if isinstance(grow, int) and grow:
        ctx.changed(node, "grow_mask_by", grow, 0, "Loom uses the mask as it is; its sampler "
                                                   "keeps the unmasked area at every step")
    nid = ctx.add(node, "vae_encode", {"vae": ctx.value(node, "vae"), "image": ctx.value(node, "pixels")})
    mid = ctx.add(node, "set_latent_noise_mask", {"latent": ctx.link(nid, "latent"),
                                                  "mask": ctx.value(node, "mask")}, suffix="mask")
    ctx.output(node, 0, ctx.link(mid, "latent"))
    ctx.mapped(node, [nid, mid], "approximate", "the masked pixels are encoded as they are "
                                                "(ComfyUI greys them first)")


def latent_method(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    """ComfyUI's latent upscale methods → Loom's."""
    new = LATENT_METHODS.get(value, "bilinear")
    if new != value:
        why = ("torch's nearest picks pixel centres slightly differently" if value == "nearest-exact"
               else f"Loom has no {value!r} method")
        ctx.changed(node, name, value, new, why)
    return new


def scale(ctx: Mapper, node: CNode, name: str, value: Any) -> Any:
    """Scale factor: 0.125…8 in Loom."""
    value = as_float(value)
    if isinstance(value, float) and not 0.125 <= value <= 8.0:
        new = min(max(0.125, value), 8.0)
        ctx.changed(node, name, value, new, "Loom scales latents by 0.125 to 8")
        return new
    return value


def latent_upscale_by(ctx: Mapper, node: CNode) -> None:
    """LatentUpscaleBy → latent_upscale (a noise mask the latent carries is resized with it)."""
    inputs: dict[str, Any] = {"latent": ctx.value(node, "samples")}
    for comfy, loom, fix in (("scale_by", "scale", scale), ("upscale_method", "method", latent_method)):
        v = ctx.value(node, comfy)
        if v is not ctx.ABSENT:
            inputs[loom] = fix(ctx, node, comfy, v) if is_value(v) else v
    nid = ctx.add(node, "latent_upscale", inputs)
    ctx.output(node, 0, ctx.link(nid, "latent"))
    ctx.mapped(node, [nid], "exact")


_VAE_TILED = ("tile_size", "overlap", "temporal_size", "temporal_overlap")
_VARIANTS = (("tile_size",), ("tile_size", "overlap"))
for _t, _d in (("EmptyLatentImage", "Empty Latent Image"), ("EmptySD3LatentImage", "EmptySD3LatentImage")):
    define(Spec(_t, FAMILY, ("width", "height", "batch_size"), outputs=("LATENT",), loom="empty_latent",
                status="exact", handler=empty_latent, display=_d,
                note="its VAE input is linked from the sampler's model: channels follow the model"))
define(Spec("VAEDecode", FAMILY, inputs=("samples", "vae"), outputs=("IMAGE",), loom="vae_decode",
            status="exact", display="VAE Decode",
            handler=direct("vae_decode", {"samples": "latent", "vae": "vae"}, ("image",))))
define(Spec("VAEEncode", FAMILY, inputs=("pixels", "vae"), outputs=("LATENT",), loom="vae_encode",
            status="exact", display="VAE Encode",
            handler=direct("vae_encode", {"pixels": "image", "vae": "vae"}, ("latent",))))
define(Spec("VAEDecodeTiled", FAMILY, _VAE_TILED, _VARIANTS, ("samples", "vae"), ("IMAGE",),
            "vae_decode (tile)", "approximate", "tiles overlap by a quarter tile; no temporal tiling",
            vae_decode_tiled, "VAE Decode (Tiled)"))
define(Spec("VAEEncodeTiled", FAMILY, _VAE_TILED, _VARIANTS, ("pixels", "vae"), ("LATENT",),
            "vae_encode (tile)", "approximate", "tiles overlap by a quarter tile; no temporal tiling",
            vae_encode_tiled, "VAE Encode (Tiled)"))
define(Spec("VAEEncodeForInpaint", FAMILY, ("grow_mask_by",), inputs=("pixels", "vae", "mask"),
            outputs=("LATENT",), loom="vae_encode + set_latent_noise_mask", status="approximate",
            handler=vae_encode_for_inpaint, display="VAE Encode (for Inpainting)",
            note="the mask is not grown and the masked pixels are not greyed"))
define(Spec("LatentUpscaleBy", FAMILY, ("upscale_method", "scale_by"), inputs=("samples",),
            outputs=("LATENT",), loom="latent_upscale", status="exact", handler=latent_upscale_by,
            display="Upscale Latent By", note="bislerp becomes bilinear"))
