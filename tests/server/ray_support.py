"""Shared by the Ray tests: a private local Ray cluster on 127.0.0.1 and apps that use it."""
from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from loom import Registry, Settings
from loom.plugins import load_folder
from loom_server import RayOptions, ServerConfig, create_app
from srv_helpers import NODES_DIR, link, wf

RAY_NODES_DIR = Path(__file__).parent / "ray_nodes"
PLUGIN = '''"""A plugin dropped into custom_nodes/ (loaded by the actors from the home folder)."""
import os
from loom import Input, node


@node(category="test")
def plugin_times_ten(value: int = Input(0)) -> int:
    """Multiply by ten."""
    return value * 10
'''


def listeners() -> set[tuple[str, str]]:
    """(address:port, process) of every listening TCP socket (``ss -ltnp``)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=False).stdout
    found = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            found.add((parts[3], parts[5] if len(parts) > 5 else ""))
    return found


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@contextmanager
def local_cluster(num_cpus: int = 2) -> Iterator[dict[str, Any]]:
    """Start a private Ray cluster (own HOME and RAY_TMPDIR, 127.0.0.1, no usage stats);
    yields facts about it; stops it and checks that none of its processes is left."""
    base = Path(tempfile.mkdtemp(prefix="loomray"))  # short: Ray's socket paths are limited
    saved = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED",
                                              "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    os.environ.update(HOME=str(base / "home"), RAY_TMPDIR=str(base / "tmp"),
                      RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    os.environ.pop("RAY_ADDRESS", None)
    (base / "home").mkdir()
    import ray  # after the environment: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER on import
    before = listeners()
    t0 = time.monotonic()
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 logging_level=logging.WARNING, _temp_dir=str(base / "tmp"))
        info = {"base": base, "init_s": time.monotonic() - t0,
                "new_listeners": listeners() - before}
        yield info
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    deadline = time.monotonic() + 20
    while processes_mentioning(str(base)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = processes_mentioning(str(base))
    assert not left, f"Ray processes left after shutdown: {left}"


def ray_home(home: Path) -> Settings:
    """Settings for a test home: the server test nodes, the Ray test nodes, a plugin in
    home/custom_nodes, and two tiny 'checkpoints'."""
    (home / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (home / "custom_nodes" / "plugin_ten.py").write_text(PLUGIN)
    ckpt = home / "models" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    for name in ("alpha.safetensors", "beta.safetensors"):
        (ckpt / name).write_bytes(b"not really a checkpoint")
    return Settings(home=home, custom_nodes_dirs=[NODES_DIR, RAY_NODES_DIR], device="cpu")


def server_registry(settings: Settings) -> Registry:
    """What the actors load (custom_nodes folders only), loaded in the server for compiling."""
    reg = Registry()
    for folder in settings.custom_nodes_roots:
        load_folder(reg, folder)
    assert not reg.plugin_errors, reg.plugin_errors
    return reg


def ray_app(settings: Settings, workers: int = 2, **options: Any):
    """An app whose runs go to ``workers`` CPU actors on the Ray this process initialised."""
    opts = RayOptions(address=None, cpu_workers=workers, cpu_threads=1, builtin_nodes=False,
                      **options)
    return create_app(settings, ServerConfig(ray=opts, progress_interval_s=0.0),
                      registry=server_registry(settings))


async def wait_workers(client, count: int, timeout: float = 90.0) -> list[dict[str, Any]]:
    """Poll /api/system until ``count`` workers are idle; returns them."""
    end = time.monotonic() + timeout
    while True:
        resp = await client.get("/api/system")
        if resp.status == 200:
            workers = (await resp.json())["workers"]
            if sum(w["state"] == "idle" for w in workers) >= count:
                return workers
        assert time.monotonic() < end, f"Ray workers not ready: {await resp.text()}"
        await asyncio.sleep(0.1)


def model_run(model: str, value: int) -> dict[str, Any]:
    """ray_load(model) → ray_use(value) → srv_show."""
    return wf(load={"type": "ray_load", "inputs": {"model": model}},
              use={"type": "ray_use", "inputs": {"model": link("load", "ray_model"), "value": value}},
              show={"type": "srv_show", "inputs": {"value": link("use", "int")}})
