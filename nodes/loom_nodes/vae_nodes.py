"""VAE encode and decode, with optional tiling for large images and a float16 NaN guard."""
from __future__ import annotations

from typing import cast

from loom import Context, Input, UserInputError, node
from loom.types import VAE, Image, Latent

from ._lib.diffusion import preview as previews
from ._lib.diffusion.components import DiffusionVAE


def diffusion_vae(vae: VAE) -> DiffusionVAE:
    """The VAE socket's value as Loom's diffusion VAE (the executor checked it is a VAE)."""
    return cast(DiffusionVAE, vae)


@node(category="latent")
def vae_decode(ctx: Context, vae: VAE, latent: Latent,
               tile: int = Input(0, ge=0, le=4096, step=64, help="tile size in pixels; 0 = no tiling")) -> Image:
    """Decode latents into images."""
    v = diffusion_vae(vae)
    if latent.family not in ("unknown", v.family):
        raise UserInputError(f"this latent is from the {latent.family!r} latent space but the VAE "
                             f"decodes {v.family!r}; use the model's own VAE", input="latent")
    z = latent.samples
    if z.ndim != 4 or z.shape[1] != v.latent_channels:
        raise UserInputError(f"latent has shape {tuple(z.shape)}, the VAE needs {v.latent_channels} channels",
                             input="latent")
    images = v.decode(z, ctx.models, ctx.device, tile)
    previews.fit(v.family, z, images)
    return images


@node(category="latent")
def vae_encode(ctx: Context, vae: VAE, image: Image,
               tile: int = Input(0, ge=0, le=4096, step=64, help="tile size in pixels; 0 = no tiling")) -> Latent:
    """Encode images into latents (cropped to a multiple of the VAE's downscale factor)."""
    v = diffusion_vae(vae)
    if image.ndim != 4 or image.shape[1] not in (1, 3, 4):
        raise UserInputError(f"image must be (B, 3, H, W), got {tuple(image.shape)}", input="image")
    if image.shape[1] == 1:
        image = image.expand(-1, 3, -1, -1)
    d = v.downscale
    h, w = image.shape[-2] // d * d, image.shape[-1] // d * d
    if h == 0 or w == 0:
        raise UserInputError(f"image {tuple(image.shape[-2:])} is smaller than {d}×{d} pixels", input="image")
    if (h, w) != tuple(image.shape[-2:]):
        top, left = (image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2
        ctx.log.info("cropping %s to %d×%d (a multiple of %d)", tuple(image.shape[-2:]), w, h, d)
        image = image[..., top:top + h, left:left + w]
    z = v.encode(image, ctx.models, ctx.device, tile)
    return Latent(z, v.family, d)
