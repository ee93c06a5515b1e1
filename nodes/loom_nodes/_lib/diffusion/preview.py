"""Cheap latent → RGB previews: a per-family linear projection, fitted when unknown.

Known families use published approximate factors; any other family gets a projection
fitted by least squares the first time latents and their decoded images are seen
together (``fit``), and until then the first three channels, normalized.
"""
from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

# Approximate linear maps (C, 3) + bias from SD latents to RGB in [-1, 1], as published by
# the community for SD 1.x/2.x and SDXL VAEs (applied to *scaled* latents).
KNOWN: dict[str, tuple[list[list[float]], list[float]]] = {
    "sd1": ([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
             [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]], [0.0, 0.0, 0.0]),
    "sdxl": ([[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
              [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]], [0.1084, -0.0175, -0.0011]),
}

_fitted: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
_lock = threading.Lock()


def register(family: str, weight: list[list[float]] | torch.Tensor, bias: list[float] | torch.Tensor) -> None:
    """Use this (C, 3) matrix and (3,) bias for ``family`` (e.g. from a model's loom.json)."""
    with _lock:
        _fitted[family] = (torch.as_tensor(weight, dtype=torch.float32),
                           torch.as_tensor(bias, dtype=torch.float32))


def projection(family: str, channels: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The (C, 3) weight and (3,) bias known or fitted for ``family``, or None."""
    with _lock:
        if family in _fitted and _fitted[family][0].shape[0] == channels:
            return _fitted[family]
    if family in KNOWN and len(KNOWN[family][0]) == channels:
        w, b = KNOWN[family]
        return torch.tensor(w), torch.tensor(b)
    return None


def fit(family: str, latents: torch.Tensor, images: torch.Tensor, force: bool = False) -> None:
    """Least-squares fit of latents (B, C, h, w) → images (B, 3, H, W) in [0, 1], once per family."""
    with _lock:
        if (family in _fitted and not force) or family in KNOWN:
            return
    lat = latents.detach().float().cpu()
    img = images.detach().float().cpu() * 2 - 1
    img = F.adaptive_avg_pool2d(img, lat.shape[-2:])
    x = lat.permute(0, 2, 3, 1).reshape(-1, lat.shape[1])
    y = img.permute(0, 2, 3, 1).reshape(-1, 3)
    if x.shape[0] < x.shape[1] + 1:
        return
    xb = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
    sol = torch.linalg.lstsq(xb, y).solution  # (C+1, 3)
    if torch.isfinite(sol).all():
        register(family, sol[:-1], sol[-1])


def latent_to_rgb(latents: torch.Tensor, family: str, max_side: int = 256, upscale: int = 8) -> torch.Tensor:
    """A small preview Image (1, 3, H, W) in [0, 1] of the first latent of the batch."""
    lat = latents[:1].detach().float().cpu()
    proj = projection(family, lat.shape[1])
    if proj is not None:
        w, b = proj
        rgb = torch.einsum("bchw,cd->bdhw", lat, w) + b.view(1, 3, 1, 1)
        rgb = (rgb + 1) / 2
    else:
        rgb = lat[:, :3] if lat.shape[1] >= 3 else lat[:, :1].expand(-1, 3, -1, -1)
        lo = rgb.amin(dim=(2, 3), keepdim=True)
        hi = rgb.amax(dim=(2, 3), keepdim=True)
        rgb = (rgb - lo) / (hi - lo).clamp(min=1e-6)
    h, w = rgb.shape[-2:]
    factor = max(1, min(upscale, max_side // max(h, w)))
    if factor > 1:
        rgb = F.interpolate(rgb, scale_factor=factor, mode="nearest")
    return rgb.clamp(0, 1)
