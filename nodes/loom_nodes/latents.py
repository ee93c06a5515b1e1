"""Latent images: empty latents sized for a model, seeded noise, upscaling, compositing,
blending, cropping, batches and noise masks. Nodes never mutate their inputs."""
from __future__ import annotations

from dataclasses import replace
from typing import Literal, Optional

import torch
import torch.nn.functional as F

from loom import Context, Input, UserInputError, node
from loom.types import VAE, Latent, Mask, Seed


@node(category="latent")
def empty_latent(width: int = Input(512, ge=8, le=16384, step=8, help="image width in pixels"),
                 height: int = Input(512, ge=8, le=16384, step=8, help="image height in pixels"),
                 batch: int = Input(1, ge=1, le=64),
                 vae: Optional[VAE] = None) -> Latent:
    """Zero latents for a width × height image (the VAE sets channels and downscale; default SD's 4 and 8)."""
    down = int(getattr(vae, "downscale", 8)) if vae is not None else 8
    channels = int(getattr(vae, "latent_channels", 4)) if vae is not None else 4
    family = str(getattr(vae, "family", "unknown")) if vae is not None else "unknown"
    for name, v in (("width", width), ("height", height)):
        if v % down:
            raise UserInputError(f"{name} {v} is not divisible by {down}, the model's downscale factor "
                                 f"(try {max(down, v - v % down)})", input=name)
    return Latent(torch.zeros(batch, channels, height // down, width // down), family, down)


@node(category="latent")
def latent_noise(ctx: Context, latent: Latent, seed: Seed = Input(0),
                 strength: float = Input(1.0, ge=0.0, le=100.0, step=0.01)) -> Latent:
    """Add Gaussian noise drawn on the CPU from a seed (the same seed gives the same noise anywhere)."""
    x = latent.samples.float()
    noise = torch.randn(x.shape, generator=ctx.rng(seed), dtype=torch.float32)
    return latent.with_samples(x + strength * noise.to(x.device))


@node(category="latent")
def latent_upscale(latent: Latent,
                   scale: float = Input(2.0, ge=0.125, le=8.0, step=0.125),
                   method: Literal["nearest", "bilinear", "bicubic", "area"] = "bilinear") -> Latent:
    """Resize latents by a factor (e.g. before a second img2img pass)."""
    x = latent.samples.float()
    h, w = max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale))
    kw = {"align_corners": False} if method in ("bilinear", "bicubic") else {}
    out = F.interpolate(x, size=(h, w), mode=method, **kw)
    mask = latent.noise_mask
    if mask is not None:
        size = (max(1, round(mask.shape[-2] * scale)), max(1, round(mask.shape[-1] * scale)))
        mask = F.interpolate(mask.float(), size=size, mode="nearest")
    return Latent(out, latent.family, latent.downscale, mask, latent.batch_index)


# --- compositing, blending, cropping and batches ------------------------------------------
def _pair(a: Latent, b: Latent, name: str) -> str:
    """The family of two latents that may be combined; UserInputError on ``name`` otherwise."""
    if a.family != b.family and "unknown" not in (a.family, b.family):
        raise UserInputError(f"{name} comes from the {b.family!r} latent space, the other latent from "
                             f"{a.family!r}", input=name)
    if a.samples.shape[1] != b.samples.shape[1] or a.downscale != b.downscale:
        raise UserInputError(f"{name} has {b.samples.shape[1]} channels at 1/{b.downscale} scale, the other "
                             f"latent {a.samples.shape[1]} at 1/{a.downscale}", input=name)
    return b.family if a.family == "unknown" else a.family


def _cells(value: int, down: int) -> int:
    """Pixels → latent cells (rounded down)."""
    return int(value) // down


