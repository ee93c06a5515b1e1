"""Helpers shared by the diffusion node tests: an executor over chosen node modules, hint images."""
from __future__ import annotations

import importlib
from pathlib import Path

import torch

from loom import Executor, Registry, Settings


def executor_for(home: Path, modules: list[str], test_module: str) -> Executor:
    """An Executor whose registry holds ``modules`` (imported) plus the test module's own nodes."""
    reg = Registry()
    for m in modules:
        importlib.import_module(m)
        reg.add_module(m)
    reg.add_module(test_module)
    return Executor(reg, settings=Settings(home=home))


def hint_tensor(seed: int, size: int = 64) -> torch.Tensor:
    """A control hint: a bright square on a random dark background, (1, 3, size, size) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(1, 3, size, size, generator=g) * 0.3
    img[..., size // 4: size // 2 + 8, size // 4 + seed: size // 2 + seed] = 1.0
    return img
