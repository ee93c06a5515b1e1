"""Sigma schedules as values: build one from a model's scheduler, split it, flip it.

A ``Sigmas`` socket feeds ``sample_advanced``'s ``sigmas`` input (Euler-type schedulers):
split a schedule at a step for a base → refiner handoff, or flip it to unsample.
"""
from __future__ import annotations

import logging
from typing import Literal, NamedTuple, cast

import numpy as np

from loom import Input, UserInputError, node
from loom.types import Denoiser, Scheduler

from ._lib.diffusion import schedulers
from ._lib.diffusion import sigmas as sig
from ._lib.diffusion.components import DiffusionDenoiser, SchedulerChoice
from ._lib.diffusion.sigmas import Sigmas

log = logging.getLogger(__name__)


@node(category="sampling/sigmas")
def sigmas(denoiser: Denoiser, scheduler: Scheduler,
           steps: int = Input(20, ge=1, le=1000, help="number of steps (the schedule has one more level)"),
           schedule: Literal["scheduler", "karras", "exponential"] = Input(
               "scheduler", help="the scheduler's own levels, or Karras / exponential spacing between "
                                 "its highest and lowest level")) -> Sigmas:
    """Noise levels of a schedule for a model: its scheduler's own, Karras or exponential."""
    den = cast(DiffusionDenoiser, denoiser)
    choice = cast(SchedulerChoice, scheduler)
    try:
        sched = schedulers.build(choice.name, den.scheduler_config, choice.sigmas, choice.spacing)
    except ValueError as exc:
        raise UserInputError(str(exc), input="scheduler") from exc
    sched.set_timesteps(steps)
    own = sig.own(sched)
    if schedule == "scheduler":
        return Sigmas(own)
    # the range in float64, as diffusers computes it, so a schedule built here equals the
    # scheduler's own use_karras_sigmas / use_exponential_sigmas
    table = sig.training_sigmas(sched)
    levels = np.interp(sched.timesteps.double().cpu().numpy(), np.arange(len(table)), table)
    lo, hi = float(levels.min()), float(levels.max())
    if lo <= 0.0:
        raise UserInputError(f"the {choice.name!r} schedule reaches noise level 0 before its end; "
                             f"{schedule} spacing needs a positive lowest level", input="schedule")
    values = sig.karras(lo, hi, steps) if schedule == "karras" else sig.exponential(lo, hi, steps)
    return Sigmas(values)


class SplitSigmas(NamedTuple):
    high: Sigmas
    low: Sigmas


@node(category="sampling/sigmas")
def split_sigmas(sigmas: Sigmas,
                 step: int = Input(10, ge=0, le=10000,
                                   help="steps before this one go to high, the rest to low")) -> SplitSigmas:
    """Split a schedule at a step: high (the base's steps) and low (the refiner's); they share one level."""
    if sigmas.steps < 2:
        raise UserInputError(f"a schedule of {sigmas.steps} step(s) cannot be split", input="sigmas")
    if not 0 < step < sigmas.steps:
        raise UserInputError(f"step {step} must be between 1 and {sigmas.steps - 1} so that both halves "
                             "have a step", input="step")
    high, low = sig.split(sigmas.values, step)
    return SplitSigmas(Sigmas(high), Sigmas(low))


@node(category="sampling/sigmas")
def flip_sigmas(sigmas: Sigmas) -> Sigmas:
    """Reverse a schedule (rising noise, to unsample an image back to noise); a leading 0 becomes 1e-4."""
    return Sigmas(sig.flip(sigmas.values))
