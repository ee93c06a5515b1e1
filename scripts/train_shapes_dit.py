"""Train shapes-dit: a small SD3Transformer2DModel (joint attention, patch 2) on the shapes VAE's
8x8x4 latents with MiniLM caption states, by rectified flow (flow matching) as SD3 trains.

    cd scripts && python train_shapes_dit.py --minutes 50 --threads 2

Writes models/embedded/shapes-dit/{transformer,vae,scheduler,loom.json} (EMA weights, fp16) at the
end and every --export-every steps, so a stopped run is usable; resumes from --work-dir.
"""

from __future__ import annotations

import copy
import hashlib
import math
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
from tqdm import tqdm

from _train_common import (EMBEDDED, Budget, Checkpointer, base_parser, folder_mb, render_pool, setup,
                           write_json)
from loom_nodes._lib.minilm import HIDDEN, MiniLM

LOOM_JSON = {"kind": "diffusers", "text_encoder": "minilm", "resolution": 64, "latent_channels": 4,
             "latent_size": 8}


def transformer_config(width: int, heads: int, layers: int) -> dict:
    """SD3Transformer2DModel config over 8x8x4 latents (patch 2 -> 16 image tokens) and MiniLM states."""
    return dict(sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=layers,
                attention_head_dim=width // heads, num_attention_heads=heads, joint_attention_dim=HIDDEN,
                caption_projection_dim=width, pooled_projection_dim=HIDDEN, pos_embed_max_size=8,
                qk_norm="rms_norm")


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, images: torch.Tensor, chunk: int = 250) -> torch.Tensor:
    """Shifted and scaled posterior means of a uint8 image pool, cached in /tmp by pool size."""
    cache = Path(f"/tmp/loom_train/dit_latents_{len(images)}_{int(images[:64].sum())}.pt")
    if cache.exists():
        return torch.load(cache)
    shift, scale = vae.config.shift_factor, vae.config.scaling_factor
    out = [(vae.encode(images[i:i + chunk].float() / 127.5 - 1.0).latent_dist.mean - shift) * scale
           for i in tqdm(range(0, len(images), chunk), desc="encode latents")]
    lat = torch.cat(out)
    torch.save(lat, cache)
    return lat


