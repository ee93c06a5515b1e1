"""The Ray actor that executes runs: it owns an Executor (models, output cache, device).

The server's dispatcher (``ray_pool.py``) calls ``run`` as a streaming generator: the actor
yields lists of encoded events (each carrying its ``worker`` id) as the run goes, then one
dict describing the end (an ``Outcome``, the actor's report, and output files when the
actor does not share the server's folders). ``interrupt`` runs concurrently (the actor is
threaded), so it reaches a running node within one ``ctx.progress`` step.

This module imports neither ray nor torch at import time: ``ray.remote`` is applied by the
pool, and the actor process builds its registry in ``__init__``."""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Iterator

from ..events import encode_event
from .observer import ForwardingObserver
from .outcome import Outcome, execute, unconverted

if TYPE_CHECKING:
    from loom import Settings

log = logging.getLogger(__name__)
MAX_REPORTED_KEYS = 20_000  # cache keys an actor reports for affinity (most recent first)
_END = object()


class LoomActor:
    """One Loom executor in its own process (decorated with ``ray.remote`` by the pool)."""

    def __init__(self, worker_id: str, settings: "Settings", threads: int | None = None,
                 builtin_nodes: bool = True, preview_interval_s: float = 0.2,
                 progress_interval_s: float = 0.05) -> None:
        import torch

        from loom import Executor, Registry
        from loom.plugins import freeze_startup_heap, load_folder
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.WARNING,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if threads:
            torch.set_num_threads(threads)
        self.worker_id, self.settings = worker_id, settings
        self.preview_interval_s, self.progress_interval_s = preview_interval_s, progress_interval_s
        if builtin_nodes:
            registry = Registry.default(settings)
        else:  # only the custom_nodes folders (tests and small deployments)
            registry = Registry()
            for folder in settings.custom_nodes_roots:
                load_folder(registry, folder)
            freeze_startup_heap()
        for err in registry.plugin_errors:
            log.error("%s: plugin %s failed to load: %s", worker_id, err.plugin, err.error)
        self.registry = registry
        self.executor: Executor | None = Executor(registry, settings=settings)
        self.current: str | None = None
        self._interrupt_requested: set[str] = set()
        self._stopping = threading.Event()
        self._events: queue.SimpleQueue[Any] | None = None
        self._recent: OrderedDict[str, None] = OrderedDict()  # cache keys of plans run here

    # --- called by the dispatcher ------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        """The actor's report once it is built (the dispatcher waits for this)."""
        return self.report()

    def report(self) -> dict[str, Any]:
        """Where this actor runs and what it holds: device, loaded models, cached keys."""
        ex = self.executor
        assert ex is not None
        models = ex.models.loaded() if ex._models is not None else []
        self._recent = OrderedDict((k, None) for k in self._recent if k in ex.cache)
        try:
            import ray
            node_id = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - outside Ray (unit use): no node id
            node_id = None
        import torch
        return {"id": self.worker_id, "pid": os.getpid(), "host": socket.gethostname(),
                "node_id": node_id, "home": str(self.settings.home),
                "outputs": str(self.settings.outputs), "device": str(ex.device),
                "dtype": str(ex.dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
                "models_loaded": [m["label"] for m in models],
                "model_keys": [f"{m['key']} {m['label']}" for m in models],
                "cache_entries": len(ex.cache),
                "cache_keys": list(self._recent)[-MAX_REPORTED_KEYS:],
                "nodes": len(self.registry), "plugin_errors": len(self.registry.plugin_errors)}

    def interrupt(self, run_id: str, stopping: bool = False) -> bool:
        """Interrupt ``run_id`` here (now, or as soon as it starts); ``stopping``: the server
        is shutting down, so the run goes back to the queue instead of ending interrupted."""
        if stopping:
            self._stopping.set()
        self._interrupt_requested.add(run_id)
        if self.current == run_id and self.executor is not None:
            self.executor.interrupt()
            return True
        return False

    def run(self, run_id: str, text: str, uploads: dict[str, bytes] | None = None,
            ship_outputs: bool = False) -> Iterator[Any]:
        """Execute one stored workflow; yields event batches (lists of JSON texts), then the end.

        ``uploads`` (name → bytes) are written to this actor's input folder first, for an
        actor that does not share the server's; with ``ship_outputs`` the files the run
        saved come back in the end dict (``files``: output-relative name → bytes)."""
        events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._events = events
        self.current = run_id
        box: dict[str, Any] = {}
        worker = threading.Thread(target=self._execute, args=(run_id, text, uploads, events, box),
                                  name=f"loom-{self.worker_id}", daemon=True)
        worker.start()
        try:
            while True:
                batch = [events.get()]
                while True:  # whatever else gathered meanwhile goes in the same batch
                    try:
                        batch.append(events.get_nowait())
                    except queue.Empty:
                        break
                done = batch[-1] is _END
                texts = [t for t in batch if t is not _END]
                if texts:
                    yield texts
                if done:
                    break
            worker.join()
            outcome: Outcome = box["outcome"]
            end: dict[str, Any] = {"outcome": outcome.to_dict(), "report": self.report()}
            if ship_outputs and outcome.result is not None:
                end["files"] = self._output_files(outcome.result.get("ui") or {})
            yield end
        finally:
            self._events = None
            self.current = None
            self._interrupt_requested.discard(run_id)

    # --- the run's own thread --------------------------------------------------------
    def publish(self, event: dict[str, Any]) -> None:
        """The observer's events: encoded here, with this worker's id, for the generator."""
        events = self._events
        if events is not None:
            events.put(encode_event({**event, "worker": self.worker_id}))

    def _execute(self, run_id: str, text: str, uploads: dict[str, bytes] | None,
                 events: "queue.SimpleQueue[Any]", box: dict[str, Any]) -> None:
        from loom.workflow import parse_json
        assert self.executor is not None
        obs = ForwardingObserver(self, run_id)
        try:
            try:
                self._write_uploads(uploads or {})
                document = parse_json(text, f"run {run_id}")
            except BaseException as exc:  # noqa: BLE001 - a bad row or upload fails the run
                box["outcome"] = unconverted(run_id, None, None, exc)
                return
            box["outcome"] = execute(self.executor, document, obs, run_id, self._stopping.is_set,
                                     lambda: document)
            self._remember(document)
        finally:
            events.put(_END)

    def _remember(self, document: dict[str, Any]) -> None:
        """Note the static cache keys of the plan that just ran (for the next report)."""
        assert self.executor is not None
        try:
            plan = self.executor.compile(document)  # from the executor's recent-plan cache
        except Exception:  # noqa: BLE001 - an invalid workflow leaves nothing cached
            return
        for step in plan.steps.values():
            if step.key:
                self._recent[step.key] = None
                self._recent.move_to_end(step.key)
        while len(self._recent) > MAX_REPORTED_KEYS:
            self._recent.popitem(last=False)

    def _write_uploads(self, uploads: dict[str, bytes]) -> None:
        from loom.paths import resolve_inside
        for name, data in uploads.items():
            path = resolve_inside(self.settings.inputs, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def _output_files(self, ui: dict[str, Any]) -> dict[str, bytes]:
        """The output images a finished run shows, read back for a server on another host."""
        from loom.paths import resolve_inside
        files: dict[str, bytes] = {}
        for shown in ui.values():
            for image in (shown or {}).get("images") or ():
                if isinstance(image, dict) and image.get("kind") == "output":
                    try:
                        files[image["path"]] = resolve_inside(self.settings.outputs,
                                                              image["path"]).read_bytes()
                    except (OSError, ValueError) as exc:
                        log.warning("%s: output %s not sent: %s", self.worker_id, image, exc)
        return files
