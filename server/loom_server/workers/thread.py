"""The default worker: one thread in the server process that runs workflows one at a time."""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..events import encode_event, jsonable
from ..queue_store import ClaimedRun, QueueStore
from .base import wait_for_event
from .observer import ForwardingObserver
from .outcome import REQUEUE, execute, unconverted

if TYPE_CHECKING:  # importing loom pulls in torch: done in the worker thread, not at startup
    from loom import Executor, Registry, Settings

log = logging.getLogger("loom_server.worker")


class ThreadWorker:
    """The default worker: one thread in the server process builds the registry and executor,
    then takes runs off the queue one at a time."""

    kind = "thread"

    def __init__(self, settings: "Settings", store: QueueStore, publish: Callable[[str], None],
                 loop: asyncio.AbstractEventLoop, registry: "Registry | None" = None,
                 preview_interval_s: float = 0.2, progress_interval_s: float = 0.05) -> None:
        self.settings, self.store, self.loop = settings, store, loop
        self._publish_text = publish
        self._given_registry = registry
        self.preview_interval_s, self.progress_interval_s = preview_interval_s, progress_interval_s
        self.registry: Registry | None = None
        self.executor: Executor | None = None
        self.startup_error: str | None = None
        self.ready = threading.Event()
        self.current: str | None = None
        self._interrupt_requested: set[str] = set()
        self._plans: dict[str, Any] = {}  # run id -> Plan compiled when the run was queued
        self._pending: list[str] = []  # encoded events not yet handed to the loop
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name="loom-worker", daemon=True)

    # --- control (any thread) ------------------------------------------------------
    def start(self) -> None:
        """Start the thread (it builds the registry first)."""
        self._thread.start()

    def wake(self) -> None:
        """Tell the thread that the queue changed."""
        self._wake.set()

    def interrupt(self, run_id: str | None = None) -> str | None:
        """Interrupt ``run_id`` (or whatever runs); returns the id interrupted, if any.

        A named run that the store says is running but the executor has not begun yet is
        remembered, and the interrupt applies as soon as it starts."""
        current = self.current
        target = run_id or current
        if target is None:
            return None
        self._interrupt_requested.add(target)
        if self.executor is not None and target == current:
            self.executor.interrupt()
        return target

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current node; a run cut off by the stop is queued again."""
        self._stopping.set()
        self._wake.set()
        if self.executor is not None and self.current is not None:
            self.executor.interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the worker did not stop within %.0f s (a node ignores interrupts)",
                            timeout)

    async def wait_ready(self, timeout: float = 120.0) -> bool:
        """Wait (without blocking the loop) until the registry is built; False on timeout."""
        return await wait_for_event(self.ready, timeout)

    def offer_plan(self, run_id: str, plan: Any) -> None:
        """The compiled plan of a run just queued: the worker runs it as is (no second check)."""
        self._plans[run_id] = plan

    def announce(self, event: dict[str, Any]) -> None:
        """An event from another thread, in order with this worker's (the same batching queue)."""
        self.publish(event)

    def forget_plan(self, run_id: str) -> None:
        """Drop the plan of a run that will not run (cancelled)."""
        self._plans.pop(run_id, None)

    # --- the thread ----------------------------------------------------------------
    def publish(self, event: dict[str, Any]) -> None:
        """Encode on this thread; the loop sends what gathered since its last turn as one frame.

        A 1,000-node run makes ~2,000 events: one thread hop per event-loop tick instead of
        one per event, and one WebSocket frame (a JSON array) per tick instead of one per event."""
        text = encode_event(event)
        with self._pending_lock:
            self._pending.append(text)
            first = len(self._pending) == 1
        if first:
            try:
                self.loop.call_soon_threadsafe(self._flush)
            except RuntimeError:  # the loop is closed: the server is going away
                pass

    def _flush(self) -> None:
        """On the loop: hand the gathered events to the clients (one event alone stays an object)."""
        with self._pending_lock:
            texts, self._pending = self._pending, []
        if texts:
            self._publish_text(texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]")

    def _build(self) -> None:
        from loom import Executor, Registry
        registry = self._given_registry or Registry.default(self.settings)
        self.registry = registry
        self.executor = Executor(registry, settings=self.settings)
        for err in registry.plugin_errors:  # Registry.default also froze the startup heap
            log.error("plugin %s failed to load: %s", err.plugin, err.error)

    def _main(self) -> None:
        t0 = time.perf_counter()
        try:
            self._build()
        except Exception as exc:  # noqa: BLE001 - reported by /api/system and /api/nodes
            self.startup_error = f"{type(exc).__name__}: {exc}"
            log.exception("building the node registry failed")
            self.ready.set()
            return
        log.info("%d node types ready in %.2f s", len(self.registry or ()), time.perf_counter() - t0)
        self.ready.set()
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                claimed = self.store.claim_next()
            except Exception:  # noqa: BLE001 - e.g. the database is locked for too long
                log.exception("reading the queue failed")
                self._wake.wait(1.0)
                continue
            if claimed is None:
                self._wake.wait(1.0)
                continue
            try:
                self._run(claimed)
            except BaseException:  # noqa: BLE001 - e.g. storing the end failed: take the next run
                log.exception("run %s could not be ended cleanly", claimed.id)

    def _run(self, claimed: ClaimedRun) -> None:
        assert self.executor is not None
        run_id = claimed.id
        self.current = run_id
        obs = ForwardingObserver(self, run_id)
        plan = self._plans.pop(run_id, None)  # None after a restart: the executor compiles it
        try:
            work = plan if plan is not None else claimed.workflow
        except BaseException as exc:  # noqa: BLE001 - a damaged stored row fails that run
            outcome = unconverted(run_id, None, None, exc)
        else:
            outcome = execute(self.executor, work, obs, run_id, self._stopping.is_set,
                              lambda: _document(plan, claimed))
        try:
            for event in outcome.before:
                self.publish(event)
            if outcome.status == REQUEUE:
                self.store.requeue(run_id)
                log.info("run %s cut off by shutdown: queued again", run_id)
            else:
                self._end(run_id, outcome.status, event=outcome.event, result=outcome.result,
                          error=outcome.error)
        finally:
            self.current = None
            self._interrupt_requested.discard(run_id)

    async def close(self) -> None:
        """Stop (off the loop: joining the thread blocks)."""
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    def describe(self) -> list[dict[str, Any]]:
        """This worker for /api/system (touches torch: call it off the loop)."""
        ex = self.executor
        if ex is None:
            return [{"id": "local", "kind": self.kind, "state": "starting", "current": None}]
        models = ex.models.loaded() if ex._models is not None else []
        return [{"id": "local", "kind": self.kind, "state": "busy" if self.current else "idle",
                 "device": str(ex.device), "pid": os.getpid(), "current": self.current,
                 "models_loaded": [m["label"] for m in models]}]

    def _end(self, run_id: str, status: str, event: dict[str, Any],
             result: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
        """Store the final state first, then tell the clients (so a GET after the event agrees)."""
        try:
            self.store.finish(run_id, status, result=result, error=jsonable(error))
        except Exception:  # noqa: BLE001 - keep serving; the run stays 'running' until restart
            log.exception("storing the end of run %s failed", run_id)
        self.publish({**event, "run": run_id, "queue": self._queued()})

    def _queued(self) -> int | None:
        try:
            return int(self.store.counts()["queued"])
        except Exception:  # noqa: BLE001
            return None


def _document(plan: Any, claimed: ClaimedRun) -> dict[str, Any] | None:
    """The run's workflow for an error report, or None when even that cannot be read."""
    if plan is not None:
        return plan.document  # type: ignore[no-any-return]
    return claimed.workflow
