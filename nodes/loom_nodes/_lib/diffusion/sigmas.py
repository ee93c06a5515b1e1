"""Noise levels (sigmas) as a value: a model's own schedule, Karras and exponential spacing,
splitting and flipping.

A sigma is the noise level in the variance-exploding form that k-diffusion and diffusers'
Euler-type schedulers use: ``x_t = x_0 + sigma · noise`` with ``sigma = sqrt((1 - ᾱ_t) / ᾱ_t)``.
A schedule of ``n`` steps is ``n + 1`` descending sigmas, usually ending at 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Sigmas:
    """A 1-D float32 tensor of noise levels, one more than the number of steps they make."""

    values: torch.Tensor

    @property
    def steps(self) -> int:
        """The number of steps this schedule runs."""
        return max(0, int(self.values.numel()) - 1)

    @classmethod
    def loom_check(cls, value: Any) -> str | None:
        """The socket check: a Sigmas holding a 1-D float tensor of at least two levels."""
        if not isinstance(value, cls):
            return f"expected Sigmas, got {type(value).__name__}"
        v = value.values
        if not isinstance(v, torch.Tensor) or v.ndim != 1 or not v.is_floating_point() or v.numel() < 2:
            return "Sigmas must hold a 1-D float tensor of at least 2 noise levels"
        return None


def training_sigmas(scheduler: Any) -> np.ndarray:
    """The sigma of every training timestep (ascending with t) from the scheduler's ᾱ."""
    ac = scheduler.alphas_cumprod.double().cpu().numpy()
    return ((1 - ac) / ac) ** 0.5


def own(scheduler: Any) -> torch.Tensor:
    """The schedule the scheduler set (after ``set_timesteps``) as sigmas, ending at 0.

    Euler-type schedulers keep theirs in ``scheduler.sigmas``; for the others (DDIM, PNDM…)
    each timestep is mapped to its training sigma (interpolated for fractional timesteps).
    """
    ts = scheduler.timesteps.double().cpu().numpy()
    sig = getattr(scheduler, "sigmas", None)
    if isinstance(sig, torch.Tensor) and sig.ndim == 1 and sig.numel() == len(ts) + 1:
        return sig.detach().float().cpu().clone()
    table = training_sigmas(scheduler)
    levels = np.interp(ts, np.arange(len(table)), table)
    return torch.tensor(np.concatenate([levels, [0.0]]), dtype=torch.float32)


def karras(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) spacing of ``steps`` sigmas from max to min, plus a final 0.

    Computed as diffusers' ``_convert_to_karras`` does (numpy), so a schedule built here
    equals a scheduler built with ``use_karras_sigmas``.
    """
    ramp = np.linspace(0, 1, steps)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    levels = (hi + ramp * (lo - hi)) ** rho
    return torch.tensor(np.concatenate([levels, [0.0]]).astype(np.float32))


def exponential(sigma_min: float, sigma_max: float, steps: int) -> torch.Tensor:
    """Sigmas evenly spaced in log from max to min (``steps`` of them), plus a final 0."""
    levels = np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), steps))
    return torch.tensor(np.concatenate([levels, [0.0]]).astype(np.float32))


def split(values: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(steps before ``step``, steps from ``step``): they share the sigma at ``step``."""
    step = max(0, min(int(step), values.numel() - 1))
    return values[:step + 1].clone(), values[step:].clone()


def flip(values: torch.Tensor, floor: float = 1e-4) -> torch.Tensor:
    """The schedule reversed (rising noise: unsampling); a leading 0 becomes ``floor``."""
    out = values.flip(0).clone()
    if out.numel() and float(out[0]) == 0.0:
        out[0] = floor
    return out
