"""Neural style transfer (Gatys et al.) as a node, and a plot of its loss curves."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal, NamedTuple, Optional

import torch
import torch.nn.functional as F

from loom import Context, Input, UserInputError, node
from loom.types import FeatureExtractor, Image, Seed

from ._lib.style_losses import content_loss, gram, mixed_gram, style_loss, tv_loss
from .features import Features, features_of, rgb


@dataclass(frozen=True)
class StyleLosses:
    """Per-step losses of one style_transfer run (weighted terms; total = their sum)."""

    content: tuple[float, ...] = ()
    style: tuple[float, ...] = ()
    tv: tuple[float, ...] = ()
    total: tuple[float, ...] = ()
    optimizer: str = ""
    extractor: str = ""
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        """Number of recorded steps."""
        return len(self.total)


RANGE_PENALTY = 1000.0  # weight of the out-of-[0, 1] penalty used with L-BFGS


class StyleResult(NamedTuple):
    image: Image
    losses: StyleLosses


def _fit(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the longest side is ``size`` (aspect kept); no-op when it already is."""
    h, w = image.shape[-2:]
    if max(h, w) == size:
        return image
    s = size / max(h, w)
    hw = (max(1, round(h * s)), max(1, round(w * s)))
    return F.interpolate(image, size=hw, mode="bilinear", align_corners=False,
                         antialias=s < 1).clamp(0, 1)


def _rgb(image: torch.Tensor) -> torch.Tensor:
    return rgb(image).float()


def style_targets(ctx: Context, f: Features, styles: list[tuple[torch.Tensor, float]],
                  layers: list[str], size: int) -> dict[str, torch.Tensor]:
    """Mixed Gram targets per layer: every style image (resized to ``size``) with its weight."""
    grams: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    weights: list[float] = []
    for image, weight in styles:
        for i in range(image.shape[0]):
            feats = f.extract(ctx, _fit(image[i:i + 1], size), layers)
            for n in layers:
                grams[n].append(gram(feats[n]))
            weights.append(weight / image.shape[0])
    return {n: mixed_gram(grams[n], weights) for n in layers}


