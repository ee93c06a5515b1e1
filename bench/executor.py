"""Executor overhead on trivial integer nodes, in-process and through the server.

For a deep chain and a wide fan-in of 1,000 and 10,000 nodes it prints compile (validate),
first run, fully cached re-run and a re-run after changing one widget in the middle (and
checks that only that node's descendants ran), then the same chain queued through a real
`python -m loom_server`: POST /api/runs → `run.finished` on the WebSocket, first and cached.
Every figure is the median of --repeat runs after one warm-up. The registry is the real
default one (built-in nodes + the bench pack as a custom_nodes plugin) and runs report to an
observer, as the CLI's and the server's do.

    python bench/executor.py [--sizes 1000 10000] [--repeat 5] [--no-server]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from loom import BaseObserver, Executor, Registry, Settings, compile_workflow

NODE_PACK = '''
from loom import node

@node(id="bench_const", category="bench")
def bench_const(value: int = 0) -> int:
    """A constant."""
    return value

@node(id="bench_add", category="bench")
def bench_add(a: int, b: int = 0) -> int:
    """a + b."""
    return a + b

@node(id="bench_out", category="bench", output=True)
def bench_out(value: int) -> int:
    """Output."""
    return value
'''


class Counting(BaseObserver):
    """An observer that does what a cheap real one does: count events."""

    def __init__(self) -> None:
        self.events = 0

    def node_started(self, run: str, node: str) -> None:
        self.events += 1

    def node_finished(self, run: str, node: str, ui: dict[str, Any]) -> None:
        self.events += 1

    def node_cached(self, run: str, node: str, ui: dict[str, Any]) -> None:
        self.events += 1


def L(n: str) -> dict[str, str]:
    return {"node": n, "output": "int"}


def chain(n: int) -> tuple[dict[str, Any], str, int]:
    """n nodes in a line; (workflow, middle node, how many nodes a change there re-runs)."""
    nodes = {"n0": {"type": "bench_const", "inputs": {"value": 1}}}
    for i in range(1, n - 1):
        nodes[f"n{i}"] = {"type": "bench_add", "inputs": {"a": L(f"n{i-1}"), "b": 1}}
    nodes["out"] = {"type": "bench_out", "inputs": {"value": L(f"n{n-2}")}}
    return {"nodes": nodes}, f"n{n // 2}", n - n // 2


def fan_in(n: int) -> tuple[dict[str, Any], str, int]:
    """n/2 constants reduced pairwise by add nodes into one output (wide, shallow)."""
    nodes: dict[str, Any] = {}
    level = []
    for i in range(n // 2):
        nodes[f"c{i}"] = {"type": "bench_const", "inputs": {"value": i}}
        level.append(f"c{i}")
    k = 0
    while len(level) > 1:
        nxt = []
        for j in range(0, len(level) - 1, 2):
            nodes[f"a{k}"] = {"type": "bench_add", "inputs": {"a": L(level[j]), "b": L(level[j + 1])}}
            nxt.append(f"a{k}")
            k += 1
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    nodes["out"] = {"type": "bench_out", "inputs": {"value": L(level[0])}}
    middle = f"c{n // 4}"
    descendants, frontier = {middle}, [middle]
    while frontier:
        frontier = [nid for nid, e in nodes.items() if nid not in descendants
                    and any(v.get("node") in frontier for v in e["inputs"].values() if isinstance(v, dict))]
        descendants.update(frontier)
    return {"nodes": nodes}, middle, len(descendants)


def median(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(reg: Registry, settings: Settings, shape: str, n: int, repeat: int) -> dict[str, float]:
    wf, middle, rerun = (chain if shape == "chain" else fan_in)(n)
    count = len(wf["nodes"])
    t_compile = median(lambda: compile_workflow(wf, reg, settings), repeat)
    t_first = median(lambda: Executor(reg, settings=settings).run(wf, Counting()), repeat)
    ex = Executor(reg, settings=settings)
    ex.run(wf)
    t_cached = median(lambda: ex.run(wf, Counting()), repeat)
    flip = [0]
    executed: list[int] = []

    def changed() -> None:
        flip[0] += 1
        wf["nodes"][middle]["inputs"]["b" if shape == "chain" else "value"] = 1_000_000 + flip[0]  # a value no other constant has
        executed.append(len(ex.run(wf, Counting()).executed))
    t_changed = median(changed, repeat)
    if any(e != rerun for e in executed):
        raise SystemExit(f"{shape} {n}: a one-widget change re-ran {executed} nodes, expected {rerun}")
    return {"nodes": count, "compile": t_compile, "first": t_first, "cached": t_cached,
            "changed": t_changed, "rerun": rerun, "per_node_us": t_first / count * 1e6}


async def _server_path(port: int, wf: dict[str, Any], repeat: int) -> tuple[float, float]:
    """Median POST → run.finished, first (cache-missing) and fully cached, through the server."""
    import aiohttp
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{base}/api/events", max_msg_size=0)
        finished: dict[str, asyncio.Future[float]] = {}

        async def listen() -> None:
            async for msg in ws:
                data = msg.json()
                for ev in data if isinstance(data, list) else [data]:
                    if ev.get("type") in ("run.finished", "run.failed"):
                        fut = finished.setdefault(ev["run"], asyncio.get_running_loop().create_future())
                        if not fut.done():
                            fut.set_result(time.perf_counter()) if ev["type"] == "run.finished" \
                                else fut.set_exception(RuntimeError(ev.get("message")))
        listener = asyncio.create_task(listen())

        async def once(body: bytes) -> float:
            t0 = time.perf_counter()
            async with session.post(f"{base}/api/runs", data=body,
                                    headers={"Content-Type": "application/json"}) as resp:
                run_id = (await resp.json())["id"]
            fut = finished.setdefault(run_id, asyncio.get_running_loop().create_future())
            return await asyncio.wait_for(fut, 120) - t0

        first, cached = [], []
        for i in range(repeat + 1):
            wf["nodes"]["n0"]["inputs"]["value"] = 10_000 + i  # every node misses the cache
            body = json.dumps(wf).encode()
            first.append(await once(body))
            cached.append(await once(body))
        listener.cancel()
        await ws.close()
    return statistics.median(first[1:]), statistics.median(cached[1:])


def server_rows(sizes: list[int], repeat: int) -> list[tuple[int, float, float]]:
    """Start the server once with the bench pack and measure the chain at each size."""
    from _serve import free_port, start_server
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "custom_nodes").mkdir()
        (home / "custom_nodes" / "bench_nodes.py").write_text(NODE_PACK)
        port = free_port()
        proc, _, _ = start_server(home, port)
        try:
            for n in sizes:
                first, cached = asyncio.run(_server_path(port, chain(n)[0], repeat))
                rows.append((n, first, cached))
        finally:
            proc.terminate()
            proc.wait(30)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-server", action="store_true", help="only the in-process figures")
    args = ap.parse_args()
    sys.setrecursionlimit(1000)  # prove we need no deep recursion
    tmp = Path(tempfile.mkdtemp())
    (tmp / "custom_nodes").mkdir()
    (tmp / "custom_nodes" / "bench_nodes.py").write_text(NODE_PACK)
    settings = Settings(home=tmp, device="cpu")
    reg = Registry.default(settings)
    rows = [(shape, measure(reg, settings, shape, n, args.repeat))
            for shape in ("chain", "fan-in") for n in args.sizes]
    print(f"in-process, median of {args.repeat} after a warm-up ({len(reg)} node types registered)")
    print(f"{'graph':<8} {'nodes':>7} {'compile':>10} {'first run':>10} {'cached':>10} "
          f"{'1 changed':>10} {'re-ran':>7} {'µs/node':>8}")
    for shape, r in rows:
        print(f"{shape:<8} {r['nodes']:>7} {r['compile']*1e3:>8.1f}ms {r['first']*1e3:>8.1f}ms "
              f"{r['cached']*1e3:>8.1f}ms {r['changed']*1e3:>8.1f}ms {r['rerun']:>7} "
              f"{r['per_node_us']:>8.1f}")
    by = {(s, r["nodes"]): r for s, r in rows}
    for shape in ("chain", "fan-in"):
        sizes = sorted(n for s, n in by if s == shape)
        if len(sizes) >= 2:
            ratio = by[(shape, sizes[-1])]["first"] / by[(shape, sizes[0])]["first"]
            print(f"{shape}: {sizes[-1]} nodes cost {ratio:.1f}× what {sizes[0]} cost "
                  f"(linear would be {sizes[-1] / sizes[0]:.0f}×)")
    if not args.no_server:
        print(f"\nthrough the server (POST /api/runs → run.finished), chain, median of {args.repeat}")
        print(f"{'nodes':>7} {'first run':>10} {'cached':>10}")
        for n, first, cached in server_rows(args.sizes, args.repeat):
            print(f"{n:>7} {first*1e3:>8.1f}ms {cached*1e3:>8.1f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
