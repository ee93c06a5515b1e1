"""Inpainting checkpoints: a UNet whose input is the latents, the mask and the masked image's latents.

SD 1.x/2.x/SDXL inpainting models take 9 channels (4 latents + 1 mask + 4 masked-image
latents). The extra 5 are built as diffusers' ``StableDiffusionInpaintPipeline`` builds them:
the mask is binarized at 0.5, the masked image is the image with the masked pixels set to 0 in
[-1, 1] (grey 0.5 in [0, 1]) encoded by the VAE, and the mask is shrunk to the latent size
with nearest-neighbour sampling. They ride in the conditioning's ``extras[KEY]`` as one
(B, 5, h, w) tensor (mask first), and the denoiser concatenates them to the scaled latents
before each UNet call. Loom encodes with the posterior's mean (diffusers samples it with the
generator); models without the extra channels ignore the entry.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from loom.types import Conditioning

from . import conds

KEY = "inpaint"
MASK_CHANNELS = 1


class InpaintError(ValueError):
    """The inpainting channels cannot be used; ``input`` names the sampler input at fault."""

    def __init__(self, message: str, input: str) -> None:
        super().__init__(message)
        self.input = input


def binary_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (B, 1, H, W) mask at ``size`` pixels (bilinear when resized), 1 where it is ≥ 0.5, else 0."""
    m = mask.float()
    m = m.unsqueeze(1) if m.ndim == 3 else m[:, :1]
    if tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    return (m >= 0.5).float()


def masked_image(image: torch.Tensor, binary: torch.Tensor) -> torch.Tensor:
    """The image (B, 3, H, W) in [0, 1] with the masked pixels grey (0 in the VAE's [-1, 1])."""
    keep = binary < 0.5
    return torch.where(keep, image[:, :3].float(), torch.full_like(image[:, :3].float(), 0.5))


def concat_channels(binary: torch.Tensor, masked_latents: torch.Tensor) -> torch.Tensor:
    """(B, 1 + C, h, w): the binary mask shrunk to the latents (nearest), then the masked latents."""
    small = F.interpolate(binary, size=tuple(masked_latents.shape[-2:]))
    if small.shape[0] != masked_latents.shape[0]:
        n = max(small.shape[0], masked_latents.shape[0])
        small, masked_latents = small.expand(n, -1, -1, -1), masked_latents.expand(n, -1, -1, -1)
    return torch.cat([small, masked_latents.float()], dim=1)


def attach(cond: Conditioning, channels: torch.Tensor) -> Conditioning:
    """``cond`` (every part of it) carrying the inpainting channels."""
    return conds.map_parts(cond, lambda p: replace(p, extras={**p.extras, KEY: channels}))


def channels_of(cond: Conditioning) -> torch.Tensor | None:
    """The inpainting channels a conditioning carries (its first part that has them), or None."""
    for part in conds.parts(cond):
        value = part.extras.get(KEY)
        if value is not None:
            return value
    return None


def extra_channels(denoiser: Any) -> int:
    """How many input channels the denoiser's UNet takes beyond the latents (5 for inpainting)."""
    return int(denoiser.unet.config.in_channels) - int(denoiser.latent_channels)


def check(denoiser: Any, positive: Conditioning, latent_shape: tuple[int, ...]) -> None:
    """Raise ``InpaintError`` when the inpainting channels cannot be used with this model and latent.

    A UNet without extra channels ignores them. An inpainting UNet needs them on the positive
    prompt (the negative borrows the positive's), as many as its extra channels, at the
    latent's size, for one image or every image of the batch.
    """
    extra = extra_channels(denoiser)
    if extra == 0:
        return
    if extra != MASK_CHANNELS + denoiser.latent_channels:
        raise InpaintError(f"this UNet takes {denoiser.unet.config.in_channels} input channels for "
                         f"{denoiser.latent_channels}-channel latents; only inpainting models (latents + 1 mask "
                         f"+ {denoiser.latent_channels} masked-image channels) are supported", "denoiser")
    ch = channels_of(positive)
    if ch is None:
        raise InpaintError("this is an inpainting model (its UNet takes the latents, a mask and the "
                         "masked image's latents): run the prompts through inpaint_conditioning with the image "
                         "and the mask first", "positive")
    if ch.shape[1] != extra:
        raise InpaintError(f"the inpainting channels have {ch.shape[1]} channels but the model takes "
                         f"{extra}; encode the image with this model's VAE", "positive")
    if tuple(ch.shape[-2:]) != tuple(latent_shape[-2:]):
        raise InpaintError(f"the inpainting image is {tuple(ch.shape[-2:])} latent cells but the latent "
                         f"is {tuple(latent_shape[-2:])}; sample the latent that inpaint_conditioning gives", "positive")
    if ch.shape[0] not in (1, latent_shape[0]):
        raise InpaintError(f"the inpainting image batch {ch.shape[0]} does not match the latent "
                         f"batch {latent_shape[0]}", "positive")


def for_part(part: Conditioning, fallback: torch.Tensor | None, batch: int, device: torch.device,
             dtype: torch.dtype) -> torch.Tensor:
    """One part's channels (or ``fallback``, the positive's), batched like the latents."""
    ch = part.extras.get(KEY)
    ch = fallback if ch is None else ch
    if ch is None:
        raise ValueError("a prompt part has no inpainting channels; run it through inpaint_conditioning")
    if ch.shape[0] not in (1, batch):
        raise ValueError(f"a prompt part's inpainting image batch {ch.shape[0]} does not match the latent "
                         f"batch {batch}")
    if ch.shape[0] != batch:
        ch = ch.expand(batch, *ch.shape[1:])
    return ch.to(device, dtype)
