"""The Ray worker: a dispatcher in the server that hands queued runs to Ray actors.

The SQLite queue stays the single source of truth. The dispatcher (a task on the event
loop) looks at the first queued runs whenever the queue changes or an actor frees up, and
gives each to an idle actor, preferring one that holds the run's models or cached outputs
(``affinity.py``). Each run is one streaming call: the actor yields event batches, which go
straight to the WebSocket hub, then the end, which is stored before its event is sent. An
actor that dies takes its run back to the queue (a run that killed its worker
``MAX_ATTEMPTS`` times fails as ``Crashed``); Ray restarts the actor and the dispatcher uses
it again once it answers."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..config import RayOptions
from ..events import encode_event, jsonable
from ..queue_store import MAX_ATTEMPTS, ClaimedRun, QueueStore
from .affinity import Holdings, RunKeys, choose, keys_of
from .base import wait_for_event
from .files import read_uploads, write_outputs
from .outcome import REQUEUE, Outcome, unconverted
from .ray_cluster import connect, disconnect, kill_actor, start_actors

if TYPE_CHECKING:
    from loom import Executor, Registry, Settings

log = logging.getLogger(__name__)
QUEUE_WINDOW = 64  # queued runs the dispatcher considers at once


@dataclass(eq=False)
class ActorSlot:
    """The dispatcher's view of one actor."""

    id: str
    kind: str
    handle: Any
    state: str = "starting"  # starting | idle | busy | restarting
    current: str | None = None
    since: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)
    holdings: Holdings = field(default_factory=Holdings)
    expected: Holdings = field(default_factory=Holdings)
    restarts: int = 0
    shares_folders: bool = True

    def describe(self) -> dict[str, Any]:
        """For /api/system."""
        r = self.report
        return {"id": self.id, "kind": self.kind, "state": self.state, "current": self.current,
                "device": r.get("device"), "dtype": r.get("dtype"), "threads": r.get("threads"),
                "pid": r.get("pid"), "host": r.get("host"), "node_id": r.get("node_id"),
                "models_loaded": r.get("models_loaded", []),
                "cache_entries": r.get("cache_entries"), "restarts": self.restarts,
                "shares_folders": self.shares_folders}