@torch.no_grad()
def encode_captions(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
    """MiniLM token states (U, 32, 384) fp16 and their mask-mean pooled vectors (U, 384) fp32 for the
    unique captions plus "" as the last row, exactly as Loom's MiniLMTextEncoder computes them."""
    uniq = sorted(set(captions)) + [""]
    key = hashlib.sha1("\n".join(uniq).encode()).hexdigest()[:12]
    cache = Path(f"/tmp/loom_train/dit_captions_{key}.pt")
    if cache.exists():
        d = torch.load(cache)
        return d["states"], d["pooled"], {c: i for i, c in enumerate(uniq)}
    enc = MiniLM.from_package()
    states, pooled = [], []
    for i in tqdm(range(0, len(uniq), 256), desc="encode captions"):
        s, m = enc.encode_with_mask(uniq[i:i + 256])
        w = m.unsqueeze(-1).float()
        states.append(s.half())
        pooled.append((s * w).sum(1) / w.sum(1).clamp(min=1.0))
    d = {"states": torch.cat(states), "pooled": torch.cat(pooled)}
    torch.save(d, cache)
    return d["states"], d["pooled"], {c: i for i, c in enumerate(uniq)}


def sample_sigmas(n: int, shift: float, g: torch.Generator, mode: str) -> torch.Tensor:
    """Training noise levels in (0, 1): logit-normal (SD3) or uniform, then the scheduler's shift."""
    u = torch.sigmoid(torch.randn(n, generator=g)) if mode == "logit_normal" else torch.rand(n, generator=g)
    return shift * u / (1 + (shift - 1) * u)


def flow_loss(model: SD3Transformer2DModel, z0: torch.Tensor, states: torch.Tensor, pooled: torch.Tensor,
              sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Rectified-flow loss: x_t = (1 - sigma) x0 + sigma noise, the model predicts noise - x0."""
    s = sigma.view(-1, 1, 1, 1)
    xt = (1 - s) * z0 + s * noise
    pred = model(xt, encoder_hidden_states=states, pooled_projections=pooled, timestep=sigma * 1000).sample
    return F.mse_loss(pred, noise - z0)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """Exponential moving average with a warm-up (short runs still get a useful average)."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - d)


def export(ema: SD3Transformer2DModel, out: Path, shift: float) -> None:
    """Write the diffusers folder: transformer (fp16), VAE copied from shapes-ldm, scheduler, loom.json."""
    fp16 = copy.deepcopy(ema).eval().to(torch.float16)
    fp16.save_pretrained(out / "transformer", safe_serialization=True)
    if not (out / "vae").exists():
        shutil.copytree(EMBEDDED / "shapes-ldm" / "vae", out / "vae")
    FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift).save_pretrained(out / "scheduler")
    write_json(out / "loom.json", LOOM_JSON)


def main() -> None:
    """Train (resumable, step or minute budget) and export the shapes-dit folder."""
    p = base_parser("shapes-dit", steps=100000, minutes=50.0, batch=64, lr=5e-4)
    p.add_argument("--uncond", type=float, default=0.1, help="fraction of empty captions (for CFG)")
    p.add_argument("--width", type=int, default=160, help="transformer inner dim")
    p.add_argument("--heads", type=int, default=5)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--shift", type=float, default=1.0, help="flow-matching shift (saved in scheduler/)")
    p.add_argument("--sigma-sampling", choices=("logit_normal", "uniform"), default="logit_normal")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--export-every", type=int, default=1000, help="write the model folder every N steps")
    p.add_argument("--export-only", action="store_true", help="write the folder from the checkpoint and stop")
    args = p.parse_args()
    setup(args)
    out = args.out or EMBEDDED / "shapes-dit"

    model = SD3Transformer2DModel(**transformer_config(args.width, args.heads, args.layers))
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    ck = Checkpointer(args.work_dir, args.fresh)
    objs = {"model": model, "ema": ema, "opt": opt}
    step, elapsed = ck.load(objs)
    nparams = sum(q.numel() for q in model.parameters())
    print(f"SD3Transformer2DModel: {nparams:,} parameters", flush=True)
    if args.export_only:
        export(ema, out, args.shift)
        print(f"exported step {step} to {out} ({folder_mb(out):.2f} MB)")
        return

    vae = AutoencoderKL.from_pretrained(EMBEDDED / "shapes-ldm" / "vae", torch_dtype=torch.float32).eval()
    images, captions, _ = render_pool(args.pool, args.seed)
    lat = encode_latents(vae, images)
    states, pooled, row_of = encode_captions(captions)
    empty = row_of[""]
    cap_idx = torch.tensor([row_of[c] for c in captions])
    print(f"pool: {len(lat)} latents (mean {lat.mean():.3f}, std {lat.std():.3f}), "
          f"{len(row_of) - 1} unique captions", flush=True)

    budget = Budget(args.minutes, elapsed)
    g = torch.Generator().manual_seed(args.seed + step)
    model.train()
    bar = tqdm(total=args.steps, initial=step, desc="dit", mininterval=10)
    losses: list[float] = []
    while step < args.steps and not budget.over():
        idx = torch.randint(0, len(lat), (args.batch,), generator=g)
        rows = cap_idx[idx].clone()
        rows[torch.rand(args.batch, generator=g) < args.uncond] = empty
        sigma = sample_sigmas(args.batch, args.shift, g, args.sigma_sampling)
        noise = torch.randn((args.batch, 4, 8, 8), generator=g)
        loss = flow_loss(model, lat[idx], states[rows].float(), pooled[rows], sigma, noise)
        frac = min(1.0, max(step / args.steps, budget.elapsed / budget.limit))
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * frac)))
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_update(ema, model, step, args.ema)
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step % 100 == 0:
            mean = sum(losses[-100:]) / len(losses[-100:])
            print(f"step {step} loss(100) {mean:.4f} lr {lr:.2e} {budget.elapsed / 60:.1f} min", flush=True)
        if step % args.ckpt_every == 0:
            ck.save(objs, step, budget.elapsed)
        if step % args.export_every == 0:
            export(ema, out, args.shift)
    bar.close()
    ck.save(objs, step, budget.elapsed)
    export(ema, out, args.shift)
    write_json(args.work_dir / "metrics.json", {
        "steps": step, "seconds": round(budget.elapsed, 1), "params": nparams, "batch": args.batch,
        "lr": args.lr, "width": args.width, "layers": args.layers, "heads": args.heads, "shift": args.shift,
        "final_loss_100": round(sum(losses[-100:]) / max(1, len(losses[-100:])), 4),
        "folder_mb": round(folder_mb(out), 3)})
    print(f"wrote {out} ({folder_mb(out):.2f} MB, {nparams:,} params, {step} steps, {budget.elapsed:.0f}s)")


if __name__ == "__main__":
    main()
