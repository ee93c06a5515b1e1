"""Noise schedulers and the denoising samplers (classifier-free guidance, img2img, inpainting,
step windows for base → refiner handoffs, custom sigma schedules)."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Callable, Literal, Optional, Union, cast

import torch
import torch.nn.functional as F

from loom import Context, Input, UserInputError, node
from loom.types import Conditioning, Denoiser, Latent, Mask, Scheduler, Seed

from ._lib.diffusion import preview as previews
from ._lib.diffusion import accel, conds, controlnet, inpaint, sampler, schedulers
from ._lib.diffusion.components import DiffusionDenoiser, SchedulerChoice
from ._lib.diffusion.sigmas import Sigmas
from ._lib.diffusion.transformer import TransformerDenoiser

log = logging.getLogger(__name__)
PREVIEW_EVERY = 0.2  # seconds between step previews

_NAMES = tuple(schedulers.available(None))
AnyDenoiser = Union[DiffusionDenoiser, TransformerDenoiser]
SchedulerName = Literal[_NAMES]  # type: ignore[valid-type]
SigmaSchedule = Literal[schedulers.SIGMA_SCHEDULES]  # type: ignore[valid-type]
Spacing = Literal[schedulers.SPACINGS]  # type: ignore[valid-type]


@node(category="sampling")
def scheduler(name: SchedulerName = "euler",  # type: ignore[valid-type]
              sigmas: SigmaSchedule = Input("default", help="sigma spacing: karras, exponential or beta"),  # type: ignore[valid-type]
              spacing: Spacing = Input("default", help="timestep spacing; default keeps the model's"),  # type: ignore[valid-type]
              ) -> Scheduler:
    """Choose a diffusers noise scheduler; it is built from the model's own scheduler config.

    flow_euler and flow_heun are for flow-matching models (SD3, Flux, shapes-dit); the others for
    noise-prediction models (SD 1.x/2.x, SDXL, PixArt). sample names a mismatch.
    """
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
    return _denoise(ctx, denoiser, positive, negative, latent, scheduler, steps, cfg, seed, mask,
                    lambda sched, device, targs: sampler.plan(sched, steps, denoise, device, targs),
                    skip=denoise <= 0.0)


@node(category="sampling")
def sample_advanced(ctx: Context, denoiser: Denoiser, positive: Conditioning, negative: Conditioning,
                    latent: Latent, scheduler: Scheduler,
                    steps: int = Input(20, ge=1, le=1000, help="steps of the whole schedule (ignored when "
                                                               "sigmas are linked: they set the schedule)"),
                    cfg: float = Input(7.5, ge=0.0, le=100.0, step=0.1,
                                       help="classifier-free guidance scale; 1 = off"),
                    seed: Seed = Input(0),
                    start_step: int = Input(0, ge=0, le=10000, help="first step of the schedule to run"),
                    end_step: int = Input(10000, ge=0, le=10000,
                                          help="run steps before this one (beyond the schedule = to the end)"),
                    add_noise: bool = Input(True, help="noise the input to the start step; off when it is "
                                                       "already noisy (the refiner half of a split run)"),
                    return_with_leftover_noise: bool = Input(
                        False, help="when stopping before the end, return the still-noisy latents (for a "
                                    "refiner to finish) instead of the last step's clean estimate"),
                    sigmas: Optional[Sigmas] = None,
                    mask: Optional[Mask] = None) -> Latent:
    """Run a window of a denoising schedule: start/end steps, optional noise, custom sigmas (base → refiner)."""
    def make(sched: object, device: torch.device, targs: Optional[sampler.TimestepArgs]) -> sampler.Plan:
        return sampler.window(sched, steps, start_step, end_step, device,
                              sigmas=sigmas.values if sigmas is not None else None,
                              add_noise=add_noise, leftover=return_with_leftover_noise, timestep_args=targs)
    if sigmas is not None and sigmas.steps < 1:
        raise UserInputError("sigmas must hold at least 2 noise levels (one step)", input="sigmas")
    return _denoise(ctx, denoiser, positive, negative, latent, scheduler, steps, cfg, seed, mask, make,
                    skip=False, sigmas_given=sigmas is not None)


def _guidance(denoiser: AnyDenoiser, positive: Conditioning, negative: Conditioning, cfg: float,
              batch: int, size: tuple[int, int], device: torch.device, dtype: torch.dtype) -> sampler.Guidance:
    """UNet kwargs of every part of the prompts, batched, with each part's weight per latent cell.

    An inpainting model also gets each part's inpainting channels as ``concat`` (a part without
    them, such as a plain negative, borrows the positive's), which the denoiser appends to the
    latents.
    """
    pos_parts, neg_parts = conds.parts(positive), conds.parts(negative) if cfg != 1.0 else ()
    neg_parts = controlnet.lend(neg_parts, pos_parts)  # the negative uses the positive's ControlNets
    embeds = [c.embeds for c in pos_parts + neg_parts]
    if len(embeds) > 1:
        embeds = conds.pad_all(embeds)
    down = denoiser.downscale
    px_h, px_w = size[0] * down, size[1] * down
    unet = isinstance(denoiser, DiffusionDenoiser)
    concat = inpaint.channels_of(positive) if unet and inpaint.extra_channels(denoiser) else None

    def kwargs(items: tuple[Conditioning, ...], states: list[torch.Tensor], what: str) -> dict:
        try:
            kws = [denoiser.unet_kwargs(replace(c, embeds=e), batch, px_h, px_w, device, dtype)
                   for c, e in zip(items, states)]
            if concat is not None:
                kws = [{**kw, "concat": inpaint.for_part(c, concat, batch, device, dtype)}
                       for kw, c in zip(kws, items)]
        except ValueError as exc:
            raise UserInputError(str(exc), input=what) from exc
        out = kws[0]
        for kw in kws[1:]:
            out = sampler._cat(out, kw)
        return out

    def weights(items: tuple[Conditioning, ...], what: str) -> Optional[torch.Tensor]:
        if len(items) < 2 and not any(conds.has_region(c) for c in items):
            return None
        try:
            maps = [conds.weight_map(c, batch, size, down).expand(batch, 1, *size) for c in items]
        except ValueError as exc:
            raise UserInputError(str(exc), input=what) from exc
        return torch.stack(maps).to(device)

    n = len(pos_parts)
    return sampler.Guidance(
        kwargs(pos_parts, embeds[:n], "positive"),
        kwargs(neg_parts, embeds[n:], "negative") if neg_parts else None, cfg,
        parts=n, uncond_parts=max(1, len(neg_parts)), weights=weights(pos_parts, "positive"),
        uncond_weights=weights(neg_parts, "negative") if neg_parts else None)


def batch_noise(shape: tuple[int, ...], gen: torch.Generator, batch_index: tuple[int, ...] | None) -> torch.Tensor:
    """Seeded noise; a latent picked out of a batch (``batch_index``) gets its images' own noise."""
    if batch_index is None or len(batch_index) != shape[0]:
        return torch.randn(shape, generator=gen, dtype=torch.float32)
    full = torch.randn((max(batch_index) + 1, *shape[1:]), generator=gen, dtype=torch.float32)
    return full[list(batch_index)]


