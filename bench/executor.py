"""Executor overhead on trivial integer nodes: a deep chain and a wide fan-in.

Prints, for 1,000 and 10,000 nodes: validate, first run, fully cached re-run and a
re-run after changing one widget in the middle, plus the per-node overhead in µs.

    python bench/executor.py [--sizes 1000 10000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from typing import Callable

from loom import Executor, Registry, Settings, node, validate


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


def L(n: str) -> dict[str, str]:
    return {"node": n, "output": "int"}


def chain(n: int) -> tuple[dict, str]:
    nodes = {"n0": {"type": "bench_const", "inputs": {"value": 1}}}
    for i in range(1, n - 1):
        nodes[f"n{i}"] = {"type": "bench_add", "inputs": {"a": L(f"n{i-1}"), "b": 1}}
    nodes["out"] = {"type": "bench_out", "inputs": {"value": L(f"n{n-2}")}}
    return {"nodes": nodes}, f"n{n // 2}"


def fan_in(n: int) -> tuple[dict, str]:
    """n/2 constants reduced pairwise by add nodes into one output (wide, shallow)."""
    nodes: dict = {}
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
    return {"nodes": nodes}, f"c{n // 4}"


def timed(fn: Callable[[], object], repeat: int) -> float:
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t0)
    return min(best)


def measure(shape: str, n: int, repeat: int) -> dict[str, float]:
    reg = Registry()
    reg.add(bench_const, bench_add, bench_out)
    wf, middle = (chain if shape == "chain" else fan_in)(n)
    count = len(wf["nodes"])
    settings = Settings(home=tempfile.mkdtemp())
    t_validate = timed(lambda: validate(wf, reg), repeat)

    def first() -> None:
        Executor(reg, settings=settings).run(wf)
    t_first = timed(first, repeat)
    ex = Executor(reg, settings=settings)
    ex.run(wf)
    t_cached = timed(lambda: ex.run(wf), repeat)
    flip = [0]

    def changed() -> None:
        flip[0] += 1
        wf["nodes"][middle]["inputs"]["b" if shape == "chain" else "value"] = 1000 + flip[0]
        ex.run(wf)
    t_changed = timed(changed, repeat)
    return {"nodes": count, "validate": t_validate, "first": t_first, "cached": t_cached,
            "changed": t_changed, "per_node_us": t_first / count * 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sys.setrecursionlimit(1000)  # prove we need no deep recursion
    rows = []
    for shape in ("chain", "fan-in"):
        for n in args.sizes:
            rows.append((shape, measure(shape, n, args.repeat)))
    print(f"{'graph':<8} {'nodes':>7} {'validate':>10} {'first run':>10} {'cached':>10} "
          f"{'1 changed':>10} {'µs/node':>8}")
    for shape, r in rows:
        print(f"{shape:<8} {r['nodes']:>7} {r['validate']*1e3:>8.1f}ms {r['first']*1e3:>8.1f}ms "
              f"{r['cached']*1e3:>8.1f}ms {r['changed']*1e3:>8.1f}ms {r['per_node_us']:>8.1f}")
    by = {(s, r["nodes"]): r for s, r in rows}
    for shape in ("chain", "fan-in"):
        sizes = sorted(n for s, n in by if s == shape)
        if len(sizes) >= 2:
            ratio = by[(shape, sizes[-1])]["first"] / by[(shape, sizes[0])]["first"]
            print(f"{shape}: {sizes[-1]} nodes cost {ratio:.1f}× what {sizes[0]} cost "
                  f"(linear would be {sizes[-1] / sizes[0]:.0f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
