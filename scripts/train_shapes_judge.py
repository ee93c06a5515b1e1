"""Train ShapesJudge (shape/colour/size/position heads) on the procedural shapes data set."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from _train_common import (EMBEDDED, Budget, Checkpointer, base_parser, folder_mb, half_state,
                           render_pool, setup, write_json)
from loom_nodes._lib import shapes
from loom_nodes._lib.judge import HEADS, ShapesJudge

CLASS_NAMES = {"shape": list(shapes.SHAPES), "colour": list(shapes.COLOURS), "size": list(shapes.SIZES),
               "position": list(shapes.POSITIONS)}


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random blur (down/up-sampling) and noise so the judge also reads generated images."""
    b = x.shape[0]
    out = x.clone()
    k = torch.rand(b, generator=g)
    for lo, hi, s in ((0.3, 0.55, 32), (0.55, 0.7, 24)):
        idx = ((k >= lo) & (k < hi)).nonzero().flatten()
        if len(idx):
            small = F.interpolate(x[idx], size=(s, s), mode="bilinear", antialias=True, align_corners=False)
            out[idx] = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
    noise = torch.randn(out.shape, generator=g) * torch.rand(b, 1, 1, 1, generator=g) * 0.06
    return (out + noise).clamp(0, 1)


def accuracy(model: ShapesJudge, x: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-head accuracy on images in [0, 1]."""
    preds = {k: [] for k in HEADS}
    for i in range(0, len(x), 500):
        p = model.predict(x[i:i + 500])
        for k in HEADS:
            preds[k].append(p[k])
    return {k: float((torch.cat(preds[k]) == labels[k]).float().mean()) for k in HEADS}


def main() -> None:
    """Train, evaluate on held-out data, write models/embedded/shapes-judge."""
    p = base_parser("shapes-judge", steps=700, minutes=4.0, batch=64, lr=2e-3)
    args = p.parse_args()
    setup(args)
    out = args.out or EMBEDDED / "shapes-judge"
    images, _, specs = render_pool(args.pool, args.seed)
    labels = shapes.labels_tensor(specs)
    test_x, _, test_specs = shapes.make_batch(2000, 987654)
    test_y = shapes.labels_tensor(test_specs)

    model = ShapesJudge(class_names=CLASS_NAMES)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ck = Checkpointer(args.work_dir, args.fresh)
    step, elapsed = ck.load({"model": model, "opt": opt})
    budget = Budget(args.minutes, elapsed)
    g = torch.Generator().manual_seed(args.seed + step)
    model.train()
    bar = tqdm(total=args.steps, initial=step, desc="judge")
    while step < args.steps and not budget.over():
        idx = torch.randint(0, len(images), (args.batch,), generator=g)
        x = augment(images[idx].float() / 255.0, g)
        logits = model(x)
        loss = sum(F.cross_entropy(logits[k], labels[k][idx]) for k in HEADS)
        frac = max(step / args.steps, budget.elapsed / budget.limit)
        lr = args.lr * min(1.0, (step + 1) / 50) * max(0.05, 1 - frac)
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % args.ckpt_every == 0:
            ck.save({"model": model, "opt": opt}, step, budget.elapsed)
    bar.close()
    ck.save({"model": model, "opt": opt}, step, budget.elapsed)

    model.eval()
    acc = accuracy(model, test_x, test_y)
    blur = F.interpolate(F.interpolate(test_x, size=(24, 24), mode="bilinear", antialias=True),
                         size=(64, 64), mode="bilinear")
    acc_blur = accuracy(model, blur, test_y)
    print(f"held-out accuracy {acc}\nblurred (24px) accuracy {acc_blur}", flush=True)

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", model.config())
    save_file(half_state(model.state_dict()), str(out / "model.safetensors"))
    write_json(out / "loom.json", {"kind": "judge", "arch": "shapes_judge", "resolution": 64})
    nparams = sum(p.numel() for p in model.parameters())
    write_json(args.work_dir / "metrics.json", {"steps": step, "seconds": round(budget.elapsed, 1),
                                                "params": nparams, "accuracy": acc, "accuracy_blur24": acc_blur,
                                                "size_mb": round(folder_mb(out), 3), "batch": args.batch})
    print(f"wrote {out} ({folder_mb(out):.2f} MB, {nparams} params, {step} steps, {budget.elapsed:.0f}s)")


if __name__ == "__main__":
    main()
