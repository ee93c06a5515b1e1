"""A terminal Observer: one tqdm bar for the run's nodes and one for a node's steps."""
from __future__ import annotations

from typing import Any

from tqdm import tqdm

from .observer import BaseObserver


class TqdmObserver(BaseObserver):
    """Progress bars on stderr for ``loom run``."""

    def __init__(self, workflow: Any = None) -> None:
        self._nodes: tqdm | None = None
        self._steps: tqdm | None = None
        self._titles: dict[str, str] = {}
        nodes = getattr(workflow, "nodes", {}) or {}
        for nid, entry in nodes.items():
            if isinstance(entry, dict):
                title = (entry.get("ui") or {}).get("title") if isinstance(entry.get("ui"), dict) else None
                self._titles[nid] = f"{nid} ({title or entry.get('type')})"

    def _label(self, node: str) -> str:
        return self._titles.get(node, node)

    def run_started(self, run: str, to_execute: list[str], cached: list[str]) -> None:
        self._nodes = tqdm(total=len(to_execute), desc="nodes", unit="node", leave=True)

    def node_started(self, run: str, node: str) -> None:
        if self._nodes is not None:
            self._nodes.set_postfix_str(self._label(node))

    def node_progress(self, run: str, node: str, value: int, total: int, preview: Any,
                      info: dict[str, Any]) -> None:
        if self._steps is None or self._steps.total != total:
            self._close_steps()
            self._steps = tqdm(total=total, desc=self._label(node), unit="step", leave=False)
        self._steps.n = value
        if info:
            self._steps.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v)
                                     for k, v in info.items()})
        self._steps.refresh()

    def node_finished(self, run: str, node: str, ui: dict[str, Any]) -> None:
        self._close_steps()
        if self._nodes is not None:
            self._nodes.update(1)

    def _close_steps(self) -> None:
        if self._steps is not None:
            self._steps.close()
            self._steps = None

    def close(self) -> None:
        """Close the bars."""
        self._close_steps()
        if self._nodes is not None:
            self._nodes.close()
            self._nodes = None
