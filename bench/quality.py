"""Quality of Loom's embedded models, measured through Loom's own executor and nodes.

* Prompt adherence: images from held-out captions with each diffusion model's example workflow
  (workflows/text_to_image.json for shapes-ldm, workflows/text_to_image_dit.json for the
  transformer shapes-dit), judged by models/embedded/shapes-judge (colour, shape, position,
  size of the main object).
* The GAN: how often the judge reads the requested shape class.
* FID on EfficientNet-Lite0 pooled features (the `fid` node): each diffusion model vs data,
  GAN vs data, and two disjoint data samples as the floor.
* Seconds per image and for each workflow as shipped (batch 4) on this machine.

    python bench/quality.py [--adherence 200] [--fid 500] [--threads 2] [--models ldm dit] [--no-gan]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from loom import Executor, Registry, Settings, Workflow, node
from loom.settings import SHIPPED_MODELS, SHIPPED_WORKFLOWS
from loom.types import Image
from loom_nodes._lib import shapes
from loom_nodes._lib.judge import ShapesJudge

_TENSORS: dict[str, torch.Tensor] = {}
HELD_OUT_SEED = 987_654  # training draws from other seeds; these captions are fresh
KEYS = ("colour", "shape", "position", "size")
WORKFLOWS = {"ldm": ("shapes-ldm", "text_to_image.json"), "dit": ("shapes-dit", "text_to_image_dit.json")}


@node(id="bench_tensor", category="bench", cache=False)
def bench_tensor(key: str) -> Image:
    """Images handed in by the benchmark script."""
    return _TENSORS[key]


@node(id="bench_collect", category="bench", output=True)
def bench_collect(images: Image) -> Image:
    """Hand images back to the benchmark script."""
    return images


def default_workflow(file: str = "text_to_image.json") -> Workflow:
    """A shipped text-to-image workflow with its save node replaced by bench_collect."""
    wf = Workflow.load(SHIPPED_WORKFLOWS / file)
    del wf.nodes["save"]
    wf.nodes["collect"] = {"type": "bench_collect", "inputs": {"images": {"node": "decode", "output": "image"}}}
    return wf


def generate(ex: Executor, captions: list[str], seed0: int, file: str) -> tuple[torch.Tensor, float]:
    """One image per caption (batch 1, seed0 + i) with a shipped workflow, and seconds per image."""
    wf = default_workflow(file)
    wf.nodes["latent"]["inputs"]["batch"] = 1
    out = []
    t0 = time.perf_counter()
    for i, cap in enumerate(captions):
        wf.nodes["prompt"]["inputs"]["text"] = cap
        wf.nodes["sample"]["inputs"]["seed"] = seed0 + i
        out.append(ex.run(wf).outputs["collect"]["image"])
        if (i + 1) % 50 == 0:
            print(f"  generated {i + 1}/{len(captions)}", file=sys.stderr)
    return torch.cat(out), (time.perf_counter() - t0) / len(captions)


def gan_images(ex: Executor, n: int, seed: int, chunk: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """n GAN samples, an equal share per shape class, upscaled to the data's 64x64 as in
    workflows/gan.json; returns (images, class labels)."""
    out, labels = [], []
    per_class = n // len(shapes.SHAPES)
    for c, name in enumerate(shapes.SHAPES):
        for start in range(0, per_class, chunk):
            batch = min(chunk, per_class - start)
            wf = {"nodes": {
                "gan": {"type": "load_gan", "inputs": {"name": "embedded/shapes-gan"}},
                "gen": {"type": "gan_generate", "inputs": {"generator": {"node": "gan", "output": "generator"},
                                                          "seed": seed + c * per_class + start, "batch": batch,
                                                          "class_name": name}},
                "up": {"type": "resize_image", "inputs": {"image": {"node": "gen", "output": "image"},
                                                         "width": 64, "height": 64, "method": "bilinear"}},
                "collect": {"type": "bench_collect", "inputs": {"images": {"node": "up", "output": "image"}}}}}
            out.append(ex.run(wf).outputs["collect"]["image"])
            labels.append(torch.full((batch,), c))
    return torch.cat(out), torch.cat(labels)


def fid(ex: Executor, a: torch.Tensor, b: torch.Tensor) -> float:
    _TENSORS["a"], _TENSORS["b"] = a, b
    wf = {"nodes": {
        "a": {"type": "bench_tensor", "inputs": {"key": "a"}},
        "b": {"type": "bench_tensor", "inputs": {"key": "b"}},
        "net": {"type": "load_feature_extractor", "inputs": {"network": "efficientnet-lite0"}},
        "fid": {"type": "fid", "inputs": {"a": {"node": "a", "output": "image"}, "b": {"node": "b", "output": "image"},
                                          "extractor": {"node": "net", "output": "feature_extractor"}}}}}
    return float(ex.run(wf).outputs["fid"]["fid"])


def workflow_seconds(ex: Executor, file: str) -> tuple[float, int]:
    """Seconds for one run of a shipped workflow as it is (after a warm-up run), and its batch."""
    wf = default_workflow(file)
    ex.run(wf)  # warm: model loaded, encoders cached
    wf.nodes["sample"]["inputs"]["seed"] = 12345
    t0 = time.perf_counter()
    images = ex.run(wf).outputs["collect"]["image"]
    return time.perf_counter() - t0, int(images.shape[0])


def describe(file: str) -> str:
    """'sampler N steps, cfg C' of a shipped workflow."""
    inputs = Workflow.load(SHIPPED_WORKFLOWS / file).nodes
    return (f"{inputs['sched']['inputs']['name']} {inputs['sample']['inputs']['steps']} steps, "
            f"cfg {inputs['sample']['inputs']['cfg']:g}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adherence", type=int, default=200, help="held-out captions to judge")
    ap.add_argument("--fid", type=int, default=500, help="images per side for FID")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", choices=sorted(WORKFLOWS), default=["ldm", "dit"])
    ap.add_argument("--no-gan", action="store_true", help="skip the GAN rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings(home=tempfile.mkdtemp(prefix="loom-quality-"))
    reg = Registry.default(settings)
    reg.add(bench_tensor, bench_collect)
    ex = Executor(reg, settings=settings)
    judge = ShapesJudge.load(SHIPPED_MODELS / "embedded" / "shapes-judge")

    _, captions, specs = shapes.make_batch(args.adherence, HELD_OUT_SEED)
    truth = shapes.labels_tensor(specs)
    data_a, _, _ = shapes.make_batch(args.fid, HELD_OUT_SEED + 1)
    data_b, caps_b, _ = shapes.make_batch(args.fid, HELD_OUT_SEED + 2)
    acc, speed, fids = {}, {}, {"data vs data (floor)": fid(ex, data_a, data_b)}
    for key in args.models:
        label, file = WORKFLOWS[key]
        imgs, sec_per_image = generate(ex, captions, 10_000, file)
        pred = judge.predict(imgs)
        acc[label] = {k: float((pred[k] == truth[k]).float().mean()) for k in KEYS}
        run_s, batch = workflow_seconds(ex, file)
        speed[label] = (file, sec_per_image, run_s, batch)
        gen, _ = generate(ex, caps_b, 50_000, file)
        fids[f"{label} vs data"] = fid(ex, gen, data_a)
    gan_shape, n_gan = None, 0
    if not args.no_gan:
        gan, gan_labels = gan_images(ex, args.fid, seed=777)
        gan_shape, n_gan = float((judge.predict(gan)["shape"] == gan_labels).float().mean()), len(gan_labels)
        fids["GAN (shapes-gan) vs data"] = fid(ex, gan, data_a)

    settings_txt = "; ".join(f"{label}: {describe(file)}" for label, (file, *_) in speed.items())
    print(f"\nPrompt adherence ({args.adherence} held-out captions, each model's example workflow "
          f"({settings_txt}), judged by shapes-judge)")
    chance = {"colour": 1 / len(shapes.COLOURS), "shape": 1 / len(shapes.SHAPES),
              "position": 1 / len(shapes.POSITIONS), "size": 1 / len(shapes.SIZES)}
    print(f"{'attribute':<10} " + " ".join(f"{label:>11}" for label in acc) + f" {'chance':>7}")
    for k in KEYS:
        print(f"{k:<10} " + " ".join(f"{a[k]:>10.1%} " for a in acc.values()) + f"{chance[k]:>7.0%}")
    if gan_shape is not None:
        print(f"\nGAN (shapes-gan): the judge reads the requested shape in {gan_shape:.1%} of "
              f"{n_gan} samples (chance 20%)")
    print(f"\nFID on EfficientNet-Lite0 pooled features, {args.fid} vs {args.fid} images")
    for name, value in fids.items():
        print(f"{name:<32} {value:>8.2f}")
    print(f"\nSpeed ({torch.get_num_threads()} threads)")
    for label, (file, sec_per_image, run_s, batch) in speed.items():
        print(f"{label + ': one image (batch 1)':<46} {sec_per_image:>7.3f} s")
        print(f"{label + ': ' + file + f' (batch {batch})':<46} {run_s:>7.3f} s ({run_s / batch:.3f} s/image)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