class RayWorker:
    """Runs workflows on Ray actors; the server keeps a registry and executor to compile."""

    kind = "ray"

    def __init__(self, settings: "Settings", store: QueueStore, publish: Callable[[str], None],
                 loop: asyncio.AbstractEventLoop, options: RayOptions,
                 registry: "Registry | None" = None, preview_interval_s: float = 0.2,
                 progress_interval_s: float = 0.05) -> None:
        self.settings, self.store, self.loop, self.options = settings, store, loop, options
        self._publish_text = publish
        self._given_registry = registry
        self.preview_interval_s, self.progress_interval_s = preview_interval_s, progress_interval_s
        self.registry: Registry | None = None
        self.executor: Executor | None = None
        self.startup_error: str | None = None
        self.ready = threading.Event()
        self.actors: list[ActorSlot] = []
        self._keys: dict[str, RunKeys] = {}  # run id -> what it needs (from its compiled plan)
        self._waiting: dict[str, float] = {}  # run id -> when it first waited for a busy actor
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake_event = asyncio.Event()
        self._closing = False
        self._owns_ray = False
        self._node_id: str | None = None
        self._stop_boot = threading.Event()
        self._thread = threading.Thread(target=self._boot, name="loom-ray", daemon=True)

    # --- the Worker protocol ----------------------------------------------------------
    @property
    def current(self) -> str | None:
        """The run that has been running longest, or None."""
        busy = [a for a in self.actors if a.state == "busy" and a.current]
        return min(busy, key=lambda a: a.since).current if busy else None

    def start(self) -> None:
        """Connect to Ray and start the actors (in a thread), and the dispatcher (on the loop)."""
        self._spawn(self._dispatch_loop())
        self._thread.start()

    def wake(self) -> None:
        """The queue changed (callable from any thread)."""
        try:
            self.loop.call_soon_threadsafe(self._wake_event.set)
        except RuntimeError:  # the loop is closed
            pass

    def interrupt(self, run_id: str | None = None) -> str | None:
        """Interrupt ``run_id`` on its actor, or every running run; returns one id or None."""
        busy = sorted((a for a in self.actors if a.state == "busy" and a.current),
                      key=lambda a: a.since)
        chosen = [a for a in busy if run_id is None or a.current == run_id]
        for actor in chosen:
            actor.handle.interrupt.remote(actor.current)  # fire and forget: answered at once
        return chosen[0].current if chosen else None

    async def wait_ready(self, timeout: float = 120.0) -> bool:
        """Wait (without blocking the loop) until the registry is built; False on timeout."""
        return await wait_for_event(self.ready, timeout)

    def offer_plan(self, run_id: str, plan: Any) -> None:
        """Keep what the run needs (for choosing its actor); the actor compiles it itself."""
        try:
            self._keys[run_id] = keys_of(plan, self.settings)
        except Exception:  # noqa: BLE001 - affinity is an optimisation, never a failure
            log.exception("reading the keys of run %s failed", run_id)

    def announce(self, event: dict[str, Any]) -> None:
        """An event from another thread; the dispatcher claims on the loop after it (FIFO)."""
        self.loop.call_soon_threadsafe(self._publish, event)

    def forget_plan(self, run_id: str) -> None:
        """A cancelled run: forget its keys."""
        self._keys.pop(run_id, None)
        self._waiting.pop(run_id, None)

    def describe(self) -> list[dict[str, Any]]:
        """Every actor: id, kind, state, device, pid, loaded models, current run."""
        return [a.describe() for a in self.actors]

    async def close(self) -> None:
        """Stop: running runs are interrupted and queued again; actors are killed."""
        self._closing = True
        self._wake_event.set()
        for actor in self.actors:
            if actor.state == "busy" and actor.current:
                actor.handle.interrupt.remote(actor.current, True)
        runs = [t for t in self._tasks if t.get_name().startswith("run ")]
        if runs:
            await asyncio.wait(runs, timeout=10.0)
        for task in list(self._tasks):
            task.cancel()  # a run still going stays 'running': queued again at next start
        self._stop_boot.set()  # the start-up thread kills the actors and leaves Ray
        if self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 30.0)

    # --- start-up (a thread: importing loom and starting Ray take seconds) --------------
    def _boot(self) -> None:
        from loom import Executor, Registry
        t0 = time.perf_counter()
        try:
            registry = self._given_registry or Registry.default(self.settings)
            local = dataclasses.replace(self.settings, device="cpu")  # compiles only
            self.registry, self.executor = registry, Executor(registry, settings=local)
            self._owns_ray, self._node_id = connect(self.options)
            slots = start_actors(self.options, self.settings, self.preview_interval_s,
                                 self.progress_interval_s)
        except Exception as exc:  # noqa: BLE001 - reported by /api/system and /api/nodes
            self.startup_error = f"{type(exc).__name__}: {exc}"
            log.exception("starting the Ray workers failed")
            self.ready.set()
            if self._owns_ray:
                disconnect()
            return
        self.actors = [ActorSlot(i, kind, handle) for i, kind, handle in slots]
        log.info("%d node types and %d Ray actor(s) set up in %.2f s", len(registry),
                 len(self.actors), time.perf_counter() - t0)
        self.ready.set()
        for actor in self.actors:
            self.loop.call_soon_threadsafe(lambda a=actor: self._spawn(self._revive(a), "revive"))
        # Ray's processes die with the thread that started them (PR_SET_PDEATHSIG): this
        # thread lives until the server stops, and it is the one that stops Ray
        self._stop_boot.wait()
        for actor in self.actors:
            kill_actor(actor.handle, True)
        if self._owns_ray:
            disconnect()

    def _spawn(self, coro: Any, name: str = "dispatch") -> asyncio.Task[None]:
        task = self.loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _revive(self, actor: ActorSlot) -> None:
        """Wait until an actor answers (after its start or a restart), then give it work."""
        import ray
        delay = 0.1
        while not self._closing:
            try:
                report = await actor.handle.ready.remote()
            except ray.exceptions.RayError as exc:
                log.debug("%s not ready yet: %s", actor.id, type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self._take_report(actor, report)
            actor.state = "idle"
            log.info("%s ready on %s (pid %s)", actor.id, report.get("device"), report.get("pid"))
            self.wake()
            return

    def _take_report(self, actor: ActorSlot, report: dict[str, Any]) -> None:
        actor.report = report
        actor.holdings = Holdings(set(report.get("cache_keys") or ()),
                                  list(report.get("model_keys") or ()))
        actor.expected = actor.holdings
        actor.shares_folders = (report.get("node_id") == self._node_id
                                and report.get("outputs") == str(self.settings.outputs)
                                and report.get("home") == str(self.settings.home))

    # --- dispatching (on the loop) -----------------------------------------------------
    async def _dispatch_loop(self) -> None:
        while not self._closing:
            timeout = self._assign()
            try:
                await asyncio.wait_for(self._wake_event.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._wake_event.clear()

    def _assign(self) -> float:
        """Give queued runs to idle actors; returns how long to sleep before looking again."""
        idle = [a for a in self.actors if a.state == "idle"]
        if self._closing or not idle:
            return 1.0
        busy = [a for a in self.actors if a.state == "busy"]
        now, sleep = time.monotonic(), 1.0
        try:
            queued = self.store.queued_ids(QUEUE_WINDOW)
        except Exception:  # noqa: BLE001 - e.g. the database is locked for too long
            log.exception("reading the queue failed")
            return 1.0
        for run_id in queued:
            if not idle:
                break
            keys = self._keys.get(run_id)
            actor, better_busy = choose(keys, idle, busy)
            if actor is None:
                break
            if better_busy:
                first = self._waiting.setdefault(run_id, now)
                if now - first < self.options.affinity_wait_s:
                    sleep = min(sleep, first + self.options.affinity_wait_s - now)
                    continue  # the actor holding its models frees up soon
            claimed = self.store.claim(run_id)
            if claimed is None:  # cancelled meanwhile
                self.forget_plan(run_id)
                continue
            self._waiting.pop(run_id, None)
            idle.remove(actor)
            busy.append(actor)
            actor.state, actor.current, actor.since = "busy", run_id, now
            actor.expected = actor.holdings.with_run(keys)
            self._spawn(self._drive(actor, claimed, keys), f"run {run_id}")
        return max(sleep, 0.01)

    async def _drive(self, actor: ActorSlot, claimed: ClaimedRun, keys: RunKeys | None) -> None:
        """One run on one actor: stream its events, then store its end and announce it."""
        import ray
        run_id, loop = claimed.id, asyncio.get_running_loop()
        end: dict[str, Any] | None = None
        try:
            uploads = None
            if not actor.shares_folders and keys is not None and keys.uploads:
                uploads = await loop.run_in_executor(None, read_uploads, self.settings, keys.uploads)
            stream = actor.handle.run.remote(run_id, claimed.text, uploads, not actor.shares_folders)
            async for ref in stream:
                item = await ref
                if isinstance(item, list):
                    self._publish_text(item[0] if len(item) == 1 else "[" + ",".join(item) + "]")
                else:
                    end = item
        except ray.exceptions.RayActorError as exc:
            await self._lost(actor, claimed, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a bug in the actor's code: fail this run only
            outcome = unconverted(run_id, None, None, exc)
        else:
            if end is None:
                await self._lost(actor, claimed, RuntimeError("the actor ended the run without a result"))
                return
            outcome = Outcome.from_dict(end["outcome"])
            self._take_report(actor, end["report"])
            if end.get("files"):
                await loop.run_in_executor(None, write_outputs, self.settings, end["files"])
        self._end(actor, run_id, outcome)

    def _end(self, actor: ActorSlot, run_id: str, outcome: Outcome) -> None:
        """Store the end first, then tell the clients; the actor takes the next run."""
        for event in outcome.before:
            self._publish({**event, "worker": actor.id})
        try:
            if outcome.status == REQUEUE:
                self.store.requeue(run_id)
                log.info("run %s cut off by shutdown: queued again", run_id)
            else:
                self.store.finish(run_id, outcome.status, result=outcome.result,
                                  error=jsonable(outcome.error))
        except Exception:  # noqa: BLE001 - keep serving; the run stays 'running' until restart
            log.exception("storing the end of run %s failed", run_id)
        if outcome.status != REQUEUE:
            self._keys.pop(run_id, None)
            self._publish({**outcome.event, "run": run_id, "worker": actor.id,
                           "queue": self._queued()})
        actor.state, actor.current = ("idle" if not self._closing else "stopped"), None
        self.wake()

    async def _lost(self, actor: ActorSlot, claimed: ClaimedRun, exc: BaseException) -> None:
        """The actor died (or vanished) during a run: queue the run again, or fail it as
        crashed after ``MAX_ATTEMPTS``; make sure the old actor process is gone, revive it."""
        run_id = claimed.id
        log.warning("%s was lost while running %s (attempt %d): %s", actor.id, run_id,
                    claimed.attempts, exc)
        actor.state, actor.current, actor.restarts = "restarting", None, actor.restarts + 1
        actor.holdings = actor.expected = Holdings()
        if self._closing:
            return  # left 'running': queued again when the server starts next
        if claimed.attempts >= MAX_ATTEMPTS:
            message = (f"its worker died {claimed.attempts} times while running it "
                       f"(last: {actor.id})")
            error = {"node": None, "error_type": "Crashed", "message": message}
            self.store.finish(run_id, "failed", error=error)
            self._keys.pop(run_id, None)
            self._publish({"type": "run.failed", "run": run_id, "worker": actor.id, "node": None,
                           "error_type": "Crashed", "message": message, "queue": self._queued()})
        else:
            self.store.requeue(run_id)
            self._publish({"type": "run.requeued", "run": run_id, "worker": actor.id,
                           "attempts": claimed.attempts, "reason": type(exc).__name__})
        # a worker only unreachable for a while might still be running the run: end it
        pid = actor.report.get("pid") if actor.report.get("node_id") == self._node_id else None
        await asyncio.get_running_loop().run_in_executor(None, kill_actor, actor.handle, False, pid)
        self._spawn(self._revive(actor), "revive")
        self.wake()

    def _publish(self, event: dict[str, Any]) -> None:
        self._publish_text(encode_event(event))

    def _queued(self) -> int | None:
        try:
            return int(self.store.counts()["queued"])
        except Exception:  # noqa: BLE001
            return None
