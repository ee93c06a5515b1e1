"""Benchmark the Ray worker against the in-process worker.

    python bench/ray.py [--latency-runs 40] [--work-runs 16] [--work-ms 100] [--repeat 3]
                        [--cpu-iters N]   # CPU-bound runs instead of waiting ones

Starts a private local Ray cluster (127.0.0.1, its own temporary HOME and RAY_TMPDIR) and,
for each worker (the in-process thread; Ray with 1 and 2 CPU actors), a real server on a
loopback port with a tiny node pack. It prints, as medians:

* latency of one trivial run at a time, POST /api/runs → ``run.finished`` on the WebSocket,
  and the per-run overhead of the Ray path over the in-process worker;
* throughput of a burst of runs whose node waits ``--work-ms`` (standing in for GPU time,
  which releases the GIL), from the first POST to the last ``run.finished``.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# this file is bench/ray.py: its folder must not shadow the ray package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

log = logging.getLogger("bench.ray")
NODE_PACK = '''
import time
from loom import Context, Input, node

@node(category="bench")
def bench_add(a: int = Input(0), b: int = Input(0)) -> int:
    """a + b."""
    return a + b

@node(category="bench")
def bench_work(value: int = Input(0), ms: int = Input(100, ge=0, le=100000)) -> int:
    """Wait ``ms`` milliseconds (like a GPU kernel: the GIL is free meanwhile)."""
    time.sleep(ms / 1000)
    return value

@node(category="bench")
def bench_burn(value: int = Input(0), iters: int = Input(100, ge=1, le=100000)) -> int:
    """CPU-bound work: ``iters`` products of 256×256 matrices on this worker's torch threads."""
    import torch
    a = torch.rand(256, 256, generator=torch.Generator().manual_seed(value))
    for _ in range(iters):
        a = torch.tanh(a @ a)
    return value

@node(category="bench", output=True)
def bench_show(ctx: Context, value: int) -> None:
    """Show a number."""
    ctx.show(values={"value": value})
