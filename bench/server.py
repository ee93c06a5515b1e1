"""Benchmark the server: queue trivial runs over HTTP while WebSocket clients listen.

    python bench/server.py [--runs 500] [--clients 20] [--paced 100]

Starts `python -m loom_server` in a temporary home with a tiny custom node pack, then prints
the time to the first HTTP answer, runs/s for a burst of queued runs, p50/p99 latency from
POST to `run.finished` (burst and one-at-a-time), events lost across all clients (must be
0) and the server's RSS before and after.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from _serve import free_port, start_server

NODE_PACK = '''
from loom import Context, Input, node

@node(category="bench")
def bench_add(a: int = Input(0), b: int = Input(0)) -> int:
    """a + b."""
    return a + b

@node(category="bench", output=True)
def bench_show(ctx: Context, value: int) -> None:
    """Show a number."""
    ctx.show(values={"value": value})
'''
EXPECTED = ["run.queued", "run.started"] + ["node.started", "node.finished"] * 3 + ["run.finished"]


def workflow(i: int) -> dict[str, Any]:
    """Three trivial nodes; ``i`` makes every run miss the cache."""
    return {"format": "loom.workflow", "version": 1, "nodes": {
        "a": {"type": "bench_add", "inputs": {"a": i, "b": 1}},
        "b": {"type": "bench_add", "inputs": {"a": {"node": "a", "output": "int"}, "b": 2}},
        "show": {"type": "bench_show", "inputs": {"value": {"node": "b", "output": "int"}}}}}


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) in milliseconds."""
    s = sorted(values)
    return 1000 * s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


class Listener:
    """One WebSocket client recording every event of every run, with arrival times."""

    def __init__(self) -> None:
        self.events: dict[str, list[str]] = {}
        self.finished_at: dict[str, float] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def listen(self, session: aiohttp.ClientSession, url: str) -> None:
        """Read until the socket closes."""
        self.ws = await session.ws_connect(url, max_msg_size=0)
        async for msg in self.ws:
            data = msg.json()  # one event, or the events of one server tick (an array)
            for ev in data if isinstance(data, list) else [data]:
                run = ev.get("run")
                if run is None:
                    continue
                self.events.setdefault(run, []).append(ev["type"])
                if ev["type"] in ("run.finished", "run.failed"):
                    self.finished_at[run] = time.perf_counter()


async def bench(port: int, runs: int, clients: int, paced: int, pid: int) -> dict[str, Any]:
    """Run the measurements against a started server."""
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"rss_before": rss_mb(pid)}
    async with aiohttp.ClientSession() as session:
        listeners = [Listener() for _ in range(clients)]
        tasks = [asyncio.create_task(lst.listen(session, f"{base}/api/events")) for lst in listeners]
        while any(lst.ws is None for lst in listeners):
            await asyncio.sleep(0.01)
        posted: dict[str, float] = {}
        sem = asyncio.Semaphore(8)

        async def post(i: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                async with session.post(f"{base}/api/runs", json=workflow(i)) as resp:
                    body = await resp.json()
                    assert resp.status == 201, body
                    posted[body["id"]] = t0

        t_start = time.perf_counter()
        await asyncio.gather(*(post(i) for i in range(runs)))
        out["post_s"] = time.perf_counter() - t_start
        deadline = time.perf_counter() + 300
        while any(len(lst.finished_at) < runs for lst in listeners):
            assert time.perf_counter() < deadline, "runs did not finish within 300 s"
            await asyncio.sleep(0.01)
        t_end = max(listeners[0].finished_at.values())
        out["runs_per_s"] = runs / (t_end - t_start)
        lat = [listeners[0].finished_at[r] - t for r, t in posted.items()]
        out["burst_p50"], out["burst_p99"] = pct(lat, 50), pct(lat, 99)
        lost = 0
        for lst in listeners:
            for run_id in posted:
                got = lst.events.get(run_id, [])
                lost += sum(max(0, EXPECTED.count(t) - got.count(t)) for t in set(EXPECTED))
                assert got == EXPECTED or len(got) < len(EXPECTED), (run_id, got)
        out["events_lost"] = lost
        out["events_per_client"] = sum(len(v) for v in listeners[0].events.values())
        paced_lat = []
        for i in range(paced):
            t0 = time.perf_counter()
            async with session.post(f"{base}/api/runs", json=workflow(runs + i)) as resp:
                run_id = (await resp.json())["id"]
            while run_id not in listeners[0].finished_at:
                await asyncio.sleep(0.0005)
            paced_lat.append(listeners[0].finished_at[run_id] - t0)
        if paced_lat:
            out["paced_p50"], out["paced_p99"] = pct(paced_lat, 50), pct(paced_lat, 99)
        out["rss_after"] = rss_mb(pid)
        for lst in listeners:
            if lst.ws is not None:
                await lst.ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)
    return out


def main() -> int:
    """Parse flags, run, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--paced", type=int, default=100, help="one-at-a-time runs for latency")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "custom_nodes").mkdir()
        (home / "custom_nodes" / "bench_nodes.py").write_text(NODE_PACK)
        port = free_port()
        proc, first, ready = start_server(home, port)
        try:
            r = asyncio.run(bench(port, args.runs, args.clients, args.paced, proc.pid))
        finally:
            proc.terminate()
            proc.wait(30)
    rows = [
        ("first HTTP answer after spawn", f"{first:.2f} s"),
        ("node registry ready after spawn", f"{ready:.2f} s"),
        (f"queue {args.runs} runs (8 concurrent POSTs)", f"{r['post_s']:.2f} s"),
        ("throughput, POST of the first to run.finished of the last", f"{r['runs_per_s']:.0f} runs/s"),
        ("burst latency POST → run.finished p50 / p99",
         f"{r['burst_p50']:.0f} / {r['burst_p99']:.0f} ms"),
        (f"one-at-a-time latency p50 / p99 ({args.paced} runs)",
         f"{r.get('paced_p50', float('nan')):.1f} / {r.get('paced_p99', float('nan')):.1f} ms"),
        (f"events per client ({args.clients} clients)", f"{r['events_per_client']}"),
        ("events lost (all clients)", f"{r['events_lost']}"),
        ("server RSS before / after", f"{r['rss_before']:.0f} / {r['rss_after']:.0f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"bench/server.py on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    return 1 if r["events_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
