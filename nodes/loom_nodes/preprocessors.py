"""ControlNet preprocessors that need no model weights (math in ``_lib/preprocess.py``).

Each turns an image into a hint for ``apply_controlnet``: white lines on black, 3 channels,
the input's size. Depth, pose, segmentation and the learned line-art/soft-edge annotators
need weights that Loom does not ship (see docs/diffusion.md, ControlNet).
"""
from __future__ import annotations

from typing import Literal

from loom import Input, UserInputError, node
from loom.types import Image

from ._lib import preprocess

_SIGMA = Input(1.0, ge=0.0, le=10.0, step=0.1, help="Gaussian blur (pixels) before finding edges")


def _thresholds(low: float, high: float) -> None:
    if low > high:
        raise UserInputError(f"low_threshold {low} is above high_threshold {high}", input="low_threshold")


@node(category="image/preprocess", title="Canny Edges")
def canny_edges(image: Image,
                low_threshold: float = Input(0.1, ge=0.0, le=1.0, step=0.01,
                                             help="gradient needed to continue an edge"),
                high_threshold: float = Input(0.2, ge=0.0, le=1.0, step=0.01,
                                              help="gradient needed to start an edge"),
                sigma: float = _SIGMA) -> Image:
    """Canny edge map (white 1-pixel edges on black) for canny ControlNets."""
    _thresholds(low_threshold, high_threshold)
    return preprocess.canny(image, low_threshold, high_threshold, sigma)


@node(category="image/preprocess", title="Soft Edges")
def soft_edges(image: Image, method: Literal["sobel", "difference_of_gaussians"] = "sobel",
               sigma: float = _SIGMA) -> Image:
    """Soft edge map (gradient strength, 0…1 per image) for soft-edge / HED-style ControlNets."""
    if method == "sobel":
        return preprocess.sobel(image, sigma)
    if sigma <= 0:
        raise UserInputError("difference_of_gaussians needs a sigma above 0", input="sigma")
    return preprocess.difference_of_gaussians(image, sigma)


@node(category="image/preprocess", title="Line Art (from edges)")
def lineart_edges(image: Image,
                  low_threshold: float = Input(0.05, ge=0.0, le=1.0, step=0.01, help="Canny low threshold"),
                  high_threshold: float = Input(0.15, ge=0.0, le=1.0, step=0.01, help="Canny high threshold"),
                  sigma: float = _SIGMA,
                  thickness: int = Input(0, ge=0, le=16, help="grow the 1-pixel lines by this many pixels"),
                  black_on_white: bool = Input(False, help="black lines on white (how drawings look); "
                                                           "line-art ControlNets take white on black")) -> Image:
    """Line art from edges: Canny edges thinned to 1-pixel lines, optionally thicker or inverted."""
    _thresholds(low_threshold, high_threshold)
    return preprocess.lineart(image, low_threshold, high_threshold, sigma, thickness, black_on_white)


@node(category="image/preprocess", title="Scribble")
def scribble_hint(image: Image,
                  threshold: float = Input(0.5, ge=0.0, le=1.0, step=0.01, help="brightness cut-off"),
                  dark_strokes: bool = Input(True, help="strokes are darker than the paper"),
                  thickness: int = Input(1, ge=0, le=16, help="grow the strokes by this many pixels")) -> Image:
    """Scribble hint: a drawing thresholded to white strokes on black, for scribble ControlNets."""
    return preprocess.scribble(image, threshold, dark_strokes, thickness)


@node(category="image/preprocess", title="Tile (blur)")
def tile_hint(image: Image,
              factor: float = Input(4.0, ge=1.0, le=64.0, step=0.5, help="shrink by this much and enlarge back"),
              sigma: float = Input(0.0, ge=0.0, le=10.0, step=0.1, help="extra Gaussian blur (pixels)")) -> Image:
    """Tile hint: the image without its detail (shrunk and enlarged back), for tile ControlNets."""
    return preprocess.tile(image, factor, sigma)
