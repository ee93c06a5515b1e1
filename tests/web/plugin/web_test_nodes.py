"""Tiny fast nodes for the browser tests, loaded as a custom_nodes plugin."""
from __future__ import annotations

import time
from typing import Literal

import torch
from PIL import Image as PILImage

from loom import Context, Input, UserInputError, node, png_info
from loom.types import Image, Mask, Seed

Colour = Literal["red", "green", "blue", "white", "black"]
RGB = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0),
       "white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}


@node(category="test")
def t_solid(color: Colour = "red", width: int = Input(64, ge=8, le=1024, step=8),
            height: int = Input(64, ge=8, le=1024, step=8)) -> Image:
    """A solid-colour image."""
    rgb = torch.tensor(RGB[color]).view(1, 3, 1, 1)
    return rgb.expand(1, 3, height, width).clone()


@node(category="test")
def t_invert(image: Image) -> Image:
    """Invert an image (1 - value)."""
    return 1.0 - image


@node(category="test")
def t_mask(width: int = Input(64, ge=8, le=1024), height: int = Input(64, ge=8, le=1024)) -> Mask:
    """An all-ones mask (a type that does not connect to Image inputs)."""
    return torch.ones(1, 1, height, width)


@node(category="test")
def t_noise(ctx: Context, seed: Seed = 0, size: int = Input(32, ge=8, le=256)) -> Image:
    """Random noise from a seed."""
    return torch.rand(1, 3, size, size, generator=ctx.rng(seed))


@node(category="test", cache=False)
def t_slow(ctx: Context, image: Image, steps: int = Input(5, ge=1, le=10000),
           delay: float = Input(0.05, ge=0.0, le=10.0, step=0.01, help="seconds per step")) -> Image:
    """Darken an image step by step, reporting progress and previews."""
    out = image
    for i in range(steps):
        time.sleep(delay)
        out = image * (1.0 - 0.5 * (i + 1) / steps)
        ctx.progress(i + 1, steps, preview=out)
    return out


@node(category="test")
def t_text(text: str = Input("hello", multiline=True), repeat: int = Input(1, ge=1, le=10),
           shout: bool = False) -> str:
    """Repeat a text (a multiline widget, a number and a toggle)."""
    out = " ".join([text] * repeat)
    return out.upper() if shout else out


@node(category="test", output=True)
def t_show_text(ctx: Context, text: str) -> None:
    """Show a text on the canvas."""
    ctx.show(text=[text], values={"length": len(text)})


@node(category="test")
def t_fail(image: Image, fail: bool = True) -> Image:
    """Fail on purpose when asked to."""
    if fail:
        raise UserInputError("failing on purpose", input="fail")
    return image


@node(category="test", output=True)
def t_save(ctx: Context, image: Image, prefix: str = Input("web_test")) -> None:
    """Save images as PNG (with the workflow inside) and show them."""
    shown = []
    for i in range(image.shape[0]):
        arr = (image[i].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
        name = f"{prefix}_{ctx.run_id}_{ctx.node_id}_{i}.png"
        path = ctx.output_dir / name
        PILImage.fromarray(arr).save(path, pnginfo=png_info(ctx.workflow, {"run": ctx.run_id}))
        shown.append({"kind": "output", "path": name})
    ctx.show(images=shown)
