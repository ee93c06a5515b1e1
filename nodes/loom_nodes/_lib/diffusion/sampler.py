"""The denoising loop: timesteps for a denoise strength, classifier-free guidance, inpainting.

Pure: the caller gives a ``model(x, t, cond) -> prediction`` function, a diffusers scheduler,
noise, and a callback; nothing here knows about nodes, devices or a UI.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .conds import mix

ModelFn = Callable[[torch.Tensor, torch.Tensor, dict[str, Any]], torch.Tensor]
StepCallback = Callable[[int, int, torch.Tensor], None]


class NoCleanEstimate(ValueError):
    """A run asked to end on clean latents, but the scheduler does not report its estimate."""


@dataclass
class Guidance:
    """Conditioning kwargs for the model (tensors batched like the latents) and the CFG scale.

    ``uncond`` None, or ``scale == 1``, runs the model once per step without guidance.
    A combined conditioning gives several parts: ``cond`` then holds ``parts`` conditionings
    one after the other along the batch (``uncond`` likewise ``uncond_parts``), and
    ``weights`` / ``uncond_weights`` (parts, B, 1, h, w) say how much each part's prediction
    counts in each latent cell (None: all parts everywhere, equally).
    """

    cond: dict[str, Any]
    uncond: dict[str, Any] | None = None
    scale: float = 1.0
    parts: int = 1
    uncond_parts: int = 1
    weights: torch.Tensor | None = None
    uncond_weights: torch.Tensor | None = None

    @property
    def guided(self) -> bool:
        """Whether both predictions are needed."""
        return self.uncond is not None and self.scale != 1.0

    def calls(self) -> int:
        """Copies of the latents one model call takes."""
        return self.parts + (self.uncond_parts if self.guided else 0)

    def combine(self, pred: torch.Tensor) -> torch.Tensor:
        """The guided prediction from one batched model output (uncond parts first)."""
        chunks = list(pred.chunk(self.calls()))
        if not self.guided:
            return mix(chunks, self.weights, None)
        uncond = mix(chunks[:self.uncond_parts], self.uncond_weights, None)
        cond = mix(chunks[self.uncond_parts:], self.weights, uncond)
        return uncond + self.scale * (cond - uncond)


def _cat(a: Any, b: Any) -> Any:
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    if hasattr(a, "concat"):
        return a.concat(b)  # e.g. the ControlNets of each sample (controlnet.ControlBatch)
    return a


def pad_tokens(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat token states (B, T, D) to a common length (the lcm): attention is unchanged."""
    ta, tb = a.shape[1], b.shape[1]
    if ta == tb:
        return a, b
    n = math.lcm(ta, tb)
    return a.repeat(1, n // ta, 1), b.repeat(1, n // tb, 1)


@dataclass
class Plan:
    """Timesteps to run and where they start in the scheduler's full schedule.

    ``full``: start from pure noise (``noise × init_noise_sigma``, text-to-image); otherwise the
    input latents are noised to the first timestep (img2img), or, with ``add_noise`` False,
    taken as they are (already noisy: the second half of a split run). ``after`` is the
    timestep that follows the last one run when the run ends with noise left (it stops before
    the end of its schedule, or custom sigmas end above 0); None when it runs down to clean
    latents. Then ``leftover`` False returns the last step's estimate of the clean latents
    instead of the still-noisy ones.
    """

    timesteps: torch.Tensor
    begin: int
    full: bool = field(default=True)
    add_noise: bool = True
    after: torch.Tensor | None = None
    leftover: bool = True

    @property
    def stops_early(self) -> bool:
        """Whether the run ends with noise left in the latents."""
        return self.after is not None


TimestepArgs = Callable[[Any, int], dict[str, Any]]


def set_steps(scheduler: Any, steps: int, device: torch.device, timestep_args: TimestepArgs | None = None) -> None:
    """``scheduler.set_timesteps(steps)`` plus the model's extra arguments for it (flow models:
    the pipeline's sigmas and dynamic shift ``mu``), given by ``timestep_args(scheduler, steps)``."""
    extra = timestep_args(scheduler, steps) if timestep_args is not None else {}
    scheduler.set_timesteps(steps, device=device, **extra)


def add_noise(scheduler: Any, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``latents`` noised to timestep ``t``: ``add_noise`` (noise prediction) or ``scale_noise`` (flow)."""
    if hasattr(scheduler, "add_noise"):
        return scheduler.add_noise(latents, noise, t)
    return scheduler.scale_noise(latents, t, noise)


def plan(scheduler: Any, steps: int, denoise: float, device: torch.device,
         timestep_args: TimestepArgs | None = None) -> Plan:
    """Set the scheduler's timesteps for ``steps`` actual steps at strength ``denoise``.

    ``denoise < 1`` builds a schedule of ``round(steps / denoise)`` steps and runs its last
    ``steps`` (img2img: the same number of model calls, starting partway down).
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if denoise >= 1.0:
        set_steps(scheduler, steps, device, timestep_args)
        return Plan(scheduler.timesteps, 0, True)
    total = max(steps, int(round(steps / max(denoise, 1e-4))))
    set_steps(scheduler, total, device, timestep_args)
    order = getattr(scheduler, "order", 1)
    begin = (total - steps) * order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return Plan(scheduler.timesteps[begin:], begin, False)


def accepts_sigmas(scheduler: Any) -> bool:
    """Whether the scheduler takes a custom sigma schedule (``set_timesteps(sigmas=...)``)."""
    return "sigmas" in inspect.signature(scheduler.set_timesteps).parameters


def window(scheduler: Any, steps: int, start: int, end: int, device: torch.device, *,
           sigmas: torch.Tensor | None = None, add_noise: bool = True, leftover: bool = True,
           timestep_args: TimestepArgs | None = None) -> Plan:
    """Set a schedule of ``steps`` steps (or the custom ``sigmas``) and plan steps ``start`` ≤ i < ``end``.

    ``end`` beyond the schedule means its end. Starting at 0 with ``add_noise`` and no custom
    sigmas is text-to-image (pure noise, as diffusers' pipelines start); a later start noises
    the input to that step, as diffusers' img2img does; custom sigmas always noise the input
    to their first level (``latents + σ₀ · noise`` for Euler-type schedulers). An empty window
    (``start ≥ end``) has no timesteps.
    """
    if sigmas is not None:
        if not accepts_sigmas(scheduler) or not hasattr(scheduler, "add_noise"):
            raise ValueError(f"{type(scheduler).__name__} does not take a custom sigma schedule")
        scheduler.set_timesteps(sigmas=[float(v) for v in sigmas], device=device)
        n = int(sigmas.numel()) - 1
    else:
        if steps < 1:
            raise ValueError("steps must be at least 1")
        set_steps(scheduler, steps, device, timestep_args)
        n = steps
    all_ts = scheduler.timesteps
    order = getattr(scheduler, "order", 1)
    start = max(0, min(int(start), n))
    end = max(start, min(int(end), n))
    b, e = min(start * order, len(all_ts)), min(end * order, len(all_ts))
    if end >= n:
        e = len(all_ts)
    if b and hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(b)
    elif sigmas is not None and hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)
    after = all_ts[e:e + 1] if e < len(all_ts) else None
    if after is None and sigmas is not None and float(sigmas[-1]) > 0:
        # a custom schedule that ends above 0 (the high half of a split) also ends noisy; Euler-type
        # schedulers index their sigmas by step, so the last timestep stands for the final level
        after = all_ts[-1:]
    return Plan(all_ts[b:e], b, full=start == 0 and sigmas is None, add_noise=add_noise, after=after,
                leftover=leftover)


def _step_kwargs(scheduler: Any, generator: torch.Generator | None) -> dict[str, Any]:
    params = inspect.signature(scheduler.step).parameters
    return {"generator": generator} if "generator" in params and generator is not None else {}


def sample(model: ModelFn, scheduler: Any, plan_: Plan, latents: torch.Tensor, noise: torch.Tensor,
           guidance: Guidance, *, mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
           callback: StepCallback | None = None) -> torch.Tensor:
    """Run the loop and return the denoised latents (same shape as ``latents``).

    ``latents`` are the clean input latents (zeros for text-to-image), ``noise`` the initial
    noise; ``mask`` (B or 1, 1, h, w), 1 = regenerate, keeps the rest of ``latents``.
    """
    ts = plan_.timesteps
    if not plan_.add_noise:
        x = latents
    elif plan_.full:
        x = noise * getattr(scheduler, "init_noise_sigma", 1.0)  # flow schedulers start from the noise itself
    else:
        x = add_noise(scheduler, latents, noise, ts[:1])
    if mask is not None:
        mask = mask.to(x.device, x.dtype)
    extra = _step_kwargs(scheduler, generator)
    cond = guidance.cond
    if guidance.guided:
        cond = _cat(guidance.uncond, guidance.cond)
    total = len(ts)
    denoise_last = plan_.stops_early and not plan_.leftover
    copies = guidance.calls()
    for i, t in enumerate(ts):
        x_in = torch.cat([x] * copies) if copies > 1 else x
        if hasattr(scheduler, "scale_model_input"):
            x_in = scheduler.scale_model_input(x_in, t)
        pred = guidance.combine(model(x_in, t, {**cond, "step": (i, total)}))  # step: ControlNet windows
        out = scheduler.step(pred, t, x, **extra)
        x = out.prev_sample
        x0 = getattr(out, "pred_original_sample", None)
        last = i + 1 == total
        if last and denoise_last:
            if x0 is None:
                raise NoCleanEstimate(f"{type(scheduler).__name__} does not report its estimate of the clean "
                                 "latents, so a run that stops early must keep its leftover noise")
            x = x0
        if mask is not None:
            x = _keep(scheduler, plan_, latents, noise, ts, i, denoise_last) * (1 - mask) + x * mask
        if callback is not None:
            callback(i + 1, total, x0 if x0 is not None else x)
    return x


def _keep(scheduler: Any, plan_: Plan, latents: torch.Tensor, noise: torch.Tensor, ts: torch.Tensor,
          i: int, clean_at_end: bool) -> torch.Tensor:
    """What the unmasked area holds after step ``i``: the input noised to the next timestep."""
    if not plan_.add_noise:
        return latents  # the input is already at its noise level (the second half of a split run)
    if i + 1 < len(ts):
        return add_noise(scheduler, latents, noise, ts[i + 1:i + 2])
    if plan_.after is not None and not clean_at_end:
        return add_noise(scheduler, latents, noise, plan_.after)
    return latents
