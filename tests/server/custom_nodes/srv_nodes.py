"""Tiny nodes for the server tests: arithmetic, a slow counter, a failure, outputs."""
from __future__ import annotations

import time

import torch
from PIL import Image as PILImage

from loom import Context, Input, node


@node(category="test")
def srv_add(a: int = Input(0), b: int = Input(0)) -> int:
    """Add two integers."""
    return a + b


@node(category="test")
def srv_count(ctx: Context, start: int = Input(0), steps: int = Input(3, ge=0, le=100000),
              delay: float = Input(0.0, ge=0.0, le=10.0), preview: bool = False) -> int:
    """Count ``steps`` steps, sleeping ``delay`` seconds each; reports progress (interruptible)."""
    for i in range(steps):
        if delay:
            time.sleep(delay)
        image = torch.full((1, 3, 16, 16), (i + 1) / steps) if preview else None
        ctx.progress(i + 1, steps, preview=image)
    return start + steps


@node(category="test")
def srv_fail(value: int = Input(0)) -> int:
    """Always fails."""
    raise ValueError(f"srv_fail always fails (value={value})")


@node(category="test", output=True)
def srv_show(ctx: Context, value: int) -> None:
    """Show an integer."""
    ctx.show(values={"value": value}, text=[str(value)])


@node(category="test", output=True, cache=False)
def srv_save(ctx: Context, value: int = Input(0)) -> None:
    """Save a tiny grey PNG whose brightness is ``value`` into the output folder."""
    name = f"srv_{ctx.run_id}_{ctx.node_id}.png"
    PILImage.new("RGB", (4, 4), (value % 256,) * 3).save(ctx.output_dir / name)
    ctx.show(images=[{"kind": "output", "path": name}])
