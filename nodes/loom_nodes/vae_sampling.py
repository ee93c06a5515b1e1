"""A VAE used as a generator: decode latents drawn from N(0, I), or drawn around an encoded image."""
from __future__ import annotations

from typing import Literal, NamedTuple, Optional

import torch

from loom import Context, Input, UserInputError, node
from loom.types import VAE, Image, Latent, Seed

from .vae_nodes import diffusion_vae


class VAESample(NamedTuple):
    image: Image
    latent: Latent


def _noise(ctx: Context, seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=ctx.rng(seed))


@node(category="latent")
def vae_sample(ctx: Context, vae: VAE, seed: Seed = Seed(0), batch: int = Input(4, ge=1, le=64),
               width: int = Input(256, ge=8, le=4096, step=8, help="ignored when an image is given"),
               height: int = Input(256, ge=8, le=4096, step=8, help="ignored when an image is given"),
               temperature: float = Input(1.0, ge=0.0, le=4.0, step=0.05,
                                          help="standard deviation of the drawn latents"),
               space: Literal["raw", "scaled"] = Input(
                   "raw", help="raw: the VAE's own prior N(0, I); scaled: N(0, I) after the model's "
                               "scaling/shift (the diffusion latent space)"),
               image: Optional[Image] = None) -> VAESample:
    """Generate images with a VAE: decode seeded N(0, I) latents, or latents around an encoded image."""
    v = diffusion_vae(vae)
    d, c = v.downscale, v.latent_channels
    center: torch.Tensor | None = None
    if image is not None:
        img = image
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        h, w = img.shape[-2] // d * d, img.shape[-1] // d * d
        if h == 0 or w == 0:
            raise UserInputError(f"image is {img.shape[-1]}x{img.shape[-2]}, smaller than the VAE's "
                                 f"{d}x{d} latent cell", input="image")
        top, left = (img.shape[-2] - h) // 2, (img.shape[-1] - w) // 2
        center = v.encode(img[..., top:top + h, left:left + w], ctx.models, ctx.device)
        if space == "raw":
            center = v.from_latent_space(center)
        lh, lw = h // d, w // d
    else:
        if width % d or height % d:
            raise UserInputError(f"{width}x{height} is not a multiple of this VAE's downscale factor {d}",
                                 input="width" if width % d else "height")
        lh, lw = height // d, width // d
    zs = []
    for i in range(batch):
        z = temperature * _noise(ctx, seed + i, (1, c, lh, lw))
        if center is not None:
            z = center[i % center.shape[0]][None] + z
        zs.append(z)
        ctx.check_interrupted()
    z = torch.cat(zs)
    model_latents = v.to_latent_space(z) if space == "raw" else z
    images = v.decode(model_latents, ctx.models, ctx.device)
    return VAESample(images, Latent(model_latents, v.family, d))
