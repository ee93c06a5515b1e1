"""Image operations: resize, crop, blend, invert, batch."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from loom import Input, UserInputError, node
from loom.types import Image


ResizeMethod = Literal["bilinear", "bicubic", "nearest", "area"]
BlendMode = Literal["normal", "multiply", "screen", "overlay", "difference", "add"]


def resize(image: torch.Tensor, height: int, width: int, method: str = "bilinear") -> torch.Tensor:
    """Resize a (B, C, H, W) batch; antialiased when shrinking with (bi)linear/cubic."""
    if (image.shape[2], image.shape[3]) == (height, width):
        return image
    kwargs = {}
    if method in ("bilinear", "bicubic"):
        kwargs = {"align_corners": False, "antialias": True}
    return F.interpolate(image, size=(height, width), mode=method, **kwargs).clamp(0, 1)


@node(category="image/transform")
def resize_image(image: Image,
                 width: int = Input(512, ge=0, le=8192, help="0 = keep aspect from height"),
                 height: int = Input(512, ge=0, le=8192, help="0 = keep aspect from width"),
                 method: ResizeMethod = "bilinear") -> Image:
    """Resize images to a width and height (0 keeps the aspect ratio)."""
    h0, w0 = image.shape[2], image.shape[3]
    if width == 0 and height == 0:
        raise UserInputError("width and height are both 0; set at least one", input="width")
    if width == 0:
        width = max(1, round(w0 * height / h0))
    if height == 0:
        height = max(1, round(h0 * width / w0))
    return resize(image, height, width, method)


@node(category="image/transform")
def crop_image(image: Image, x: int = Input(0, ge=0, le=8192), y: int = Input(0, ge=0, le=8192),
               width: int = Input(256, ge=1, le=8192), height: int = Input(256, ge=1, le=8192)) -> Image:
    """Cut a rectangle out of images (x, y is the top-left corner)."""
    h0, w0 = image.shape[2], image.shape[3]
    if x + width > w0:
        raise UserInputError(f"x + width = {x + width} is beyond the image width {w0}", input="width")
    if y + height > h0:
        raise UserInputError(f"y + height = {y + height} is beyond the image height {h0}", input="height")
    return image[:, :, y:y + height, x:x + width].clone()


def _match(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """b resized to a's size, with a's channel count and a batch that broadcasts."""
    b = resize(b, a.shape[2], a.shape[3])
    if b.shape[1] != a.shape[1]:
        b = b[:, :1].expand(-1, a.shape[1], -1, -1) if b.shape[1] == 1 else b[:, : a.shape[1]]
    if b.shape[0] not in (1, a.shape[0]):
        raise UserInputError(f"batch sizes differ: {a.shape[0]} and {b.shape[0]}", input="b")
    return b


@node(category="image/composite")
def blend_images(a: Image, b: Image, factor: float = Input(0.5, ge=0.0, le=1.0, step=0.01),
                 mode: BlendMode = "normal") -> Image:
    """Blend b over a with a blend mode; factor 0 gives a, 1 gives the full effect of b."""
    b = _match(a, b)
    if mode == "normal":
        mixed = b
    elif mode == "multiply":
        mixed = a * b
    elif mode == "screen":
        mixed = 1 - (1 - a) * (1 - b)
    elif mode == "overlay":
        mixed = torch.where(a < 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    elif mode == "difference":
        mixed = (a - b).abs()
    else:
        mixed = (a + b).clamp(0, 1)
    return (a * (1 - factor) + mixed * factor).clamp(0, 1)


@node(category="image/adjust")
def invert_image(image: Image) -> Image:
    """Invert colours (1 - value)."""
    return 1.0 - image


@node(category="image/batch")
def image_batch(a: Image, b: Image) -> Image:
    """Join two image batches into one; b is resized to a's size when they differ."""
    b = resize(b, a.shape[2], a.shape[3])
    if b.shape[1] != a.shape[1]:
        raise UserInputError(f"channel counts differ: {a.shape[1]} and {b.shape[1]}", input="b")
    return torch.cat([a, b], dim=0)
