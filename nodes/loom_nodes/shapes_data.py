"""The procedural "shapes" data set as a node: reference images for metrics and img2img."""
from __future__ import annotations

from typing import NamedTuple

from loom import Input, node
from loom.types import Image, Seed

from ._lib.shapes import make_batch


class ShapesOut(NamedTuple):
    images: Image
    captions: str


@node(category="image/source")
def shapes_images(count: int = Input(16, ge=1, le=2048), seed: Seed = 0,
                  size: int = Input(64, ge=16, le=512, step=16)) -> ShapesOut:
    """Images of Loom's procedural shapes data set (deterministic from the seed), with captions."""
    images, captions, _ = make_batch(count, int(seed), size=size)
    return ShapesOut(images, "\n".join(captions))
