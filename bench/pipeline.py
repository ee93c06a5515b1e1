"""Loom's executor vs a hand-written diffusers loop on the same tiny SD-shaped pipeline.

64×64 pixels (8×8 latents), 20 Euler steps, cfg 7.5, random tiny weights built in code.
Both run in this process, alternating; the executor's output cache is cleared before each
Loom run (models stay loaded, as they would in a server), so both do the same work:
two prompt encodings, 20 guided UNet calls, one VAE decode. Prints medians and the
overhead ratio (goal: within 3 %).

    python bench/pipeline.py [--repeat 15] [--threads 1] [--steps 20]
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loom import Executor, Registry, Settings, node  # noqa: E402
from loom.types import Image  # noqa: E402
from loom_nodes._lib.diffusion.tiny import save_diffusers, tiny_models  # noqa: E402

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes"]
PROMPT, NEGATIVE = "a red circle on a blue background", "blurry"


@node(id="bench_keep_image", category="bench", output=True)
def bench_keep_image(images: Image) -> Image:
    """Benchmark output: hand the images back."""
    return images


def L(n: str, o: str) -> dict[str, str]:
    return {"node": n, "output": o}


def workflow(steps: int, cfg: float, seed: int) -> dict:
    """load → encode ×2 → empty latent → sample → decode → output."""
    return {"nodes": {
        "m": {"type": "load_diffusers_model", "inputs": {"model": "tiny"}},
        "p": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": PROMPT}},
        "n": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": NEGATIVE}},
        "e": {"type": "empty_latent", "inputs": {"width": 64, "height": 64, "vae": L("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": "euler"}},
        "s": {"type": "sample", "inputs": {"denoiser": L("m", "denoiser"), "positive": L("p", "conditioning"),
                                           "negative": L("n", "conditioning"), "latent": L("e", "latent"),
                                           "scheduler": L("sc", "scheduler"), "steps": steps, "cfg": cfg,
                                           "seed": seed}},
        "d": {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}},
        "o": {"type": "bench_keep_image", "inputs": {"images": L("d", "image")}},
    }}


class HandLoop:
    """The same pipeline written directly against diffusers and transformers."""

    def __init__(self, folder: Path) -> None:
        from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        self.tok = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        self.te = CLIPTextModel.from_pretrained(folder / "text_encoder", local_files_only=True).eval()
        self.unet = UNet2DConditionModel.from_pretrained(folder / "unet", local_files_only=True).eval()
        self.vae = AutoencoderKL.from_pretrained(folder / "vae", local_files_only=True).eval()
        self.sched_cls, self.sched_cfg = EulerDiscreteScheduler, EulerDiscreteScheduler.load_config(folder / "scheduler")

    @torch.no_grad()
    def __call__(self, steps: int, cfg: float, seed: int) -> torch.Tensor:
        def enc(text: str) -> torch.Tensor:
            ids = self.tok(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
            return self.te(ids).last_hidden_state
        embeds = torch.cat([enc(NEGATIVE), enc(PROMPT)])
        sched = self.sched_cls.from_config(self.sched_cfg)
        sched.set_timesteps(steps)
        g = torch.Generator().manual_seed(seed)
        x = torch.randn((1, 4, 8, 8), generator=g) * sched.init_noise_sigma
        for t in sched.timesteps:
            xin = sched.scale_model_input(torch.cat([x, x]), t)
            u, c = self.unet(xin, t, encoder_hidden_states=embeds, return_dict=False)[0].chunk(2)
            x = sched.step(u + cfg * (c - u), t, x, generator=g).prev_sample
        img = self.vae.decode(x / self.vae.config.scaling_factor).sample
        return (img / 2 + 0.5).clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=7.5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        folder = save_diffusers(home / "models" / "diffusers" / "tiny", tiny_models(seed=0))
        reg = Registry()
        for m in MODULES:
            importlib.import_module(m)
            reg.add_module(m)
        reg.add_module(__name__)
        ex = Executor(reg, settings=Settings(home=home, device="cpu"))
        hand = HandLoop(folder)
        ref = hand(args.steps, args.cfg, 0)
        got = ex.run(workflow(args.steps, args.cfg, 0)).outputs["o"]["image"]  # warm-up + load
        same = torch.allclose(ref, got, atol=1e-5)
        loom_t, hand_t = [], []
        for i in range(args.repeat):
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                if which == 0:
                    ex.cache.clear()
                    t0 = time.perf_counter()
                    r = ex.run(workflow(args.steps, args.cfg, i + 1))
                    loom_t.append(time.perf_counter() - t0)
                    assert len(r.executed) == 8, r.executed  # every node really ran
                else:
                    t0 = time.perf_counter()
                    hand(args.steps, args.cfg, i + 1)
                    hand_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ex.run(workflow(args.steps, args.cfg, args.repeat))
        cached = time.perf_counter() - t0
    lm, hm = statistics.median(loom_t), statistics.median(hand_t)
    print(f"tiny SD pipeline: 64x64, {args.steps} Euler steps, cfg {args.cfg}, "
          f"{args.threads} thread(s), {args.repeat} alternating runs each; same image: {same}")
    print(f"{'':24}{'median ms':>10}{'min ms':>10}{'mean ms':>10}")
    for name, ts in (("diffusers hand loop", hand_t), ("Loom executor", loom_t)):
        print(f"{name:24}{statistics.median(ts) * 1e3:10.1f}{min(ts) * 1e3:10.1f}{statistics.mean(ts) * 1e3:10.1f}")
    print(f"{'Loom cached re-run':24}{cached * 1e3:10.2f}")
    print(f"overhead ratio (median Loom / median hand): {lm / hm:.4f}  ({(lm / hm - 1) * 100:+.2f} %); "
          f"min ratio {min(loom_t) / min(hand_t):.4f}")


if __name__ == "__main__":
    main()
