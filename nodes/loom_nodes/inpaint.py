"""Inpainting conditioning: the image and mask that inpainting checkpoints (9-channel UNets) see.

``inpaint_conditioning`` encodes the image and the masked image with the VAE and puts the
mask + masked-image latents on the prompts (``_lib/diffusion/inpaint.py``); ``sample`` and
``sample_advanced`` hand them to an inpainting UNet at every step. It also gives the image's
latents, with the mask as their noise mask, so the same graph works with a regular model
(which ignores the extra channels and keeps the unmasked latents instead).
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import torch

from loom import Context, Input, UserInputError, node
from loom.types import VAE, Conditioning, Image, Latent, Mask

from ._lib.diffusion import inpaint
from .vae_nodes import diffusion_vae

log = logging.getLogger(__name__)


class InpaintConditioning(NamedTuple):
    positive: Conditioning
    negative: Conditioning
    latent: Latent


def _crop(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The centre h × w of a (B, C, H, W) tensor (vae_encode crops the same way)."""
    top, left = (t.shape[-2] - h) // 2, (t.shape[-1] - w) // 2
    return t[..., top:top + h, left:left + w]


@node(category="conditioning")
def inpaint_conditioning(ctx: Context, vae: VAE, image: Image, mask: Mask, positive: Conditioning,
                         negative: Conditioning,
                         noise_mask: bool = Input(True, help="also attach the mask to the latent, so only the "
                                                             "masked area is resampled (needed by regular models; "
                                                             "off gives diffusers' inpainting pipeline exactly)")
                         ) -> InpaintConditioning:
    """Give prompts the image and mask an inpainting model (9 input channels) needs; outputs the image's latent."""
    v = diffusion_vae(vae)
    if image.ndim != 4 or image.shape[1] not in (1, 3, 4):
        raise UserInputError(f"image must be (B, 3, H, W), got {tuple(image.shape)}", input="image")
    if image.shape[1] == 1:
        image = image.expand(-1, 3, -1, -1)
    if mask.shape[0] not in (1, image.shape[0]):
        raise UserInputError(f"mask batch {mask.shape[0]} does not match image batch {image.shape[0]}",
                             input="mask")
    d = v.downscale
    size = (int(image.shape[-2]), int(image.shape[-1]))
    h, w = size[0] // d * d, size[1] // d * d
    if h == 0 or w == 0:
        raise UserInputError(f"image {size} is smaller than {d}×{d} pixels", input="image")
    binary = inpaint.binary_mask(mask, size)
    soft = mask.float().unsqueeze(1) if mask.ndim == 3 else mask[:, :1].float()
    if tuple(soft.shape[-2:]) != size:
        soft = torch.nn.functional.interpolate(soft, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    if (h, w) != size:
        ctx.log.info("cropping %s to %d×%d (a multiple of %d)", size, w, h, d)
        image, binary, soft = _crop(image, h, w), _crop(binary, h, w), _crop(soft, h, w)
    if not binary.any():
        log.warning("inpaint_conditioning: the mask has no pixel at or above 0.5; nothing will be inpainted")
    latents = v.encode(image, ctx.models, ctx.device)
    masked = v.encode(inpaint.masked_image(image, binary), ctx.models, ctx.device)
    channels = inpaint.concat_channels(binary, masked)
    latent = Latent(latents, v.family, d, noise_mask=soft.clone() if noise_mask else None)
    return InpaintConditioning(inpaint.attach(positive, channels), inpaint.attach(negative, channels), latent)
