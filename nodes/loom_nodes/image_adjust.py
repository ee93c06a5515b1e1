"""Image filters and batch utilities: blur, sharpen, colour adjustments, pick and repeat images.

Filters act on the colour channels; an alpha channel (the 4th) passes through unchanged.
"""
from __future__ import annotations

import torch

from loom import Input, UserInputError, node
from loom.types import Image

from ._lib.filters import gaussian_blur
from ._lib.masks import luminance

SIGMA = Input(2.0, ge=0.0, le=256.0, step=0.1, help="Gaussian standard deviation in pixels")


def _split(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Colour channels and the alpha channel (None without one)."""
    if image.shape[1] == 4:
        return image[:, :3], image[:, 3:]
    return image, None


def _join(colour: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    colour = colour.clamp(0, 1)
    return colour if alpha is None else torch.cat([colour, alpha], dim=1)


@node(category="image/filter")
def blur_image(image: Image, sigma: float = SIGMA) -> Image:
    """Gaussian blur (edges are extended, not darkened)."""
    colour, alpha = _split(image.float())
    return _join(gaussian_blur(colour, sigma), alpha)


@node(category="image/filter")
def sharpen_image(image: Image, sigma: float = Input(1.5, ge=0.1, le=64.0, step=0.1,
                                                     help="size of the detail to boost, in pixels"),
                  amount: float = Input(1.0, ge=0.0, le=10.0, step=0.05,
                                        help="how much of the detail to add back; 0 = unchanged"),
                  threshold: float = Input(0.0, ge=0.0, le=1.0, step=0.01,
                                           help="leave differences below this alone (spares noise)")) -> Image:
    """Sharpen with an unsharp mask: add back amount × (image − blurred image)."""
    colour, alpha = _split(image.float())
    detail = colour - gaussian_blur(colour, sigma)
    if threshold > 0:
        detail = torch.where(detail.abs() >= threshold, detail, torch.zeros_like(detail))
    return _join(colour + amount * detail, alpha)


@node(category="image/adjust")
def adjust_colors(image: Image,
                  brightness: float = Input(0.0, ge=-1.0, le=1.0, step=0.01, help="added to every channel"),
                  contrast: float = Input(1.0, ge=0.0, le=4.0, step=0.01,
                                          help="scale around mid-grey (0.5); 1 = unchanged"),
                  saturation: float = Input(1.0, ge=0.0, le=4.0, step=0.01,
                                            help="0 = grey, 1 = unchanged, above 1 = more colourful"),
                  gamma: float = Input(1.0, ge=0.05, le=10.0, step=0.01,
                                       help="output = input^(1/gamma); above 1 brightens mid-tones")) -> Image:
    """Brightness, contrast, saturation and gamma, applied in that order and clipped to [0, 1]."""
    colour, alpha = _split(image.float())
    x = (colour + brightness).clamp(0, 1)
    x = ((x - 0.5) * contrast + 0.5).clamp(0, 1)
    if x.shape[1] == 3 and saturation != 1.0:
        grey = luminance(x)
        x = (grey + (x - grey) * saturation).clamp(0, 1)
    if gamma != 1.0:
        x = x.pow(1.0 / gamma)
    return _join(x, alpha)


@node(category="image/batch")
def image_from_batch(image: Image, index: int = Input(0, ge=0, le=4095, help="first image, from 0"),
                     length: int = Input(1, ge=1, le=4096, help="how many; fewer if the batch ends")) -> Image:
    """Take images index … index + length − 1 out of a batch."""
    batch = image.shape[0]
    if index >= batch:
        raise UserInputError(f"index {index} is past the end of a batch of {batch} "
                             f"(indices 0..{batch - 1})", input="index")
    return image[index:index + length].clone()


@node(category="image/batch")
def repeat_image_batch(image: Image, count: int = Input(2, ge=1, le=4096,
                                                        help="times the whole batch is repeated")) -> Image:
    """Repeat a batch count times (a, b → a, b, a, b for count 2)."""
    return image.repeat(count, 1, 1, 1)
