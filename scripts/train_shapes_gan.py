"""Train a class-conditional DCGAN (5 shape classes) on the shapes data set, at 32x32 by default (--size).

Default recipe (the one the shipped model used): conditional-BatchNorm generator, projection
discriminator without normalization, non-saturating loss with a lazy R1 penalty on real images,
Adam(beta1=0), and an exponential moving average of the generator's weights, which is what ships
(its BatchNorm statistics recomputed for the averaged weights). ``--minutes 0`` re-exports the
model from the last checkpoint without training.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from _train_common import (EMBEDDED, Budget, Checkpointer, base_parser, folder_mb, half_state, judge_gan,
                           render_pool, sample_grid, setup, write_json)
from loom_nodes._lib import shapes
from loom_nodes._lib.dcgan import DCGANDiscriminator, DCGANGenerator

R1_EVERY = 4  # lazy regularization: the penalty is applied (scaled up) every few D steps


@torch.no_grad()
def ema_update(ema: DCGANGenerator, gen: DCGANGenerator, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * gen for parameters; buffers (BatchNorm statistics) are copied."""
    for pe, pg in zip(ema.parameters(), gen.parameters()):
        pe.lerp_(pg, 1.0 - decay)
    for be, bg in zip(ema.buffers(), gen.buffers()):
        be.copy_(bg)


@torch.no_grad()
def recalibrate_batchnorm(gen: DCGANGenerator, batches: int = 64, batch: int = 64, seed: int = 99) -> None:
    """Recompute BatchNorm running statistics for these weights (EMA weights never produced the copied ones)."""
    norms = [m for m in gen.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    g = torch.Generator().manual_seed(seed)
    gen.train()
    for _ in range(batches):
        gen(torch.randn(batch, gen.z_dim, generator=g), torch.randint(0, gen.num_classes, (batch,), generator=g))
    for m in norms:
        m.momentum = 0.1
    gen.eval()


def main() -> None:
    """Train, evaluate with the judge, write models/embedded/shapes-gan."""
    p = base_parser("shapes-gan", steps=100000, minutes=10.0, batch=64, lr=2e-4)
    p.add_argument("--z-dim", type=int, default=128)
    p.add_argument("--base-channels", type=int, default=64)
    p.add_argument("--conditioning", choices=["concat", "cbn"], default="cbn", help="how G reads the class")
    p.add_argument("--d-norm", choices=["batch", "spectral", "none"], default="none",
                   help="discriminator normalization")
    p.add_argument("--loss", choices=["bce", "hinge"], default="bce")
    p.add_argument("--r1", type=float, default=1.0, help="R1 penalty weight on real images (0: off)")
    p.add_argument("--beta1", type=float, default=0.0, help="Adam beta1 for both networks")
    p.add_argument("--lr-d", type=float, default=None, help="discriminator lr (default: --lr)")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the shipped generator weights")
    p.add_argument("--size", type=int, default=32, help="training and output resolution (data is drawn at 64)")
    p.add_argument("--eval-every", type=int, default=1000, help="judge + sample grid every N steps")
    args = p.parse_args()
    setup(args)
    out = args.out or EMBEDDED / "shapes-gan"
    images, _, specs = render_pool(args.pool, args.seed)
    if args.size != images.shape[-1]:  # box-filtered downsampling of the 64x64 drawings
        images = torch.cat([F.interpolate(images[i:i + 2000].float(), size=(args.size, args.size), mode="area")
                            .round().to(torch.uint8) for i in range(0, len(images), 2000)])
    labels = shapes.labels_tensor(specs)["shape"]
    gen = DCGANGenerator(z_dim=args.z_dim, image_size=args.size, base_channels=args.base_channels,
                         num_classes=len(shapes.SHAPES), class_names=list(shapes.SHAPES),
                         conditioning=args.conditioning)
    ema = copy.deepcopy(gen).requires_grad_(False)
    disc = DCGANDiscriminator(image_size=args.size, base_channels=args.base_channels, num_classes=len(shapes.SHAPES),
                              norm=args.d_norm)
    betas = (args.beta1, 0.999 if args.beta1 > 0 else 0.99)
    opt_g = torch.optim.Adam(gen.parameters(), lr=args.lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr_d or args.lr, betas=betas)
    objs = {"gen": gen, "ema": ema, "disc": disc, "opt_g": opt_g, "opt_d": opt_d}
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
        with torch.no_grad():
            fake = gen(z, y)
        penalize = args.r1 > 0 and step % R1_EVERY == 0
        real.requires_grad_(penalize)
        d_real, d_fake = disc(real, y), disc(fake, y)
        if args.loss == "hinge":
            d_loss = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
        else:
            d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        if penalize:
            (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            d_loss = d_loss + args.r1 / 2 * R1_EVERY * grad.pow(2).flatten(1).sum(1).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        z = torch.randn(args.batch, args.z_dim, generator=g)
        d_gen = disc(gen(z, y), y)
        g_loss = -d_gen.mean() if args.loss == "hinge" else F.softplus(-d_gen).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        ema_update(ema, gen, args.ema if step > 500 else 0.0)  # EMA starts once G is past the noise
        step += 1
        bar.update(1)
        bar.set_postfix(d=f"{d_loss.item():.3f}", g=f"{g_loss.item():.3f}")
        if step % args.ckpt_every == 0:
            ck.save(objs, step, budget.elapsed)
        if step % args.eval_every == 0:
            recalibrate_batchnorm(ema, batches=16)
            sample_grid(ema, args.work_dir / f"grid_{step:06d}.png")
            tqdm.write(f"step {step}: {judge_gan(ema, per_class=40)}")
    bar.close()
    ck.save(objs, step, budget.elapsed)
    seconds = budget.elapsed

    recalibrate_batchnorm(ema)
    metrics = judge_gan(ema)
    print(f"judge on GAN samples: {metrics}", flush=True)
    sample_grid(ema, args.work_dir / "grid_final.png")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", ema.config())
    save_file(half_state(ema.state_dict()), str(out / "generator.safetensors"))
    write_json(out / "loom.json", {"kind": "gan", "arch": "dcgan", "resolution": args.size,
                                   "class_names": list(shapes.SHAPES)})
    nparams = sum(p.numel() for p in ema.parameters())
    write_json(args.work_dir / "metrics.json", {"steps": step, "seconds": round(seconds, 1), "params": nparams,
                                                "batch": args.batch, "size_mb": round(folder_mb(out), 3),
                                                **{k: vars(args)[k] for k in ("conditioning", "d_norm", "loss",
                                                                               "r1", "beta1", "lr", "ema")},
                                                **metrics})
    print(f"wrote {out} ({folder_mb(out):.2f} MB, G {nparams} params, {step} steps, {seconds:.0f}s)")


if __name__ == "__main__":
    main()
