"""Benchmark: neural style transfer through Loom at 256×256, seconds per step for each optimizer.

    python bench/style.py [--size 256] [--steps 100] [--optimizers lbfgs adam] [--device auto]

Runs the real ``style_transfer`` node (bundled EfficientNet-Lite0, default layers and
weights; content = scikit-image "astronaut", style = "coffee") through the executor and
prints one table row per optimizer. L-BFGS runs a strong-Wolfe line search, so one of its
steps costs one or more forward+backward passes; the "evals/step" column says how many.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loom import BaseObserver, Executor, Registry, Settings  # noqa: E402
from loom_nodes._lib import feature_nets  # noqa: E402


class Timer(BaseObserver):
    """Records when the style node starts, its progress steps and its last losses."""

    def __init__(self) -> None:
        self.start = 0.0
        self.first_step = 0.0
        self.end = 0.0
        self.first: dict[str, Any] = {}
        self.last: dict[str, Any] = {}

    def node_started(self, run: str, node: str) -> None:
        if node == "st":
            self.start = time.perf_counter()

    def node_progress(self, run: str, node: str, value: int, total: int, preview: Any,
                      info: dict[str, Any]) -> None:
        if node != "st":
            return
        if value == 1:
            self.first_step, self.first = time.perf_counter(), dict(info)
        self.last = dict(info)

    def node_finished(self, run: str, node: str, ui: dict[str, Any]) -> None:
        if node == "st":
            self.end = time.perf_counter()


class CountingNet:
    """Counts forward passes of the feature net (one per loss evaluation)."""

    def __init__(self) -> None:
        self.calls = 0
        self._orig = feature_nets.FeatureNet.extract

    def __enter__(self) -> "CountingNet":
        counter = self

        def extract(net: Any, images: torch.Tensor, layers: Any) -> Any:
            if torch.is_grad_enabled():
                counter.calls += 1
            return counter._orig(net, images, layers)

        feature_nets.FeatureNet.extract = extract  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        feature_nets.FeatureNet.extract = self._orig  # type: ignore[method-assign]


def workflow(size: int, steps: int, optimizer: str) -> dict[str, Any]:
    """The benchmark graph: two sample images → resize → style_transfer → capture."""
    link = lambda n, o="image": {"node": n, "output": o}  # noqa: E731
    return {"nodes": {
        "c0": {"type": "sample_image", "inputs": {"name": "astronaut"}},
        "c": {"type": "resize_image", "inputs": {"image": link("c0"), "width": size, "height": size}},
        "s": {"type": "sample_image", "inputs": {"name": "coffee"}},
        "f": {"type": "load_feature_extractor", "inputs": {}},
        "st": {"type": "style_transfer", "inputs": {
            "content": link("c"), "style": link("s"), "extractor": link("f", "feature_extractor"),
            "steps": steps, "optimizer": optimizer}},
        "out": {"type": "preview_image", "inputs": {"images": link("st")}},
    }}


def main() -> None:
    """Run each optimizer once and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--home", default="/tmp/loom-bench-style")
    args = ap.parse_args()
    import loom_nodes.features, nodes.image_io, nodes.image_ops, nodes.style  # noqa: E401,F401
    reg = Registry()
    for mod in ("loom_nodes.features", "loom_nodes.image_io", "loom_nodes.image_ops", "loom_nodes.style"):
        reg.add_module(mod)
    ex = Executor(reg, settings=Settings(home=Path(args.home), device=args.device))
    print(f"style transfer {args.size}×{args.size}, {args.steps} steps, EfficientNet-Lite0, "
          f"device {ex.device}, torch threads {torch.get_num_threads()}")
    rows = []
    for opt in args.optimizers:
        timer = Timer()
        with CountingNet() as counter:
            ex.run(workflow(args.size, args.steps, opt), observer=timer)
        total = timer.end - timer.start
        loop = timer.end - timer.first_step
        rows.append((opt, total, loop / max(1, args.steps - 1), counter.calls / args.steps,
                     timer.first.get("loss", float("nan")), timer.last.get("loss", float("nan"))))
    print(f"{'optimizer':<10} {'node s':>8} {'s/step':>8} {'evals/step':>11} {'loss first':>11} {'loss last':>10}")
    for opt, total, per, evals, l0, l1 in rows:
        print(f"{opt:<10} {total:>8.1f} {per:>8.3f} {evals:>11.2f} {l0:>11.4g} {l1:>10.4g}")


if __name__ == "__main__":
    main()
