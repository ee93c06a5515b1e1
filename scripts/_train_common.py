"""Shared helpers for the shapes training scripts: args, seeding, data pools, checkpoints."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loom_nodes._lib import shapes  # noqa: E402
from loom_nodes._lib.dcgan import DCGANGenerator  # noqa: E402
from loom_nodes._lib.judge import ShapesJudge  # noqa: E402

EMBEDDED = ROOT / "models" / "embedded"


def base_parser(name: str, steps: int, minutes: float, batch: int, lr: float) -> argparse.ArgumentParser:
    """Argument parser with the options every training script shares."""
    p = argparse.ArgumentParser(description=f"train {name}")
    p.add_argument("--steps", type=int, default=steps, help="maximum optimizer steps")
    p.add_argument("--minutes", type=float, default=minutes, help="wall-clock budget (stops early)")
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work-dir", type=Path, default=Path(f"/tmp/loom_train/{name}"))
    p.add_argument("--out", type=Path, default=None, help="output folder (default models/embedded/...)")
    p.add_argument("--ckpt-every", type=int, default=200, help="checkpoint every N steps")
    p.add_argument("--pool", type=int, default=20000, help="number of pre-rendered training images")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    return p


def setup(args: argparse.Namespace) -> None:
    """Seed every RNG, set the thread count, create the work dir."""
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    args.work_dir.mkdir(parents=True, exist_ok=True)


def render_pool(n: int, seed: int, size: int = 64, chunk: int = 2000) -> tuple[torch.Tensor, list[str], list]:
    """Pre-render n images as uint8 (N,3,H,W) plus captions and specs, cached in /tmp by (n, seed, size)."""
    cache = Path(f"/tmp/loom_train/pool_{n}_{seed}_{size}.pt")
    if cache.exists():
        d = torch.load(cache, weights_only=False)
        return d["images"], d["captions"], d["specs"]
    imgs, caps, specs = [], [], []
    for i in range(0, n, chunk):
        x, c, s = shapes.make_batch(min(chunk, n - i), seed * 1_000_003 + i, size)
        imgs.append((x * 255).round().to(torch.uint8))
        caps += c
        specs += s
    images = torch.cat(imgs)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"images": images, "captions": caps, "specs": specs}, cache)
    return images, caps, specs


class Checkpointer:
    """Save/resume a dict of state_dicts and the step counter in the work dir."""

    def __init__(self, work_dir: Path, fresh: bool = False) -> None:
        self.path = work_dir / "checkpoint.pt"
        self.fresh = fresh

    def load(self, objs: dict[str, Any]) -> tuple[int, float]:
        """Restore objects in place; return (step, elapsed seconds) or (0, 0.0)."""
        if self.fresh or not self.path.exists():
            return 0, 0.0
        d = torch.load(self.path, weights_only=False, map_location="cpu")
        for k, o in objs.items():
            if k in d["state"]:
                o.load_state_dict(d["state"][k])
        torch.set_rng_state(d["rng"])
        print(f"resumed from {self.path} at step {d['step']}", flush=True)
        return int(d["step"]), float(d.get("elapsed", 0.0))

    def save(self, objs: dict[str, Any], step: int, elapsed: float) -> None:
        """Atomically write the checkpoint."""
        tmp = self.path.with_suffix(".tmp")
        torch.save({"state": {k: o.state_dict() for k, o in objs.items()}, "step": step,
                    "elapsed": elapsed, "rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, self.path)


class Budget:
    """Stop when either the step count or the wall-clock budget is reached."""

    def __init__(self, minutes: float, elapsed: float = 0.0) -> None:
        self.limit = minutes * 60.0
        self.start = time.time() - elapsed

    @property
    def elapsed(self) -> float:
        """Seconds spent, including time before a resume."""
        return time.time() - self.start

    def over(self) -> bool:
        """True once the time budget is spent."""
        return self.elapsed >= self.limit


def half_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp16 copy of floating tensors (integers untouched), contiguous for safetensors."""
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def write_json(path: Path, obj: Any) -> None:
    """Write pretty JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def folder_mb(path: Path) -> float:
    """Size of a folder in MB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def save_grid(x: torch.Tensor, path: Path, cols: int = 10) -> None:
    """Save images in [0, 1] as a PNG grid, `cols` per row (a last partial row is dropped)."""
    n = (len(x) // cols) * cols
    a = (x[:n].clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).numpy()
    h, w = a.shape[1:3]
    grid = a.reshape(n // cols, cols, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(n // cols * h, cols * w, 3)
    Image.fromarray(np.ascontiguousarray(grid)).save(path)


@torch.no_grad()
def gan_samples(gen: DCGANGenerator, cls: int, n: int, g: torch.Generator) -> torch.Tensor:
    """n samples in [0, 1] of one class, in eval mode (as Loom runs a loaded generator)."""
    was = gen.training
    gen.eval()
    x = ((gen(torch.randn(n, gen.z_dim, generator=g), torch.full((n,), cls)) + 1) / 2).clamp(0, 1)
    gen.train(was)
    return x


def sample_grid(gen: DCGANGenerator, path: Path, per_class: int = 8, seed: int = 7) -> None:
    """One row of samples per shape class, for eyeballing a generator."""
    g = torch.Generator().manual_seed(seed)
    rows = [gan_samples(gen, c, per_class, g) for c in range(len(shapes.SHAPES))]
    save_grid(torch.cat(rows), path, cols=per_class)


def judge_gan(gen: DCGANGenerator, per_class: int = 100, seed: int = 1234) -> dict[str, float]:
    """Judge accuracy on the requested shape, per class and overall, plus how varied the samples are."""
    judge = ShapesJudge.load(EMBEDDED / "shapes-judge")
    g = torch.Generator().manual_seed(seed)
    res: dict[str, float] = {}
    hits, stds, colours, positions = 0.0, [], set(), set()
    for c, name in enumerate(shapes.SHAPES):
        x = gan_samples(gen, c, per_class, g)
        pred = judge.predict(x)
        acc = float((pred["shape"] == c).float().mean())
        res[f"shape_{name}"] = acc
        hits += acc * per_class
        stds.append(float(x.flatten(1).std(0).mean()))
        colours |= set(pred["colour"].tolist())
        positions |= set(pred["position"].tolist())
    res["shape_mean"] = hits / (per_class * len(shapes.SHAPES))
    res["pixel_std_within_class"] = sum(stds) / len(stds)  # the data's is about 0.36; ~0 means mode collapse
    res["colours_seen"] = len(colours)
    res["positions_seen"] = len(positions)
    return res
