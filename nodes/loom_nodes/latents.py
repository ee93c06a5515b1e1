"""Latent images: empty latents sized for a model, seeded noise, upscaling."""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F

from loom import Context, Input, UserInputError, node
from loom.types import VAE, Latent, Seed


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
