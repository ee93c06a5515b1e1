"""Train the shapes-ldm UNet2DConditionModel on 8x8x4 latents with MiniLM caption states."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from tqdm import tqdm

from _train_common import (EMBEDDED, Budget, Checkpointer, base_parser, folder_mb, render_pool, setup,
                           write_json)
from loom_nodes._lib.minilm import HIDDEN, MiniLM

UNET_CONFIG = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(48, 96),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=HIDDEN, attention_head_dim=8, norm_num_groups=16,
)
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                        beta_end=0.012, prediction_type="epsilon", clip_sample=False)


@torch.no_grad()
def encode_pool(vae: AutoencoderKL, images: torch.Tensor, chunk: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and stds of a uint8 image pool, already shifted and scaled."""
    shift, scale = vae.config.shift_factor, vae.config.scaling_factor
    means, stds = [], []
    for i in tqdm(range(0, len(images), chunk), desc="encode latents"):
        d = vae.encode(images[i:i + chunk].float() / 127.5 - 1.0).latent_dist
        means.append((d.mean - shift) * scale)
        stds.append(d.std * scale)
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def encode_captions(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
    """MiniLM states of each unique caption (fp16), the empty-caption states, and caption -> row."""
    uniq = sorted(set(captions))
    key = hashlib.sha1("\n".join(uniq).encode()).hexdigest()[:12]
    cache = Path(f"/tmp/loom_train/captions_{key}.pt")
    if cache.exists():
        d = torch.load(cache)
        return d["table"], d["empty"], {c: i for i, c in enumerate(uniq)}
    enc = MiniLM.from_package()
    rows = [enc.encode(uniq[i:i + 256]).half() for i in tqdm(range(0, len(uniq), 256), desc="encode captions")]
    table, empty = torch.cat(rows), enc.encode([""])[0]
    torch.save({"table": table, "empty": empty}, cache)
    return table, empty, {c: i for i, c in enumerate(uniq)}


def main() -> None:
    """Train, write models/embedded/shapes-ldm/{unet,scheduler} and loom.json."""
    p = base_parser("shapes-unet", steps=100000, minutes=26.0, batch=64, lr=5e-4)
    p.add_argument("--uncond", type=float, default=0.1, help="fraction of empty captions")
    p.add_argument("--channels", type=int, nargs="+", default=list(UNET_CONFIG["block_out_channels"]))
    p.add_argument("--pool-use", type=int, default=12000, help="images of the pool to encode and train on")
    p.add_argument("--sample-posterior", action="store_true", help="add the VAE posterior noise to latents")
    args = p.parse_args()
    setup(args)
    ldm = args.out or EMBEDDED / "shapes-ldm"
    vae = AutoencoderKL.from_pretrained(ldm / "vae", torch_dtype=torch.float32).eval()
    images, captions, _ = render_pool(args.pool, args.seed)
    table, empty, row_of = encode_captions(captions)  # all unique captions of the pool (cached)
    n_use = min(args.pool_use or len(images), len(images))
    images, captions = images[:n_use], captions[:n_use]
    lat_mean, lat_std = encode_pool(vae, images)
    print(f"pool latents: mean {lat_mean.mean():.3f} std {lat_mean.std():.3f}", flush=True)
    cap_idx = torch.tensor([row_of[c] for c in captions])

    unet = UNet2DConditionModel(**dict(UNET_CONFIG, block_out_channels=tuple(args.channels)))
    sched = DDPMScheduler(**SCHEDULER_CONFIG)
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=1e-2)
    ck = Checkpointer(args.work_dir, args.fresh)
    step, elapsed = ck.load({"unet": unet, "opt": opt})
    budget = Budget(args.minutes, elapsed)
    g = torch.Generator().manual_seed(args.seed + step)
    acp = sched.alphas_cumprod
    unet.train()
    bar = tqdm(total=args.steps, initial=step, desc="unet")
    while step < args.steps and not budget.over():
        idx = torch.randint(0, len(images), (args.batch,), generator=g)
        z0 = lat_mean[idx]
        if args.sample_posterior:
            z0 = z0 + lat_std[idx] * torch.randn(z0.shape, generator=g)
        cond = table[cap_idx[idx]].float()
        drop = torch.rand(args.batch, generator=g) < args.uncond
        cond[drop] = empty
        t = torch.randint(0, sched.config.num_train_timesteps, (args.batch,), generator=g)
        noise = torch.randn(z0.shape, generator=g)
        a = acp[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        pred = unet(zt, t, encoder_hidden_states=cond).sample
        loss = F.mse_loss(pred, noise)
        frac = max(step / args.steps, budget.elapsed / budget.limit)
        lr = args.lr * min(1.0, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.1e}")
        if step % args.ckpt_every == 0:
            ck.save({"unet": unet, "opt": opt}, step, budget.elapsed)
    bar.close()
    ck.save({"unet": unet, "opt": opt}, step, budget.elapsed)
    seconds = budget.elapsed

    unet.eval().to(torch.float16).save_pretrained(ldm / "unet", safe_serialization=True)
    sched.save_pretrained(ldm / "scheduler")
    write_json(ldm / "loom.json", {"kind": "diffusers", "text_encoder": "minilm", "resolution": 64,
                                   "latent_channels": 4, "latent_size": 8})
    nparams = sum(p.numel() for p in unet.parameters())
    write_json(args.work_dir / "metrics.json", {"steps": step, "seconds": round(seconds, 1), "params": nparams,
                                                "batch": args.batch, "lr": args.lr,
                                                "unet_mb": round(folder_mb(ldm / "unet"), 3)})
    print(f"wrote {ldm} ({folder_mb(ldm):.2f} MB, unet {nparams} params, {step} steps, {seconds:.0f}s)")


if __name__ == "__main__":
    main()