@node(category="style")
def style_transfer(
        ctx: Context, content: Image, style: Image, extractor: FeatureExtractor,
        style_2: Optional[Image] = None,
        style_2_weight: float = Input(0.5, ge=0.0, le=1.0, step=0.05,
                                      help="share of the style target taken from style_2"),
        content_layers: str = Input("default", help="comma-separated layer names; default = the net's"),
        style_layers: str = Input("default", help="comma-separated layer names; default = the net's"),
        content_weight: float = Input(1.0, ge=0.0, le=1e6),
        style_weight: float = Input(10.0, ge=0.0, le=1e6),
        tv_weight: float = Input(1.0, ge=0.0, le=1e6),
        steps: int = Input(100, ge=1, le=10000),
        optimizer: Literal["lbfgs", "adam"] = "lbfgs",
        learning_rate: float = Input(0.02, ge=1e-5, le=1.0, step=0.005,
                                     help="Adam step in pixel units (L-BFGS uses a line search)"),
        init: Literal["content", "noise", "style"] = "content",
        seed: Seed = Seed(0),
        size: int = Input(0, ge=0, le=4096, step=8, help="longest side to optimize at; 0 = content size"),
) -> StyleResult:
    """Repaint the content image in the style of the style image(s) by optimizing its pixels."""
    f = features_of(extractor)
    content_t = _rgb(content)
    style_t = _rgb(style)
    style2_t = _rgb(style_2) if style_2 is not None else None
    c_layers = f.layers(content_layers, f.net.content_layers, "content_layers")
    s_layers = f.layers(style_layers, f.net.style_layers, "style_layers")
    if size:
        content_t = _fit(content_t, size)
    h, w = content_t.shape[-2:]
    if min(h, w) < 16:
        raise UserInputError(f"content is {w}x{h}: style transfer needs at least 16 px per side",
                             input="content")
    long_side = max(h, w)
    styles = [(style_t, 1.0 - style_2_weight if style2_t is not None else 1.0)]
    if style2_t is not None:
        styles.append((style2_t, style_2_weight))
    styles = [s for s in styles if s[1] > 0]
    dev = ctx.device
    with torch.no_grad():
        grams = style_targets(ctx, f, styles, s_layers, long_side)
        c_targets = f.extract(ctx, content_t, c_layers)
    x0 = {"content": lambda: content_t.clone(),
          "noise": lambda: torch.rand(content_t.shape, generator=ctx.rng(seed)),
          "style": lambda: F.interpolate(style_t[:1], size=(h, w), mode="bilinear", align_corners=False,
                                         antialias=True).clamp(0, 1).expand_as(content_t).clone()}[init]()
    x = x0.to(dev).contiguous().requires_grad_(True)  # L-BFGS views the gradient flat: no strided input
    rec: dict[str, list[float]] = {"content": [], "style": [], "tv": [], "total": []}
    last: dict[str, float] = {}

    def objective() -> torch.Tensor:
        feats = f.net.extract(x, sorted(set(c_layers) | set(s_layers)))
        parts = {"content": content_weight * content_loss(feats, c_targets, c_layers),
                 "style": style_weight * style_loss(feats, grams, s_layers),
                 "tv": tv_weight * tv_loss(x)}
        total = parts["content"] + parts["style"] + parts["tv"]
        last.update({k: float(v.detach()) for k, v in parts.items()}, total=float(total.detach()))
        if optimizer == "lbfgs":  # keeps pixels near [0, 1] without a clamp that breaks L-BFGS
            total = total + RANGE_PENALTY * (F.relu(x - 1).square().mean() + F.relu(-x).square().mean())
        return total

    t0 = time.perf_counter()
    with torch.enable_grad(), ctx.models.use(f.net):
        if optimizer == "lbfgs":
            opt: torch.optim.Optimizer = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=50,
                                                           line_search_fn="strong_wolfe")
        else:
            opt = torch.optim.Adam([x], lr=learning_rate)

        # L-BFGS starts every step by evaluating the point where the previous line search
        # ended; the memo answers that from the evaluation already done (half the work).
        memo: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]] = []

        def closure() -> torch.Tensor:
            for xs, loss_m, grad_m, parts_m in memo:
                if torch.equal(xs, x.detach()):
                    x.grad = grad_m.clone()
                    last.update(parts_m)
                    return loss_m
            opt.zero_grad(set_to_none=True)
            loss = objective()
            loss.backward()
            if optimizer == "lbfgs" and x.grad is not None:
                memo.append((x.detach().clone(), loss.detach(), x.grad.detach().clone(), dict(last)))
                del memo[:-4]
            return loss

        for i in range(steps):
            opt.step(closure)
            if optimizer == "adam":
                with torch.no_grad():
                    x.clamp_(0.0, 1.0)
            if not math.isfinite(last.get("total", math.nan)):
                raise UserInputError(f"the loss became {last.get('total')} at step {i + 1}: lower the "
                                     "weights or the learning rate", input="learning_rate")
            for k in rec:
                rec[k].append(last[k])
            ctx.progress(i + 1, steps, preview=x.detach().clamp(0, 1).cpu(), content=last["content"],
                         style=last["style"], tv=last["tv"], loss=last["total"])
    seconds = time.perf_counter() - t0
    ctx.log.info("style transfer: %d %s steps in %.1f s (%.3f s/step), loss %.4g → %.4g", steps,
                 optimizer, seconds, seconds / steps, rec["total"][0], rec["total"][-1])
    losses = StyleLosses(content=tuple(rec["content"]), style=tuple(rec["style"]), tv=tuple(rec["tv"]),
                         total=tuple(rec["total"]), optimizer=optimizer, extractor=f.label,
                         seconds=seconds)
    return StyleResult(x.detach().clamp(0, 1).cpu(), losses)


@node(category="style")
def style_loss_curve(losses: StyleLosses, log_scale: bool = True,
                     width: int = Input(640, ge=160, le=2048), height: int = Input(400, ge=120, le=2048)
                     ) -> Image:
    """Plot the losses of a style_transfer run as an image."""
    if not losses.steps:
        raise UserInputError("the run recorded no steps", input="losses")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = range(1, losses.steps + 1)
    for name, values in (("total", losses.total), ("style", losses.style), ("content", losses.content),
                         ("tv", losses.tv)):
        if any(v > 0 for v in values):
            ax.plot(steps, values, label=name, linewidth=2 if name == "total" else 1.2)
    if log_scale and any(v > 0 for v in losses.total):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted loss")
    ax.set_title(f"style transfer ({losses.optimizer}, {losses.extractor}, {losses.seconds:.1f} s)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    canvas.draw()
    rgba = torch.frombuffer(bytearray(canvas.buffer_rgba()), dtype=torch.uint8)
    img = rgba.reshape(int(canvas.get_width_height()[1]), int(canvas.get_width_height()[0]), 4)
    return (img[..., :3].permute(2, 0, 1)[None].float() / 255.0).contiguous()
