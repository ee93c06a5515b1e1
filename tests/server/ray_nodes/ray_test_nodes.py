"""Tiny nodes for the Ray tests: a model loader that counts its loads, a node that kills its
own worker process, and one that reads an uploaded file."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import torch

from loom import Context, Input, node
from loom.types import ImageFile, ModelFile

LOAD_LOG = "ray_loads.log"  # in the home folder: one line "pid model" per real load


class RayModel:
    """A loaded test model: its file name and a tiny module."""

    def __init__(self, name: str, net: torch.nn.Module) -> None:
        self.name, self.net = name, net


def _load(ctx: Context, path: Path) -> Any:
    with open(ctx.settings.home / LOAD_LOG, "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {path.name}\n")
    return torch.nn.Linear(1, 1)


@node(category="test")
def ray_load(ctx: Context, model: ModelFile["checkpoints"]) -> RayModel:  # type: ignore[valid-type]
    """Load a test checkpoint through the model manager (each real load is logged)."""
    net = ctx.models.load(f"ray-test:{model}", lambda: _load(ctx, Path(model)), label=Path(model).name,
                          source=str(model))
    return RayModel(Path(model).name, net)


@node(category="test")
def ray_use(model: RayModel, value: int = Input(0)) -> int:
    """Use a loaded test model: ``value`` plus the length of its file name."""
    return value + len(model.name)


@node(category="test", cache=False)
def ray_die(value: int = Input(0)) -> int:
    """Kill the process running this node (SIGKILL), like a segfault in a native library."""
    os.kill(os.getpid(), signal.SIGKILL)
    return value


@node(category="test")
def ray_file_size(image: ImageFile) -> int:
    """The size in bytes of an uploaded file."""
    return Path(image).stat().st_size
