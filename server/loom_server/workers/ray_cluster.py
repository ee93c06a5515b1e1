"""Connecting to Ray and creating the actors (the only module that starts Ray).

``--ray auto`` attaches to a Ray already running on this machine or starts a local one
(bound to 127.0.0.1, like the server); ``--ray ADDRESS`` attaches to a cluster. One actor
per GPU (``num_gpus=1``) by default; ``--ray-cpu-workers N`` adds N CPU actors, each with
its share of the CPUs as torch threads."""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RayOptions

if TYPE_CHECKING:
    from loom import Settings

log = logging.getLogger(__name__)
ACTOR_CONCURRENCY = 4  # run + interrupt + report at once (threads in the actor)


def connect(options: RayOptions) -> tuple[bool, str]:
    """Initialise Ray in this process: (whether we started/attached it, this node's id)."""
    if options.address in (None, "auto") and "ray" not in sys.modules and not _local_cluster_known():
        # the local cluster we are about to start listens on 127.0.0.1 only (Ray reads this
        # when first imported; set only when starting one: attaching needs the real address)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    owns = False
    if not ray.is_initialized():
        quiet = {"include_dashboard": False, "logging_level": logging.WARNING}
        if options.address in (None, "auto"):
            try:
                ray.init(address="auto", **quiet)
            except ConnectionError:
                log.info("no Ray cluster running here: starting a local one on 127.0.0.1")
                ray.init(_node_ip_address="127.0.0.1", **quiet)
        else:
            ray.init(address=options.address, **quiet)
        owns = True
    return owns, ray.get_runtime_context().get_node_id()


def _local_cluster_known() -> bool:
    """Is there a Ray cluster that ``ray.init(address="auto")`` would attach to?"""
    if os.environ.get("RAY_ADDRESS"):
        return True
    tmp = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir())
    return (tmp / "ray" / "ray_current_cluster").is_file()


def disconnect() -> None:
    """Leave (or stop, when we started it) the Ray cluster."""
    import ray
    ray.shutdown()


def start_actors(options: RayOptions, settings: "Settings", preview_interval_s: float,
                 progress_interval_s: float) -> list[tuple[str, str, Any]]:
    """Create the actors (without waiting for them): [(id, kind, handle)]."""
    import ray

    from .ray_actor import LoomActor
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    n_gpu = options.gpu_workers if options.gpu_workers is not None else gpus
    n_cpu = options.cpu_workers if options.cpu_workers is not None else (0 if n_gpu else 1)
    if n_gpu + n_cpu == 0:
        raise ValueError("no Ray workers: the cluster has no GPU; pass --ray-cpu-workers N")
    threads = options.cpu_threads or max(1, int(resources.get("CPU", 1)) // max(n_cpu, 1))
    base = settings
    if options.actor_home is not None:
        base = dataclasses.replace(settings, home=options.actor_home, output_dir=None)
    remote = ray.remote(LoomActor)
    common = {"max_restarts": options.max_restarts, "max_task_retries": 0,
              "max_concurrency": ACTOR_CONCURRENCY}
    out: list[tuple[str, str, Any]] = []
    for i in range(n_gpu):
        wid = f"gpu-{i}"
        handle = remote.options(num_gpus=1, num_cpus=1, **common).remote(
            wid, base, None, options.builtin_nodes, preview_interval_s, progress_interval_s)
        out.append((wid, "ray-gpu", handle))
    cpu_settings = dataclasses.replace(base, device="cpu")
    for i in range(n_cpu):
        wid = f"cpu-{i}"
        handle = remote.options(num_cpus=threads, **common).remote(
            wid, cpu_settings, threads, options.builtin_nodes, preview_interval_s,
            progress_interval_s)
        out.append((wid, "ray-cpu", handle))
    log.info("Ray workers: %d GPU actor(s), %d CPU actor(s) with %d thread(s) each",
             n_gpu, n_cpu, threads)
    return out


def kill_actor(handle: Any, for_good: bool, pid: int | None = None) -> None:
    """Kill an actor process (``for_good``: no restart). With the ``pid`` of a process on
    this machine that is already gone, nothing is done (Ray is restarting it)."""
    import ray
    if pid is not None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
    try:
        ray.kill(handle, no_restart=for_good)
    except Exception as exc:  # noqa: BLE001 - already dead, or Ray is going away
        log.debug("killing an actor: %s", exc)
