"""Train the shapes-ldm AutoencoderKL (64x64 RGB -> 8x8x4 latents) and store latent shift/scale."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from tqdm import tqdm

from _train_common import (EMBEDDED, Budget, Checkpointer, base_parser, folder_mb, render_pool, setup,
                           write_json)
from loom_nodes._lib import shapes
from loom_nodes._lib.judge import ShapesJudge

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=64, layers_per_block=1, norm_num_groups=8,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(16, 32, 64, 128),
)


def build_vae(block_out_channels: tuple[int, ...]) -> AutoencoderKL:
    """The autoencoder (4 blocks, x8 downscale) with the given widths."""
    cfg = dict(VAE_CONFIG, block_out_channels=tuple(block_out_channels))
    return AutoencoderKL(**cfg)


def edge_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 between horizontal and vertical image gradients (keeps edges sharp)."""
    dxa, dxb = a[..., :, 1:] - a[..., :, :-1], b[..., :, 1:] - b[..., :, :-1]
    dya, dyb = a[..., 1:, :] - a[..., :-1, :], b[..., 1:, :] - b[..., :-1, :]
    return (dxa - dxb).abs().mean() + (dya - dyb).abs().mean()


@torch.no_grad()
def object_weight(x: torch.Tensor, boost: float) -> torch.Tensor:
    """Per-pixel loss weight: 1 on background, 1 + boost on (dilated) pixels unlike the border median."""
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
    bg = border.median(dim=-1).values[..., None, None]
    mask = ((x - bg).abs().sum(1, keepdim=True) > 0.3).float()
    mask = F.max_pool2d(mask, 3, stride=1, padding=1)
    return 1.0 + boost * mask


@torch.no_grad()
def latent_stats(vae: AutoencoderKL, x: torch.Tensor) -> tuple[float, float]:
    """Mean and std of the posterior means over a batch of images in [0, 1]."""
    zs = torch.cat([vae.encode(x[i:i + 250] * 2 - 1).latent_dist.mean for i in range(0, len(x), 250)])
    return float(zs.mean()), float(zs.std())


@torch.no_grad()
def judge_recon(vae: AutoencoderKL, x: torch.Tensor, specs: list) -> dict[str, float]:
    """Judge accuracy on reconstructions (and on the originals, for reference)."""
    judge = ShapesJudge.load(EMBEDDED / "shapes-judge")
    rec = torch.cat([vae(x[i:i + 250] * 2 - 1, sample_posterior=False).sample for i in range(0, len(x), 250)])
    rec = ((rec + 1) / 2).clamp(0, 1)
    y = shapes.labels_tensor(specs)
    res = {}
    for name, imgs in (("recon", rec), ("original", x)):
        p = judge.predict(imgs)
        for k in ("shape", "colour", "size", "position"):
            res[f"{name}_{k}"] = float((p[k] == y[k]).float().mean())
    res["recon_mse"] = float(F.mse_loss(rec, x))
    return res


def main() -> None:
    """Train, measure latents, write models/embedded/shapes-ldm/vae."""
    p = base_parser("shapes-vae", steps=20000, minutes=12.0, batch=32, lr=1e-3)
    p.add_argument("--channels", type=int, nargs="+", default=list(VAE_CONFIG["block_out_channels"]))
    p.add_argument("--kl", type=float, default=1e-6)
    p.add_argument("--object-boost", type=float, default=5.0, help="extra loss weight on object pixels")
    p.add_argument("--sample-posterior", action="store_true", help="train on posterior samples, not means")
    args = p.parse_args()
    setup(args)
    out = args.out or EMBEDDED / "shapes-ldm" / "vae"
    images, _, _ = render_pool(args.pool, args.seed)
    vae = build_vae(args.channels)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    ck = Checkpointer(args.work_dir, args.fresh)
    step, elapsed = ck.load({"vae": vae, "opt": opt})
    budget = Budget(args.minutes, elapsed)
    g = torch.Generator().manual_seed(args.seed + step)
    vae.train()
    bar = tqdm(total=args.steps, initial=step, desc="vae")
    while step < args.steps and not budget.over():
        idx = torch.randint(0, len(images), (args.batch,), generator=g)
        x = images[idx].float() / 127.5 - 1.0
        post = vae.encode(x).latent_dist
        z = post.sample(generator=None) if args.sample_posterior else post.mode()
        rec = vae.decode(z).sample
        mse = F.mse_loss(rec, x)
        w = object_weight(x, args.object_boost)
        wl = (w * ((rec - x) ** 2 + 0.5 * (rec - x).abs())).mean()
        loss = wl + 0.5 * edge_loss(rec, x) + args.kl * post.kl().mean()
        frac = max(step / args.steps, budget.elapsed / budget.limit)
        lr = args.lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(frac * 3.14159)).item()))
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(mse=f"{mse.item():.4f}", lr=f"{lr:.1e}")
        if step % args.ckpt_every == 0:
            ck.save({"vae": vae, "opt": opt}, step, budget.elapsed)
    bar.close()
    ck.save({"vae": vae, "opt": opt}, step, budget.elapsed)
    seconds = budget.elapsed

    vae.eval()
    test_x, _, test_specs = shapes.make_batch(1000, 424242)
    mean, std = latent_stats(vae, test_x)
    vae.register_to_config(shift_factor=mean, scaling_factor=1.0 / std)
    metrics = judge_recon(vae, test_x, test_specs)
    print(f"latent mean {mean:.4f} std {std:.4f}; {metrics}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    vae.to(torch.float16).save_pretrained(out, safe_serialization=True)
    nparams = sum(p.numel() for p in vae.parameters())
    write_json(args.work_dir / "metrics.json", {"steps": step, "seconds": round(seconds, 1), "params": nparams,
                                                "batch": args.batch, "shift_factor": mean, "scaling_factor": 1 / std,
                                                "latent_std": std, "size_mb": round(folder_mb(out), 3), **metrics})
    print(f"wrote {out} ({folder_mb(out):.2f} MB, {nparams} params, {step} steps, {seconds:.0f}s)")


if __name__ == "__main__":
    main()
