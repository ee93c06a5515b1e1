"""Nodes for the hardening tests: one that ends its thread, file and model widgets, an image."""
from __future__ import annotations

from typing import Literal

import torch

from loom import Context, node
from loom.types import Image, ImageFile, ModelFile


@node(category="test", cache=False)
def srv_raise(kind: Literal["exit", "interrupt"] = "exit") -> int:
    """Raise SystemExit or KeyboardInterrupt, which would end the thread that runs it."""
    if kind == "exit":
        raise SystemExit(3)
    raise KeyboardInterrupt


@node(category="test", output=True)
def srv_use_model(ctx: Context, model: ModelFile["checkpoints"]) -> None:
    """Show the resolved path of a checkpoint."""
    ctx.show(text=[str(model)])


@node(category="test", output=True)
def srv_use_image(ctx: Context, image: ImageFile) -> None:
    """Show the resolved path of an uploaded image."""
    ctx.show(text=[str(image)])


@node(category="test")
def srv_tiny_image() -> Image:
    """A 4x4 grey image."""
    return torch.full((1, 3, 4, 4), 0.5)
