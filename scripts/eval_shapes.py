"""Judge accuracy of the embedded shapes-ldm (DDIM + CFG), shapes-dit (flow-matching Euler + CFG), both
through plain diffusers calls, and shapes-gan."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffusers import (AutoencoderKL, DDIMScheduler, FlowMatchEulerDiscreteScheduler,  # noqa: E402
                       SD3Transformer2DModel, UNet2DConditionModel)
from safetensors.torch import load_file  # noqa: E402

from loom_nodes._lib import shapes  # noqa: E402
from loom_nodes._lib.dcgan import DCGANGenerator  # noqa: E402
from loom_nodes._lib.judge import ShapesJudge  # noqa: E402
from loom_nodes._lib.minilm import MiniLM  # noqa: E402
from _train_common import judge_gan, sample_grid, save_grid  # noqa: E402

EMB = ROOT / "models" / "embedded"
KEYS = ("shape", "colour", "size", "position")
FIXED_PROMPT_SEED = 31337  # the 20 fixed prompts of tests/nodes/test_embedded_quality.py and test_shapes_dit.py


@torch.no_grad()
def sample_ldm(folder: Path, captions: list[str], steps: int, cfg: float, seed: int, batch: int = 50) -> torch.Tensor:
    """Generate images in [0, 1] for captions with DDIM and classifier-free guidance."""
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()
    sched = DDIMScheduler.from_pretrained(folder / "scheduler")
    enc = MiniLM.from_package()
    shift, scale = vae.config.shift_factor, vae.config.scaling_factor
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in tqdm(range(0, len(captions), batch), desc="ldm"):
        caps = captions[i:i + batch]
        cond = enc.encode(caps)
        uncond = enc.encode([""]).expand_as(cond)
        ctx = torch.cat([uncond, cond])
        z = torch.randn(len(caps), 4, 8, 8, generator=g) * sched.init_noise_sigma
        sched.set_timesteps(steps)
        for t in sched.timesteps:
            eps_u, eps_c = unet(torch.cat([z, z]), t, encoder_hidden_states=ctx).sample.chunk(2)
            z = sched.step(eps_u + cfg * (eps_c - eps_u), t, z).prev_sample
        x = vae.decode(z / scale + shift).sample
        out.append(((x + 1) / 2).clamp(0, 1))
    return torch.cat(out)


@torch.no_grad()
def sample_dit(folder: Path, captions: list[str], steps: int, cfg: float, seed: int, batch: int = 50) -> torch.Tensor:
    """Generate images in [0, 1] with the SD3 transformer, FlowMatchEuler and classifier-free guidance
    (the math of diffusers' StableDiffusion3Pipeline with MiniLM states and their mask-mean pooled vector)."""
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
    model = SD3Transformer2DModel.from_pretrained(folder / "transformer", torch_dtype=torch.float32).eval()
    sched = FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler")
    enc = MiniLM.from_package()
    shift, scale = vae.config.shift_factor, vae.config.scaling_factor
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in tqdm(range(0, len(captions), batch), desc="dit"):
        caps = captions[i:i + batch]
        states, pooled = enc.encode_with_mask([""] + caps)[0], enc.pooled([""] + caps)
        ctx = torch.cat([states[:1].expand(len(caps), -1, -1), states[1:]])
        pool = torch.cat([pooled[:1].expand(len(caps), -1), pooled[1:]])
        z = torch.randn(len(caps), 4, 8, 8, generator=g)
        sched.set_timesteps(steps)
        for t in sched.timesteps:
            v_u, v_c = model(torch.cat([z, z]), encoder_hidden_states=ctx, pooled_projections=pool,
                             timestep=t.expand(2 * len(caps))).sample.chunk(2)
            z = sched.step(v_u + cfg * (v_c - v_u), t, z).prev_sample
        x = vae.decode(z / scale + shift).sample
        out.append(((x + 1) / 2).clamp(0, 1))
    return torch.cat(out)


def score(x: torch.Tensor, specs: list) -> dict[str, float]:
    """Judge accuracy per attribute."""
    judge = ShapesJudge.load(EMB / "shapes-judge")
    p, y = judge.predict(x), shapes.labels_tensor(specs)
    return {k: round(float((p[k] == y[k]).float().mean()), 3) for k in KEYS}


def eval_gan(folder: Path, per_class: int, seed: int) -> dict[str, float]:
    """Per-class judge shape accuracy and spread of GAN samples (generator in eval mode, as Loom loads it)."""
    gen = DCGANGenerator.from_config(json.loads((folder / "config.json").read_text()))
    gen.load_state_dict({k: v.float() for k, v in load_file(str(folder / "generator.safetensors")).items()})
    sample_grid(gen, Path("/tmp/eval_gan.png"), per_class=10, seed=seed)
    return judge_gan(gen, per_class, seed)


def main() -> None:
    """Parse args, run the requested evaluations, print JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--what", choices=("ldm", "dit", "gan", "all"), default="all")
    p.add_argument("--fixed", action="store_true", help="the 20 fixed test prompts instead of --n held-out ones")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=4.5)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ldm", type=Path, default=EMB / "shapes-ldm")
    p.add_argument("--gan", type=Path, default=EMB / "shapes-gan")
    p.add_argument("--dit", type=Path, default=EMB / "shapes-dit")
    p.add_argument("--dit-steps", type=int, default=20)
    p.add_argument("--dit-cfg", type=float, default=4.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result: dict[str, object] = {}
    if args.fixed:
        real, caps, specs = shapes.make_batch(20, FIXED_PROMPT_SEED)
    else:
        real, caps, specs = shapes.make_batch(args.n, 555_000 + args.seed)  # held-out captions
    if args.what in ("ldm", "all"):
        x = sample_ldm(args.ldm, caps, args.steps, args.cfg, args.seed)
        save_grid(x, Path("/tmp/eval_ldm.png"))
        result["ldm"] = {"n": len(caps), "ddim_steps": args.steps, "cfg": args.cfg, **score(x, specs)}
        result["real_images"] = score(real, specs)
    if args.what in ("dit", "all") and (args.dit / "transformer").exists():
        x = sample_dit(args.dit, caps, args.dit_steps, args.dit_cfg, args.seed)
        save_grid(x, Path("/tmp/eval_dit.png"))
        result["dit"] = {"n": len(caps), "flow_euler_steps": args.dit_steps, "cfg": args.dit_cfg, **score(x, specs)}
    if args.what in ("gan", "all"):
        result["gan_shape_accuracy"] = eval_gan(args.gan, args.n, args.seed)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
