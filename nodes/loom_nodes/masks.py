"""Masks and compositing: make, edit and combine masks, crop to them, paste back, pad for outpainting.

A Mask is float32 (B, 1, H, W) in [0, 1] with 1 = the area to change. The math is in
``_lib/masks.py`` and ``_lib/filters.py``; the nodes check sizes and batches and name the
input at fault.
"""
from __future__ import annotations

from typing import Literal, NamedTuple, Optional

import torch
import torch.nn.functional as F

from loom import Input, UserInputError, node
from loom.types import Image, Mask

from ._lib import masks as M

CombineOp = Literal["add", "subtract", "multiply", "max", "min"]
OutpaintFill = Literal["gray", "edge", "black", "white"]
SIZE = Input(512, ge=1, le=16384)


def _batch(*named: tuple[str, torch.Tensor]) -> int:
    """The common batch size: the first one above 1; every other must be 1 or equal to it."""
    batch = next((t.shape[0] for _, t in named if t.shape[0] > 1), 1)
    for name, t in named:
        if t.shape[0] not in (1, batch):
            others = ", ".join(f"{n} {u.shape[0]}" for n, u in named)
            raise UserInputError(f"batch sizes do not match ({others}): each must be 1 or the "
                                 f"same number", input=name)
    return batch


def _same_size(name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if t.shape[2:] != ref.shape[2:]:
        raise UserInputError(f"{name} is {t.shape[3]}×{t.shape[2]} but {ref_name} is "
                             f"{ref.shape[3]}×{ref.shape[2]} (width×height): they must match",
                             input=name)


@node(category="mask/source")
def solid_mask(value: float = Input(1.0, ge=0.0, le=1.0, step=0.01), width: int = SIZE,
               height: int = SIZE, batch: int = Input(1, ge=1, le=64)) -> Mask:
    """A mask of one value everywhere (1 = change everything)."""
    return torch.full((batch, 1, height, width), float(value))


@node(category="mask/source")
def mask_from_color(image: Image, red: int = Input(255, ge=0, le=255), green: int = Input(255, ge=0, le=255),
                    blue: int = Input(255, ge=0, le=255),
                    tolerance: int = Input(0, ge=0, le=255,
                                           help="largest per-channel difference (0..255) still counted")) -> Mask:
    """A mask of the pixels whose colour is within a tolerance of an RGB colour."""
    dist = M.color_distance(image, (red / 255.0, green / 255.0, blue / 255.0))
    return (dist * 255.0 <= tolerance + 0.5).float()  # +0.5: 8-bit colours compare exactly


@node(category="mask/source")
def mask_from_alpha(image: Image, invert: bool = Input(False, help="off: 1 where transparent "
                                                                   "(as load_image); on: 1 where opaque")) -> Mask:
    """The alpha channel of an RGBA image as a mask: 1 where transparent, like load_image's."""
    if image.shape[1] != 4:
        raise UserInputError(f"image has {image.shape[1]} channels and no alpha; an RGBA image "
                             "(4 channels) is needed", input="image")
    alpha = image[:, 3:4].clone()
    return alpha if invert else 1.0 - alpha


@node(category="mask/source")
def mask_from_luminance(image: Image) -> Mask:
    """A mask from brightness: white is 1, black is 0 (Rec. 709 luminance)."""
    return M.luminance(image)


@node(category="mask/edit")
def threshold_mask(mask: Mask, level: float = Input(0.5, ge=0.0, le=1.0, step=0.01,
                                                    help="values at or above become 1, the rest 0")) -> Mask:
    """Make a mask hard: 1 where it is at least the level, else 0."""
    return (mask >= level).float()


@node(category="mask/edit")
def invert_mask(mask: Mask) -> Mask:
    """Swap the inside and outside of a mask (1 - value)."""
    return 1.0 - mask


@node(category="mask/edit")
def grow_mask(mask: Mask, radius: int = Input(8, ge=-1024, le=1024,
                                              help="pixels; negative shrinks")) -> Mask:
    """Grow a mask by a disk of radius pixels (negative shrinks it); soft masks keep their levels."""
    return M.grow(mask.float(), radius)


@node(category="mask/edit")
def feather_mask(mask: Mask, radius: float = Input(8.0, ge=0.0, le=512.0, step=0.5,
                                                   help="pixels over which the edge fades")) -> Mask:
    """Soften a mask's edges with a Gaussian blur (its 3-sigma reach is the radius)."""
    return M.feather(mask.float(), radius)


@node(category="mask/edit")
def combine_masks(a: Mask, b: Mask, operation: CombineOp = "max") -> Mask:
    """Combine two masks pixel by pixel (add, a - b, multiply, max = union, min = intersection)."""
    _batch(("a", a), ("b", b))
    if b.shape[2:] != a.shape[2:]:
        b = F.interpolate(b, size=a.shape[2:], mode="bilinear", align_corners=False).clamp(0, 1)
    return M.combine(a, b, operation)


@node(category="mask/convert")
def mask_to_image(mask: Mask) -> Image:
    """Show a mask as a grey RGB image (white = 1)."""
    return mask.expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


class Cropped(NamedTuple):
    image: Image
    mask: Mask
    x: int
    y: int
    width: int
    height: int


@node(category="mask/composite")
def crop_by_mask(image: Image, mask: Mask,
                 padding: int = Input(32, ge=0, le=4096, help="pixels added around the mask's bounds"),
                 multiple: int = Input(8, ge=1, le=256, help="round the box up to a multiple "
                                                           "(8 suits SD latents)")) -> Cropped:
    """Crop image and mask to the mask's bounds plus padding; x, y, width, height give the box."""
    _same_size("mask", mask, "image", image)
    _batch(("image", image), ("mask", mask))
    box = M.bounds(mask)
    if box is None:
        raise UserInputError("mask is empty (all 0): nothing to crop to", input="mask")
    x, y, w, h = M.pad_box(box, padding, multiple, image.shape[3], image.shape[2])
    return Cropped(image[:, :, y:y + h, x:x + w].clone(), mask[:, :, y:y + h, x:x + w].clone(),
                   x, y, w, h)


@node(category="mask/composite")
def composite_images(destination: Image, source: Image,
                     x: int = Input(0, ge=0, le=16384, help="left edge of source in destination"),
                     y: int = Input(0, ge=0, le=16384, help="top edge of source in destination"),
                     mask: Optional[Mask] = None) -> Image:
    """Paste source onto destination at x, y where the mask is 1 (e.g. an inpainted crop back).

    The mask is source-sized (or destination-sized, then cut at the same box); without one
    the whole source is pasted. Pixels where the mask is 0 are left exactly as they were.
    """
    dh, dw = destination.shape[2], destination.shape[3]
    sh, sw = source.shape[2], source.shape[3]
    if x + sw > dw or y + sh > dh:
        raise UserInputError(f"source ({sw}×{sh}) at x={x}, y={y} reaches {x + sw}×{y + sh}, beyond "
                             f"the destination ({dw}×{dh}); crop or resize it first, or move it",
                             input="source")
    if mask is None:
        mask = torch.ones(1, 1, sh, sw, dtype=destination.dtype, device=destination.device)
    elif mask.shape[2:] == source.shape[2:]:
        pass
    elif mask.shape[2:] == destination.shape[2:]:
        mask = mask[:, :, y:y + sh, x:x + sw]
    else:
        raise UserInputError(f"mask is {mask.shape[3]}×{mask.shape[2]}; it must be the size of the "
                             f"source ({sw}×{sh}) or of the destination ({dw}×{dh})", input="mask")
    _batch(("destination", destination), ("source", source), ("mask", mask))
    src = M.match_channels(source, destination.shape[1]).to(destination.device)
    return M.composite(destination, src, mask.to(destination.device), x, y)


class Outpaint(NamedTuple):
    image: Image
    mask: Mask


PAD = Input(0, ge=0, le=4096, step=8)


@node(category="mask/composite")
def pad_for_outpaint(image: Image, left: int = PAD, top: int = PAD, right: int = Input(256, ge=0, le=4096, step=8),
                     bottom: int = PAD,
                     feathering: int = Input(40, ge=0, le=1024, help="pixels of the old image, from a "
                                                                     "padded side, the mask fades over"),
                     fill: OutpaintFill = "gray") -> Outpaint:
    """Extend an image on any side for outpainting; the mask is 1 over the new area."""
    if left + top + right + bottom == 0:
        raise UserInputError("all four paddings are 0: nothing to outpaint", input="right")
    return Outpaint(*M.outpaint_pad(image, left, top, right, bottom, feathering, fill))
