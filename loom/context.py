"""The narrow object a node receives as ``ctx``: randomness, progress, paths, device."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import Interrupted
from .settings import Settings


class Context:
    """Per-node services. Nodes use this instead of globals."""

    def __init__(self, *, node_id: str, node_type: str, run_id: str, settings: Settings,
                 device: torch.device, dtype: torch.dtype, models: Any,
                 interrupt_event: threading.Event, workflow: dict[str, Any],
                 run_info: dict[str, Any],
                 on_progress: Callable[[int, int, Any, dict[str, Any]], None] | None = None) -> None:
        self.node_id, self.node_type, self.run_id = node_id, node_type, run_id
        self.settings, self.device, self.dtype, self.models = settings, device, dtype, models
        self.workflow, self.run_info = workflow, run_info
        self.ui: dict[str, Any] = {}
        self._interrupt = interrupt_event
        self._on_progress = on_progress

    @property
    def log(self) -> logging.Logger:
        """The logger of this node type (``loom.node.<type>``)."""
        return logging.getLogger(f"loom.node.{self.node_type}")

    def rng(self, seed: int) -> torch.Generator:
        """A CPU generator seeded with ``seed``: the same seed gives the same noise anywhere."""
        g = torch.Generator(device="cpu")
        g.manual_seed(int(seed))
        return g

    def check_interrupted(self) -> None:
        """Raise ``Interrupted`` when the run was asked to stop."""
        if self._interrupt.is_set():
            raise Interrupted(f"interrupted in node {self.node_id!r}")

    def progress(self, value: int, total: int, preview: torch.Tensor | None = None,
                 **info: Any) -> None:
        """Report step ``value`` of ``total`` (optionally an Image preview); checks interruption."""
        if self._on_progress is not None:
            self._on_progress(value, total, preview, info)
        self.check_interrupted()

    def show(self, **ui: Any) -> None:
        """Add to what the canvas shows for this node: images=[...], text=[...], values={...}.

        ``images`` entries are ``{"kind": "output"|"preview", "path": "relative/name.png"}``.
        Lists are extended and dicts merged when called more than once.
        """
        for key, value in ui.items():
            old = self.ui.get(key)
            if isinstance(old, list) and isinstance(value, list):
                old.extend(value)
            elif isinstance(old, dict) and isinstance(value, dict):
                old.update(value)
            else:
                self.ui[key] = value

    @property
    def output_dir(self) -> Path:
        """Where saved images go (created on first use)."""
        self.settings.outputs.mkdir(parents=True, exist_ok=True)
        return self.settings.outputs

    @property
    def preview_dir(self) -> Path:
        """Where preview images go (created on first use)."""
        self.settings.previews.mkdir(parents=True, exist_ok=True)
        return self.settings.previews

    @property
    def input_dir(self) -> Path:
        """Where uploaded images are."""
        return self.settings.inputs
