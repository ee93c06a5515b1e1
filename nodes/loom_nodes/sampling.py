"""Noise schedulers and the denoising sampler (classifier-free guidance, img2img, inpainting)."""
from __future__ import annotations

import logging
import time
from typing import Literal, Optional, cast

import torch
import torch.nn.functional as F

from loom import Context, Input, UserInputError, node
from loom.types import Conditioning, Denoiser, Latent, Mask, Scheduler, Seed

from ._lib.diffusion import preview as previews
from ._lib.diffusion import sampler, schedulers
from ._lib.diffusion.components import DiffusionDenoiser, SchedulerChoice

log = logging.getLogger(__name__)
PREVIEW_EVERY = 0.2  # seconds between step previews

_NAMES = tuple(schedulers.available())
SchedulerName = Literal[_NAMES]  # type: ignore[valid-type]
SigmaSchedule = Literal[schedulers.SIGMA_SCHEDULES]  # type: ignore[valid-type]
Spacing = Literal[schedulers.SPACINGS]  # type: ignore[valid-type]


@node(category="sampling")
def scheduler(name: SchedulerName = "euler",  # type: ignore[valid-type]
              sigmas: SigmaSchedule = Input("default", help="sigma spacing: karras, exponential or beta"),  # type: ignore[valid-type]
              spacing: Spacing = Input("default", help="timestep spacing; default keeps the model's"),  # type: ignore[valid-type]
              ) -> Scheduler:
    """Choose a diffusers noise scheduler; it is built from the model's own scheduler config."""
    if sigmas != "default":
        cls = schedulers._class(name)
        flag = {"karras": "use_karras_sigmas", "exponential": "use_exponential_sigmas",
                "beta": "use_beta_sigmas"}[sigmas]
        if cls is None or flag not in schedulers.init_params(cls):
            raise UserInputError(f"scheduler {name!r} has no {sigmas!r} sigma schedule", input="sigmas")
    return SchedulerChoice(name, sigmas, spacing)


def _mask_to_latent(mask: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    if mask.ndim != 4:
        raise UserInputError(f"mask must be (B, 1, H, W), got shape {tuple(mask.shape)}", input="mask")
    m = F.interpolate(mask[:, :1].float(), size=latent.shape[-2:], mode="bilinear", align_corners=False)
    if m.shape[0] not in (1, latent.shape[0]):
        raise UserInputError(f"mask batch {m.shape[0]} does not match latent batch {latent.shape[0]}",
                             input="mask")
    return m.clamp(0, 1)


@node(category="sampling")
def sample(ctx: Context, denoiser: Denoiser, positive: Conditioning, negative: Conditioning,
           latent: Latent, scheduler: Scheduler,
           steps: int = Input(20, ge=1, le=1000, help="denoising steps (model calls for most schedulers)"),
           cfg: float = Input(7.5, ge=0.0, le=100.0, step=0.1, help="classifier-free guidance scale; 1 = off"),
           seed: Seed = Input(0),
           denoise: float = Input(1.0, ge=0.0, le=1.0, step=0.01,
                                  help="1 = from pure noise; below 1 keeps that much of the input (img2img)"),
           mask: Optional[Mask] = None) -> Latent:
    """Denoise latents with a diffusion model, guided by positive and negative prompts."""
    denoiser = cast(DiffusionDenoiser, denoiser)  # the executor checked the socket types
    scheduler = cast(SchedulerChoice, scheduler)
    if latent.family not in ("unknown", denoiser.family):
        raise UserInputError(f"this latent comes from the {latent.family!r} latent space but the model "
                             f"works in {denoiser.family!r}", input="latent")
    x0 = latent.samples.float()
    if x0.ndim != 4 or x0.shape[1] != denoiser.latent_channels:
        raise UserInputError(f"latent has shape {tuple(x0.shape)} but the model needs "
                             f"{denoiser.latent_channels} channels", input="latent")
    for what, cond in (("positive", positive), ("negative", negative)):
        try:
            denoiser.check_conditioning(cond, what)
        except ValueError as exc:
            raise UserInputError(str(exc), input=what) from exc
    out_family = denoiser.family
    if denoise <= 0.0:
        return latent if latent.family == out_family else Latent(
            x0, out_family, denoiser.downscale, latent.noise_mask, latent.batch_index)
    try:
        sched = schedulers.build(scheduler.name, denoiser.scheduler_config, scheduler.sigmas,
                                 scheduler.spacing, seed=int(seed))
    except ValueError as exc:
        raise UserInputError(str(exc), input="scheduler") from exc
    device = ctx.device
    gen = ctx.rng(seed)
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float32)
    batch, _, h, w = x0.shape
    m = mask if mask is not None else latent.noise_mask
    lat_mask = _mask_to_latent(m, x0).to(device) if m is not None else None
    with ctx.models.use(denoiser.unet):
        dtype = next(denoiser.unet.parameters()).dtype
        px_h, px_w = h * denoiser.downscale, w * denoiser.downscale
        pos, neg = positive.embeds, negative.embeds
        if cfg != 1.0:
            pos, neg = sampler.pad_tokens(pos, neg)
        cond_kw = denoiser.unet_kwargs(Conditioning(pos, positive.pooled), batch, px_h, px_w, device, dtype)
        uncond_kw = (denoiser.unet_kwargs(Conditioning(neg, negative.pooled), batch, px_h, px_w, device, dtype)
                     if cfg != 1.0 else None)
        guidance = sampler.Guidance(cond_kw, uncond_kw, float(cfg))
        plan = sampler.plan(sched, steps, denoise, device)

        last = [0.0]

        def on_step(i: int, total: int, current: torch.Tensor) -> None:
            # a preview on the first and last step and at most every PREVIEW_EVERY seconds:
            # the canvas cannot show more, and fast models should not pay for them
            now = time.perf_counter()
            show = i in (1, total) or now - last[0] >= PREVIEW_EVERY
            if show:
                last[0] = now
            ctx.progress(i, total, preview=previews.latent_to_rgb(current, out_family) if show else None)

        ctx.check_interrupted()
        result = sampler.sample(denoiser, sched, plan, x0.to(device), noise.to(device), guidance,
                                mask=lat_mask, generator=gen, callback=on_step)
    return Latent(result.float().cpu(), out_family, denoiser.downscale, latent.noise_mask, latent.batch_index)
