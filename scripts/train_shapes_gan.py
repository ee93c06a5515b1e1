"""Train a class-conditional DCGAN (5 shape classes) at 64x64 on the shapes data set (non-saturating BCE loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from _train_common import (EMBEDDED, Budget, Checkpointer, base_parser, folder_mb, half_state, render_pool,
                           setup, write_json)
from nodes._lib import shapes
from nodes._lib.dcgan import DCGANDiscriminator, DCGANGenerator
from nodes._lib.judge import ShapesJudge


@torch.no_grad()
def judge_gan(gen: DCGANGenerator, per_class: int = 100, seed: int = 1234) -> dict[str, float]:
    """Fraction of samples the judge reads as the requested shape, per class and overall."""
    judge = ShapesJudge.load(EMBEDDED / "shapes-judge")
    gen.eval()
    g = torch.Generator().manual_seed(seed)
    res: dict[str, float] = {}
    hits = 0
    for c, name in enumerate(shapes.SHAPES):
        z = torch.randn(per_class, gen.z_dim, generator=g)
        x = (gen(z, torch.full((per_class,), c)) + 1) / 2
        acc = float((judge.predict(x.clamp(0, 1))["shape"] == c).float().mean())
        res[f"shape_{name}"] = acc
        hits += acc * per_class
    res["shape_mean"] = hits / (per_class * len(shapes.SHAPES))
    return res


def main() -> None:
    """Train, evaluate with the judge, write models/embedded/shapes-gan."""
    p = base_parser("shapes-gan", steps=100000, minutes=10.0, batch=64, lr=2e-4)
    p.add_argument("--z-dim", type=int, default=128)
    p.add_argument("--base-channels", type=int, default=32)
    p.add_argument("--d-norm", choices=["batch", "spectral"], default="batch", help="discriminator normalization")
    p.add_argument("--loss", choices=["bce", "hinge"], default="bce")
    p.add_argument("--lr-d", type=float, default=None, help="discriminator lr (default: --lr)")
    args = p.parse_args()
    setup(args)
    out = args.out or EMBEDDED / "shapes-gan"
    images, _, specs = render_pool(args.pool, args.seed)
    labels = shapes.labels_tensor(specs)["shape"]
    gen = DCGANGenerator(z_dim=args.z_dim, image_size=64, base_channels=args.base_channels,
                         num_classes=len(shapes.SHAPES), class_names=list(shapes.SHAPES))
    disc = DCGANDiscriminator(image_size=64, base_channels=args.base_channels, num_classes=len(shapes.SHAPES),
                              norm=args.d_norm)
    opt_g = torch.optim.Adam(gen.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr_d or args.lr, betas=(0.5, 0.999))
    objs = {"gen": gen, "disc": disc, "opt_g": opt_g, "opt_d": opt_d}
    ck = Checkpointer(args.work_dir, args.fresh)
    step, elapsed = ck.load(objs)
    budget = Budget(args.minutes, elapsed)
    g = torch.Generator().manual_seed(args.seed + step)
    gen.train()
    disc.train()
    bar = tqdm(total=args.steps, initial=step, desc="gan")
    while step < args.steps and not budget.over():
        idx = torch.randint(0, len(images), (args.batch,), generator=g)
        real, y = images[idx].float() / 127.5 - 1.0, labels[idx]
        z = torch.randn(args.batch, args.z_dim, generator=g)
        fake = gen(z, y)
        if args.loss == "hinge":
            d_loss = F.relu(1.0 - disc(real, y)).mean() + F.relu(1.0 + disc(fake.detach(), y)).mean()
        else:
            d_loss = F.softplus(-disc(real, y)).mean() + F.softplus(disc(fake.detach(), y)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = -disc(fake, y).mean() if args.loss == "hinge" else F.softplus(-disc(fake, y)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        step += 1
        bar.update(1)
        bar.set_postfix(d=f"{d_loss.item():.3f}", g=f"{g_loss.item():.3f}")
        if step % args.ckpt_every == 0:
            ck.save(objs, step, budget.elapsed)
    bar.close()
    ck.save(objs, step, budget.elapsed)
    seconds = budget.elapsed

    metrics = judge_gan(gen)
    print(f"judge on GAN samples: {metrics}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", gen.config())
    save_file(half_state(gen.state_dict()), str(out / "generator.safetensors"))
    write_json(out / "loom.json", {"kind": "gan", "arch": "dcgan", "resolution": 64,
                                   "class_names": list(shapes.SHAPES)})
    nparams = sum(p.numel() for p in gen.parameters())
    write_json(args.work_dir / "metrics.json", {"steps": step, "seconds": round(seconds, 1), "params": nparams,
                                                "batch": args.batch, "size_mb": round(folder_mb(out), 3),
                                                **metrics})
    print(f"wrote {out} ({folder_mb(out):.2f} MB, G {nparams} params, {step} steps, {seconds:.0f}s)")


if __name__ == "__main__":
    main()