def _denoise(ctx: Context, denoiser: Denoiser, positive: Conditioning, negative: Conditioning,
             latent: Latent, scheduler: Scheduler, steps: int, cfg: float, seed: int, mask: Optional[Mask],
             make_plan: Callable[[object, torch.device, Optional[sampler.TimestepArgs]], sampler.Plan], *,
             skip: bool,
             sigmas_given: bool = False) -> Latent:
    """The body shared by ``sample`` and ``sample_advanced``: checks, guidance, the loop."""
    denoiser = cast(AnyDenoiser, denoiser)  # the executor checked the socket types
    scheduler = cast(SchedulerChoice, scheduler)
    if latent.family not in ("unknown", denoiser.family):
        raise UserInputError(f"this latent comes from the {latent.family!r} latent space but the model "
                             f"works in {denoiser.family!r}", input="latent")
    x0 = latent.samples.float()
    if x0.ndim != 4 or x0.shape[1] != denoiser.latent_channels:
        raise UserInputError(f"latent has shape {tuple(x0.shape)} but the model needs "
                             f"{denoiser.latent_channels} channels (link the model's vae to empty_latent)",
                             input="latent")
    for what, cond in (("positive", positive), ("negative", negative)):
        try:
            for part in conds.parts(cond):
                denoiser.check_conditioning(part, what)
        except ValueError as exc:
            raise UserInputError(str(exc), input=what) from exc
    if isinstance(denoiser, TransformerDenoiser):
        try:
            denoiser.check_latent(tuple(x0.shape))
        except ValueError as exc:
            raise UserInputError(str(exc), input="latent") from exc
    else:
        try:
            inpaint.check(denoiser, positive, tuple(x0.shape))
        except inpaint.InpaintError as exc:
            raise UserInputError(str(exc), input=exc.input) from exc
    out_family = denoiser.family
    unchanged = latent if latent.family == out_family else replace(latent, samples=x0, family=out_family,
                                                                    downscale=denoiser.downscale)
    if skip:
        return unchanged
    batch, _, h, w = x0.shape
    targs: Optional[sampler.TimestepArgs] = None
    mu = None
    if isinstance(denoiser, TransformerDenoiser):
        den = denoiser
        targs = lambda sch, n: den.timestep_args(sch, n, (h, w))  # noqa: E731
        mu = den.dynamic_mu((h, w))
    try:
        sched = schedulers.build(scheduler.name, denoiser.scheduler_config, scheduler.sigmas,
                                 scheduler.spacing, seed=int(seed), mu=mu)
    except ValueError as exc:
        raise UserInputError(str(exc), input="scheduler") from exc
    device = ctx.device
    try:
        plan = make_plan(sched, device, targs)
    except ValueError as exc:
        raise UserInputError(f"{exc}; schedulers that do: "
                             f"{', '.join(schedulers.taking_sigmas())}" if sigmas_given else str(exc),
                             input="scheduler" if sigmas_given else "steps") from exc
    if len(plan.timesteps) == 0:
        return unchanged  # an empty window: nothing to run
    gen = ctx.rng(seed)
    noise = batch_noise(tuple(x0.shape), gen, latent.batch_index)
    m = mask if mask is not None else latent.noise_mask
    lat_mask = _mask_to_latent(m, x0).to(device) if m is not None else None
    module = denoiser.module if isinstance(denoiser, TransformerDenoiser) else denoiser.unet
    with ctx.models.use(module, *controlnet.control_modules(positive, negative)):
        dtype = next(module.parameters()).dtype
        guidance = _guidance(denoiser, positive, negative, float(cfg), batch, (h, w), device, dtype)

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
        try:
            model = accel.for_run(denoiser, module, device, ctx.settings)  # --compile, --channels-last
            result = sampler.sample(model, sched, plan, x0.to(device), noise.to(device), guidance,
                                    mask=lat_mask, generator=gen, callback=on_step)
        except sampler.NoCleanEstimate as exc:
            raise UserInputError(str(exc), input="return_with_leftover_noise") from exc
    return replace(latent, samples=result.float().cpu(), family=out_family, downscale=denoiser.downscale)