def _mask_at(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (B, 1, H, W) mask resized to a latent's (h, w), values in [0, 1]."""
    m = mask.float()
    if m.ndim == 3:
        m = m.unsqueeze(1)
    return F.interpolate(m[:, :1], size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def _batched(t: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    """``t`` with batch 1 expanded to ``batch``; another size than 1 or ``batch`` is an error."""
    if t.shape[0] == batch:
        return t
    if t.shape[0] != 1:
        raise UserInputError(f"{name} has batch {t.shape[0]}, which is neither 1 nor {batch}", input=name)
    return t.expand(batch, *t.shape[1:])


@node(category="latent/transform")
def latent_composite(destination: Latent, source: Latent,
                     x: int = Input(0, ge=0, le=16384, step=8, help="left edge in pixels (÷ the downscale)"),
                     y: int = Input(0, ge=0, le=16384, step=8, help="top edge in pixels (÷ the downscale)"),
                     feather: int = Input(0, ge=0, le=16384, step=8,
                                          help="pixels over which the inner edges blend in"),
                     mask: Optional[Mask] = None) -> Latent:
    """Paste one latent into another at x, y (pixels); an optional mask (over the source) and feathered edges."""
    family = _pair(destination, source, "source")
    dst, src = destination.samples.float(), source.samples.float()
    down = destination.downscale
    lx, ly = _cells(x, down), _cells(y, down)
    h, w = min(src.shape[-2], dst.shape[-2] - ly), min(src.shape[-1], dst.shape[-1] - lx)
    if h <= 0 or w <= 0:
        which = "x" if w <= 0 else "y"
        raise UserInputError(f"{which} {x if which == 'x' else y} places the source outside the "
                             f"{dst.shape[-1] * down} × {dst.shape[-2] * down} px destination", input=which)
    batch = dst.shape[0]
    src = _batched(src, batch, "source")[..., :h, :w]
    weight = torch.ones(1, 1, h, w)
    if mask is not None:
        weight = _batched(_mask_at(mask, tuple(source.samples.shape[-2:]))[..., :h, :w], batch, "mask")
    f = _cells(feather, down)
    if f:
        ramp = (torch.arange(f, dtype=torch.float32) + 1) / (f + 1)
        edges = torch.ones(h, w)
        n_y, n_x = min(f, h), min(f, w)
        if ly > 0:                       # edges on the destination's border stay sharp
            edges[:n_y] *= ramp[:n_y, None]
        if ly + h < dst.shape[-2]:
            edges[h - n_y:] *= ramp[:n_y].flip(0)[:, None]
        if lx > 0:
            edges[:, :n_x] *= ramp[:n_x]
        if lx + w < dst.shape[-1]:
            edges[:, w - n_x:] *= ramp[:n_x].flip(0)
        weight = weight * edges
    out = dst.clone()
    region = out[..., ly:ly + h, lx:lx + w]
    out[..., ly:ly + h, lx:lx + w] = src * weight + region * (1 - weight)
    return replace(destination, samples=out, family=family)


@node(category="latent/transform")
def latent_blend(a: Latent, b: Latent,
                 factor: float = Input(0.5, ge=0.0, le=1.0, step=0.01, help="0 gives a, 1 gives b")) -> Latent:
    """Mix two latents of the same size: a × (1 − factor) + b × factor."""
    family = _pair(a, b, "b")
    if a.samples.shape[-2:] != b.samples.shape[-2:]:
        raise UserInputError(f"b is {tuple(b.samples.shape[-2:])} latent cells, a is "
                             f"{tuple(a.samples.shape[-2:])}; resize one first", input="b")
    x, y = a.samples.float(), _batched(b.samples.float(), a.samples.shape[0], "b")
    return replace(a, samples=x * (1 - factor) + y * factor, family=family)


def _crop_mask(mask: torch.Tensor | None, lat: tuple[int, int], box: tuple[int, int, int, int]) -> torch.Tensor | None:
    """Crop a noise mask of any resolution to the latent box (top, left, h, w)."""
    if mask is None:
        return None
    sy, sx = mask.shape[-2] / lat[0], mask.shape[-1] / lat[1]
    top, left, h, w = box
    return mask[..., round(top * sy):round((top + h) * sy), round(left * sx):round((left + w) * sx)]


@node(category="latent/transform")
def latent_crop(latent: Latent,
                x: int = Input(0, ge=0, le=16384, step=8, help="left edge in pixels"),
                y: int = Input(0, ge=0, le=16384, step=8, help="top edge in pixels"),
                width: int = Input(512, ge=8, le=16384, step=8, help="width in pixels"),
                height: int = Input(512, ge=8, le=16384, step=8, help="height in pixels")) -> Latent:
    """Cut a box (in pixels, ÷ the downscale) out of latents; the box is clipped to the latent."""
    s = latent.samples
    down = latent.downscale
    top, left = _cells(y, down), _cells(x, down)
    for name, v, size in (("x", left, s.shape[-1]), ("y", top, s.shape[-2])):
        if v >= size:
            raise UserInputError(f"{name} {x if name == 'x' else y} is outside the {size * down} px latent",
                                 input=name)
    h = min(max(1, _cells(height, down)), s.shape[-2] - top)
    w = min(max(1, _cells(width, down)), s.shape[-1] - left)
    mask = _crop_mask(latent.noise_mask, tuple(s.shape[-2:]), (top, left, h, w))
    return replace(latent, samples=s[..., top:top + h, left:left + w].clone(), noise_mask=mask)


def _indices(latent: Latent) -> tuple[int, ...]:
    """Each image's index in the batch it was drawn with (its noise), by default its position."""
    return latent.batch_index if latent.batch_index is not None else tuple(range(latent.samples.shape[0]))


@node(category="latent/batch")
def latent_from_batch(latent: Latent,
                      index: int = Input(0, ge=0, le=4095, help="first image to take (0-based)"),
                      length: int = Input(1, ge=1, le=4096, help="how many images (clipped to the batch)")
                      ) -> Latent:
    """Pick images out of a latent batch; sampling them later gives them the noise they had in the batch."""
    n = latent.samples.shape[0]
    if index >= n:
        raise UserInputError(f"index {index} is past the last image of a batch of {n}", input="index")
    end = min(n, index + length)
    mask = latent.noise_mask
    if mask is not None and mask.shape[0] > 1:
        mask = mask[index:end].clone()
    return replace(latent, samples=latent.samples[index:end].clone(), noise_mask=mask,
                   batch_index=_indices(latent)[index:end])


@node(category="latent/batch")
def repeat_latent_batch(latent: Latent, amount: int = Input(2, ge=1, le=64, help="copies of the batch")) -> Latent:
    """Repeat a latent batch; each copy gets noise of its own when sampled."""
    samples = latent.samples.repeat(amount, 1, 1, 1)
    mask = latent.noise_mask
    if mask is not None and mask.shape[0] > 1:
        mask = mask.repeat(amount, *([1] * (mask.ndim - 1)))
    index = None
    if latent.batch_index is not None:
        step = max(latent.batch_index) + 1
        index = tuple(i + k * step for k in range(amount) for i in latent.batch_index)
    return replace(latent, samples=samples, noise_mask=mask, batch_index=index)


@node(category="latent/batch")
def latent_batch(a: Latent, b: Latent) -> Latent:
    """Join two latent batches of the same size into one (a's images first)."""
    family = _pair(a, b, "b")
    if a.samples.shape[-2:] != b.samples.shape[-2:]:
        raise UserInputError(f"b is {tuple(b.samples.shape[-2:])} latent cells, a is "
                             f"{tuple(a.samples.shape[-2:])}; crop or resize one first", input="b")
    size = tuple(a.samples.shape[-2:])
    mask = None
    if a.noise_mask is not None or b.noise_mask is not None:
        parts = [(_mask_at(m.noise_mask, size) if m.noise_mask is not None else torch.ones(1, 1, *size))
                 .expand(m.samples.shape[0], 1, *size) for m in (a, b)]
        mask = torch.cat(parts)
    index = None
    if a.batch_index is not None or b.batch_index is not None:
        first = _indices(a)
        index = first + tuple(i + max(first) + 1 for i in _indices(b))
    samples = torch.cat([a.samples.float(), b.samples.float()])
    return replace(a, samples=samples, family=family, noise_mask=mask, batch_index=index)


@node(category="latent/inpaint")
def set_latent_noise_mask(latent: Latent, mask: Mask) -> Latent:
    """Attach a mask (1 = repaint) that sample and sample_advanced use when their own mask is not linked."""
    m = mask.float()
    if m.ndim == 3:
        m = m.unsqueeze(1)
    if m.shape[0] not in (1, latent.samples.shape[0]):
        raise UserInputError(f"mask batch {m.shape[0]} does not match latent batch {latent.samples.shape[0]}",
                             input="mask")
    return replace(latent, noise_mask=m.clone())
