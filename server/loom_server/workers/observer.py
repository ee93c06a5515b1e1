"""The observer that turns executor callbacks into run events, for any worker.

A worker (the in-process thread, or a Ray actor in another process) is its ``sink``: the
observer hands it events with ``publish`` and reads its interrupt requests, executor and
throttle intervals. Terminal events are left to the worker (it stores the end first)."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..events import preview_data_url

if TYPE_CHECKING:
    from loom import Executor

log = logging.getLogger("loom_server.worker")


class EventSink(Protocol):
    """What the observer needs from the worker it reports to."""

    executor: "Executor | None"
    preview_interval_s: float
    progress_interval_s: float
    _interrupt_requested: set[str]

    def publish(self, event: dict[str, Any]) -> None:
        """Hand one event (a JSON-safe dict) on towards the clients."""


class ForwardingObserver:
    """Turns executor callbacks into events; terminal events are left to the worker."""

    def __init__(self, worker: EventSink, run_id: str) -> None:
        self.worker, self.run_id = worker, run_id
        self.interrupted_at: str | None = None
        self.running_node: str | None = None  # started and not yet finished
        self._last_progress: dict[str, float] = {}
        self._last_preview: dict[str, float] = {}

    def _send(self, event: dict[str, Any]) -> None:
        self.worker.publish({**event, "run": self.run_id})

    def run_started(self, run: str, to_execute: list[str], cached: list[str]) -> None:
        """Forward run.started; apply an interrupt that arrived before the executor began."""
        if run in self.worker._interrupt_requested and self.worker.executor is not None:
            self.worker.executor.interrupt()
        self._send({"type": "run.started", "to_execute": to_execute, "cached": cached})

    def node_started(self, run: str, node: str) -> None:
        """Forward node.started."""
        self.running_node = node
        self._send({"type": "node.started", "node": node})

    def node_progress(self, run: str, node: str, value: int, total: int,
                      preview: Any | None, info: dict[str, Any]) -> None:
        """Forward node.progress, throttled; previews become small JPEG data URLs."""
        now = time.monotonic()
        last = value >= total
        if not last and now - self._last_progress.get(node, -1e9) < self.worker.progress_interval_s:
            return
        self._last_progress[node] = now
        event: dict[str, Any] = {"type": "node.progress", "node": node, "value": value,
                                 "total": total}
        if info:
            event["info"] = info
        if preview is not None and (last or now - self._last_preview.get(node, -1e9)
                                    >= self.worker.preview_interval_s):
            try:
                url = preview_data_url(preview)
            except Exception as exc:  # noqa: BLE001 - a bad preview never fails the run
                log.debug("preview of %s not encoded: %s", node, exc)
                url = None
            if url is not None:
                self._last_preview[node] = now
                event["preview"] = url
        self._send(event)

    def node_cached(self, run: str, node: str, ui: dict[str, Any]) -> None:
        """Forward node.cached with what the node shows."""
        self._send({"type": "node.cached", "node": node, "ui": ui})

    def node_finished(self, run: str, node: str, ui: dict[str, Any]) -> None:
        """Forward node.finished with what the node shows."""
        self.running_node = None
        self._send({"type": "node.finished", "node": node, "ui": ui})

    def node_failed(self, run: str, node: str, error_type: str, message: str,
                    traceback: str) -> None:
        """Forward node.failed (the traceback goes to the history entry and the log only)."""
        self.running_node = None
        log.error("run %s: node %s failed: %s: %s", run, node, error_type, message)
        self._send({"type": "node.failed", "node": node, "error_type": error_type,
                    "message": message})

    def run_finished(self, run: str, result: Any) -> None:
        """Terminal: the worker stores the result, then publishes run.finished."""

    def run_failed(self, run: str, node: str | None, error_type: str, message: str) -> None:
        """Terminal: the worker stores the error, then publishes run.failed."""

    def run_interrupted(self, run: str, node: str | None) -> None:
        """Terminal: remember where, the worker publishes run.interrupted."""
        self.interrupted_at = node
