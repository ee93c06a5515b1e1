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

ModelFn = Callable[[torch.Tensor, torch.Tensor, dict[str, Any]], torch.Tensor]
StepCallback = Callable[[int, int, torch.Tensor], None]


@dataclass
class Guidance:
    """Conditioning kwargs for the model (tensors batched like the latents) and the CFG scale.

    ``uncond`` None, or ``scale == 1``, runs the model once per step without guidance.
    """

    cond: dict[str, Any]
    uncond: dict[str, Any] | None = None
    scale: float = 1.0

    @property
    def guided(self) -> bool:
        """Whether both predictions are needed."""
        return self.uncond is not None and self.scale != 1.0


def _cat(a: Any, b: Any) -> Any:
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
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
    """Timesteps to run and where they start in the scheduler's full schedule."""

    timesteps: torch.Tensor
    begin: int
    full: bool = field(default=True)


def plan(scheduler: Any, steps: int, denoise: float, device: torch.device) -> Plan:
    """Set the scheduler's timesteps for ``steps`` actual steps at strength ``denoise``.

    ``denoise < 1`` builds a schedule of ``round(steps / denoise)`` steps and runs its last
    ``steps`` (img2img: the same number of model calls, starting partway down).
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if denoise >= 1.0:
        scheduler.set_timesteps(steps, device=device)
        return Plan(scheduler.timesteps, 0, True)
    total = max(steps, int(round(steps / max(denoise, 1e-4))))
    scheduler.set_timesteps(total, device=device)
    order = getattr(scheduler, "order", 1)
    begin = (total - steps) * order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return Plan(scheduler.timesteps[begin:], begin, False)


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
    if plan_.full:
        x = noise * scheduler.init_noise_sigma
    else:
        x = scheduler.add_noise(latents, noise, ts[:1])
    if mask is not None:
        mask = mask.to(x.device, x.dtype)
    extra = _step_kwargs(scheduler, generator)
    cond = guidance.cond
    if guidance.guided:
        cond = _cat(guidance.uncond, guidance.cond)
    total = len(ts)
    for i, t in enumerate(ts):
        x_in = torch.cat([x, x]) if guidance.guided else x
        x_in = scheduler.scale_model_input(x_in, t)
        pred = model(x_in, t, cond)
        if guidance.guided:
            uncond_pred, cond_pred = pred.chunk(2)
            pred = uncond_pred + guidance.scale * (cond_pred - uncond_pred)
        out = scheduler.step(pred, t, x, **extra)
        x = out.prev_sample
        if mask is not None:
            if i + 1 < total:
                keep = scheduler.add_noise(latents, noise, ts[i + 1:i + 2])
            else:
                keep = latents
            x = keep * (1 - mask) + x * mask
        if callback is not None:
            x0 = getattr(out, "pred_original_sample", None)
            callback(i + 1, total, x0 if x0 is not None else x)
    return x
