"""Run events: the executor reports to an Observer and knows nothing of HTTP or terminals."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Observer(Protocol):
    """Receives the events of runs; every method is called on the executor's thread."""

    def run_started(self, run: str, to_execute: list[str], cached: list[str]) -> None: ...
    def node_started(self, run: str, node: str) -> None: ...
    def node_progress(self, run: str, node: str, value: int, total: int,
                      preview: Any | None, info: dict[str, Any]) -> None: ...
    def node_cached(self, run: str, node: str, ui: dict[str, Any]) -> None: ...
    def node_finished(self, run: str, node: str, ui: dict[str, Any]) -> None: ...
    def node_failed(self, run: str, node: str, error_type: str, message: str,
                    traceback: str) -> None: ...
    def run_finished(self, run: str, result: Any) -> None: ...
    def run_failed(self, run: str, node: str | None, error_type: str, message: str) -> None: ...
    def run_interrupted(self, run: str, node: str | None) -> None: ...


class BaseObserver:
    """An Observer that ignores everything; subclass it and override what you need."""

    def run_started(self, run: str, to_execute: list[str], cached: list[str]) -> None:
        """A run began: the nodes that will execute and those served from cache."""

    def node_started(self, run: str, node: str) -> None:
        """A node began executing."""

    def node_progress(self, run: str, node: str, value: int, total: int,
                      preview: Any | None, info: dict[str, Any]) -> None:
        """A long node reported a step (preview: an Image tensor or None)."""

    def node_cached(self, run: str, node: str, ui: dict[str, Any]) -> None:
        """A node's outputs came from the cache."""

    def node_finished(self, run: str, node: str, ui: dict[str, Any]) -> None:
        """A node finished; ui holds what it shows (images, text, values)."""

    def node_failed(self, run: str, node: str, error_type: str, message: str,
                    traceback: str) -> None:
        """A node raised."""

    def run_finished(self, run: str, result: Any) -> None:
        """The run completed; result is the RunResult."""

    def run_failed(self, run: str, node: str | None, error_type: str, message: str) -> None:
        """The run failed (node is None for validation failures)."""

    def run_interrupted(self, run: str, node: str | None) -> None:
        """The run was interrupted while ``node`` ran."""


class RecordingObserver(BaseObserver):
    """Keeps (event, args) tuples; handy for tests and scripts."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def __getattribute__(self, name: str) -> Any:
        if name in _EVENT_NAMES:
            events = object.__getattribute__(self, "events")
            return lambda *args: events.append((name, args))
        return object.__getattribute__(self, name)

    def names(self) -> list[str]:
        """Event names in order."""
        return [e[0] for e in self.events]


_EVENT_NAMES = frozenset(n for n in dir(BaseObserver) if not n.startswith("_"))
