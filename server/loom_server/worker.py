"""The one thread that runs workflows, and the observer that forwards its events to the loop."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable

from .events import encode_event, jsonable, preview_data_url
from .queue_store import ClaimedRun, QueueStore

if TYPE_CHECKING:  # importing loom pulls in torch: done in the worker thread, not at startup
    from loom import Executor, Registry, Settings

log = logging.getLogger(__name__)


class Worker:
    """Builds the registry and executor, then takes runs off the queue one at a time."""

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
        if self.ready.is_set():
            return True
        deadline = time.monotonic() + timeout
        while not self.ready.is_set():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def offer_plan(self, run_id: str, plan: Any) -> None:
        """The compiled plan of a run just queued: the worker runs it as is (no second check)."""
        self._plans[run_id] = plan

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
        from loom import Interrupted, NodeError, ValidationError
        assert self.executor is not None
        run_id = claimed.id
        self.current = run_id
        obs = ForwardingObserver(self, run_id)
        plan = self._plans.pop(run_id, None)  # None after a restart: the executor compiles it
        try:
            result = self.executor.run(plan if plan is not None else claimed.workflow, obs, run_id)
            summary = jsonable({"executed": result.executed, "cached": result.cached,
                                "ui": result.ui, "timings": result.timings})
            finished = {"type": "run.finished", "ui": summary["ui"],
                        "counts": {"executed": len(result.executed), "cached": len(result.cached)}}
        except ValidationError as exc:
            problems = [p.to_dict() for p in exc.problems]
            self._end(run_id, "failed", error={"node": None, "error_type": "ValidationError",
                                               "message": str(exc), "problems": problems},
                      event={"type": "run.failed", "node": None, "error_type": "ValidationError",
                             "message": str(exc), "problems": problems})
        except NodeError as exc:
            error = {"node": exc.node, "node_type": exc.node_type, "error_type": exc.error_type,
                     "message": exc.message, "traceback": exc.traceback}
            self._end(run_id, "failed", error=error,
                      event={"type": "run.failed", "node": exc.node, "error_type": exc.error_type,
                             "message": exc.message})
        except Interrupted:
            if self._stopping.is_set():
                self.store.requeue(run_id)
                log.info("run %s cut off by shutdown: queued again", run_id)
            else:
                node = obs.interrupted_at
                self._end(run_id, "interrupted", error={"node": node, "error_type": "Interrupted",
                                                        "message": "interrupted by the user"},
                          event={"type": "run.interrupted", "node": node})
        except BaseException as exc:  # noqa: BLE001 - fails the run, never ends this thread
            self._fail_unconverted(run_id, _document(plan, claimed), obs.running_node, exc)
        else:
            self._end(run_id, "finished", result=summary, event=finished)
        finally:
            self.current = None
            self._interrupt_requested.discard(run_id)

    def _fail_unconverted(self, run_id: str, workflow: dict[str, Any] | None, node: str | None,
                          exc: BaseException) -> None:
        """Fail a run ended by what the executor did not turn into a NodeError.

        That is any BaseException (a node's ``SystemExit`` or ``KeyboardInterrupt`` would
        otherwise end this thread, leaving the run 'running' and the queue stalled) or a bug.
        ``node`` is the node that had started and not finished, when there is one."""
        error_type = type(exc).__name__
        message = f"raised {error_type}: {exc}" if str(exc) else f"raised {error_type}"
        log.error("run %s failed %s: %s", run_id, f"in node {node}" if node else "outside any node",
                  message, exc_info=exc)
        nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
        entry = nodes.get(node) if isinstance(nodes, dict) and node is not None else None
        node_type = entry.get("type") if isinstance(entry, dict) else None
        if node is not None:
            self.publish({"type": "node.failed", "run": run_id, "node": node,
                          "error_type": error_type, "message": message})
        self._end(run_id, "failed",
                  error={"node": node, "node_type": node_type, "error_type": error_type,
                         "message": message, "traceback": "".join(traceback.format_exception(exc))},
                  event={"type": "run.failed", "node": node, "error_type": error_type,
                         "message": message})

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
    try:
        return claimed.workflow
    except Exception:  # noqa: BLE001 - a damaged stored row: report the run without node types
        return None


class ForwardingObserver:
    """Turns executor callbacks into events; terminal events are left to the worker."""

    def __init__(self, worker: Worker, run_id: str) -> None:
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