'''


def _wf(node: dict[str, Any]) -> dict[str, Any]:
    return {"format": "loom.workflow", "version": 1,
            "nodes": {"n": node, "show": {"type": "bench_show",
                                          "inputs": {"value": {"node": "n", "output": "int"}}}}}


class Server:
    """A Loom server on a free loopback port, with a WebSocket that collects ends."""

    def __init__(self, home: Path, ray_workers: int | None) -> None:
        from loom import Registry, Settings
        from loom.plugins import load_folder
        from loom_server import RayOptions, ServerConfig, create_app
        settings = Settings(home=home, device="cpu")
        registry = Registry()
        load_folder(registry, home / "custom_nodes")
        ray = None
        if ray_workers:
            ray = RayOptions(address=None, cpu_workers=ray_workers, cpu_threads=1,
                             builtin_nodes=False)
        self.app = create_app(settings, ServerConfig(ray=ray), registry=registry)
        self.ray_workers = ray_workers
        self.ends: dict[str, asyncio.Future[float]] = {}

    async def __aenter__(self) -> "Server":
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.base + "/api/events")
        self.reader = asyncio.create_task(self._read())
        await self._wait_ready()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.reader.cancel()
        await self.ws.close()
        await self.session.close()
        await self.runner.cleanup()

    async def _wait_ready(self) -> None:
        want = self.ray_workers or 1
        while True:
            async with self.session.get(self.base + "/api/system") as resp:
                if resp.status == 200:
                    workers = (await resp.json())["workers"]
                    if sum(w["state"] == "idle" for w in workers) >= want:
                        return
            await asyncio.sleep(0.1)

    async def _read(self) -> None:
        async for msg in self.ws:
            data = msg.json()
            for ev in data if isinstance(data, list) else [data]:
                if ev.get("type") in ("run.finished", "run.failed"):
                    fut = self.ends.setdefault(ev["run"], asyncio.get_running_loop().create_future())
                    if not fut.done():
                        fut.set_result(time.perf_counter())

    async def post(self, workflow: dict[str, Any]) -> str:
        async with self.session.post(self.base + "/api/runs", json=workflow) as resp:
            body = await resp.json()
            assert resp.status == 201, body
        self.ends.setdefault(body["id"], asyncio.get_running_loop().create_future())
        return str(body["id"])

    async def latency_ms(self, runs: int) -> float:
        """Median ms from POST to run.finished, one trivial run at a time (after a warm-up)."""
        times = []
        for i in range(runs + 3):
            t0 = time.perf_counter()
            run_id = await self.post(_wf({"type": "bench_add", "inputs": {"a": i, "b": 1}}))
            t1 = await asyncio.wait_for(self.ends[run_id], 60)
            if i >= 3:
                times.append((t1 - t0) * 1000)
        return statistics.median(times)

    async def throughput(self, runs: int, work_ms: int, salt: int, cpu_iters: int = 0) -> float:
        """Runs/s for a burst of ``runs`` runs that each wait ``work_ms`` (or, with
        ``cpu_iters``, compute that many matrix products: CPU-bound work)."""
        t0 = time.perf_counter()
        node = ({"type": "bench_burn", "inputs": {"iters": cpu_iters}} if cpu_iters
                else {"type": "bench_work", "inputs": {"ms": work_ms}})
        ids = [await self.post(_wf({**node, "inputs": {**node["inputs"], "value": salt * 100000 + i}}))
               for i in range(runs)]
        last = max([await asyncio.wait_for(self.ends[r], 120) for r in ids])
        return runs / (last - t0)


def start_cluster(base: Path) -> None:
    """A private local Ray cluster on 127.0.0.1 (environment first: Ray reads it on import)."""
    os.environ.update(HOME=str(base / "home"), RAY_TMPDIR=str(base / "tmp"),
                      RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    os.environ.pop("RAY_ADDRESS", None)
    (base / "home").mkdir(exist_ok=True)
    import ray
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level=logging.WARNING, _temp_dir=str(base / "tmp"))


async def measure(args: argparse.Namespace, base: Path) -> list[tuple[str, float, float]]:
    rows = []
    for label, workers in (("in-process thread", None), ("Ray, 1 CPU actor", 1),
                           ("Ray, 2 CPU actors", 2)):
        home = base / f"home-{workers or 0}"
        (home / "custom_nodes").mkdir(parents=True)
        (home / "custom_nodes" / "bench_nodes.py").write_text(NODE_PACK)
        async with Server(home, workers) as server:
            latency = await server.latency_ms(args.latency_runs)
            rates = [await server.throughput(args.work_runs, args.work_ms, r, args.cpu_iters)
                     for r in range(args.repeat)]
        rows.append((label, latency, statistics.median(rates)))
        log.info("%s done", label)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-runs", type=int, default=40)
    parser.add_argument("--work-runs", type=int, default=16)
    parser.add_argument("--work-ms", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu-iters", type=int, default=0,
                        help="CPU-bound runs instead: N products of 256x256 matrices each")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    base = Path(tempfile.mkdtemp(prefix="loombench"))
    start_cluster(base)
    import ray
    try:
        rows = asyncio.run(measure(args, base))
    finally:
        ray.shutdown()
    thread_latency = rows[0][1]
    work = (f"runs/s ({args.cpu_iters} matmuls)" if args.cpu_iters
            else f"runs/s ({args.work_ms} ms wait)")
    out = [f"bench/ray.py on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
           f"ray {ray.__version__} (medians)",
           f"{'worker':<20} {'latency ms':>11} {'overhead ms':>12} "
           f"{work:>24}"]
    for label, latency, rate in rows:
        out.append(f"{label:<20} {latency:>11.1f} {latency - thread_latency:>12.1f} {rate:>24.2f}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
