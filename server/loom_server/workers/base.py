"""The ``Worker`` protocol: what the routes and the app need from whatever runs workflows.

Two implementations: ``ThreadWorker`` (``thread.py``, the default: one thread in the server
process) and ``RayWorker`` (``ray_pool.py``: a dispatcher handing runs to Ray actors). Both
take runs from the server's SQLite queue, which stays the single source of truth, and both
hold a registry and an executor in the server process (for /api/nodes and for compiling
POSTed workflows)."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from loom import Executor, Registry


@runtime_checkable
class Worker(Protocol):
    """Runs queued workflows and reports their events; every method is safe on the loop."""

    kind: str
    registry: "Registry | None"
    executor: "Executor | None"  # in the server process: compiles POSTed workflows
    startup_error: str | None
    ready: threading.Event  # set once the registry is built (or failed to build)

    @property
    def current(self) -> str | None:
        """A run executing now (the oldest, when several do), or None."""

    def start(self) -> None:
        """Begin building the registry and taking runs (returns at once)."""

    def wake(self) -> None:
        """The queue changed: look at it again."""

    def interrupt(self, run_id: str | None = None) -> str | None:
        """Interrupt ``run_id`` (or whatever runs); the id interrupted, or None."""

    async def wait_ready(self, timeout: float = 120.0) -> bool:
        """Wait until the registry is built; False on timeout."""

    def announce(self, event: dict[str, Any]) -> None:
        """Publish an event in order with the worker's own events (any thread): ``run.queued``
        is announced before a worker can claim the run, so it always comes first."""

    def offer_plan(self, run_id: str, plan: Any) -> None:
        """The plan compiled when ``run_id`` was queued (called off the loop)."""

    def forget_plan(self, run_id: str) -> None:
        """Drop the plan of a run that will not run."""

    def describe(self) -> list[dict[str, Any]]:
        """The workers for /api/system: id, kind, state, device, loaded models, current run."""

    async def close(self) -> None:
        """Stop: a run cut off by the stop is queued again."""


async def wait_for_event(event: threading.Event, timeout: float) -> bool:
    """Wait, without blocking the loop, until another thread sets ``event``; False on timeout."""
    deadline = time.monotonic() + timeout
    while not event.is_set():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
