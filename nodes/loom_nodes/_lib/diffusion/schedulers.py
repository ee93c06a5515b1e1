"""Diffusers noise schedulers by name: which the installed diffusers supports, and building one.

A scheduler is always built from the model's own scheduler config (``from_config``) so its
training betas and prediction type are kept; the name picks the solver, the options the
sigma schedule and timestep spacing.
"""
from __future__ import annotations

import importlib.util
import inspect
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerKind:
    """One choice of the scheduler combo: a diffusers class and the options it needs."""

    cls_name: str
    module: str                       # diffusers/schedulers/scheduling_<module>.py
    options: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None  # an extra Python module the class needs (e.g. torchsde)
    flow: bool = False        # a flow-matching solver (SD3, Flux), not for noise-prediction models


KINDS: dict[str, SchedulerKind] = {
    "euler": SchedulerKind("EulerDiscreteScheduler", "euler_discrete"),
    "euler_ancestral": SchedulerKind("EulerAncestralDiscreteScheduler", "euler_ancestral_discrete"),
    "heun": SchedulerKind("HeunDiscreteScheduler", "heun_discrete"),
    "ddim": SchedulerKind("DDIMScheduler", "ddim"),
    "ddpm": SchedulerKind("DDPMScheduler", "ddpm"),
    "pndm": SchedulerKind("PNDMScheduler", "pndm", {"skip_prk_steps": True}),
    "lms": SchedulerKind("LMSDiscreteScheduler", "lms_discrete", needs="scipy"),
    "dpm2": SchedulerKind("KDPM2DiscreteScheduler", "k_dpm_2_discrete"),
    "dpm2_ancestral": SchedulerKind("KDPM2AncestralDiscreteScheduler", "k_dpm_2_ancestral_discrete"),
    "dpmpp_2m": SchedulerKind("DPMSolverMultistepScheduler", "dpmsolver_multistep",
                              {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": SchedulerKind("DPMSolverMultistepScheduler", "dpmsolver_multistep",
                                     {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                      "use_karras_sigmas": True}),
    "dpmpp_2m_sde": SchedulerKind("DPMSolverMultistepScheduler", "dpmsolver_multistep",
                                  {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpmpp_sde": SchedulerKind("DPMSolverSDEScheduler", "dpmsolver_sde", needs="torchsde"),
    "dpmpp_2s": SchedulerKind("DPMSolverSinglestepScheduler", "dpmsolver_singlestep",
                              {"algorithm_type": "dpmsolver++"}),
    "deis": SchedulerKind("DEISMultistepScheduler", "deis_multistep"),
    "unipc": SchedulerKind("UniPCMultistepScheduler", "unipc_multistep"),
    "lcm": SchedulerKind("LCMScheduler", "lcm"),
    "tcd": SchedulerKind("TCDScheduler", "tcd"),
    "flow_euler": SchedulerKind("FlowMatchEulerDiscreteScheduler", "flow_match_euler_discrete", flow=True),
    "flow_heun": SchedulerKind("FlowMatchHeunDiscreteScheduler", "flow_match_heun_discrete", flow=True),
}
FLOW_NAMES = tuple(n for n, k in KINDS.items() if k.flow)

SIGMA_SCHEDULES = ("default", "karras", "exponential", "beta")
SPACINGS = ("default", "leading", "trailing", "linspace")
_SIGMA_FLAGS = {"karras": "use_karras_sigmas", "exponential": "use_exponential_sigmas",
                "beta": "use_beta_sigmas"}


def _class(name: str) -> type | None:
    import diffusers

    kind = KINDS[name]
    if kind.needs and importlib.util.find_spec(kind.needs) is None:
        return None
    try:
        return getattr(diffusers, kind.cls_name)
    except (AttributeError, ImportError):
        return None


def _diffusers_dir() -> Path | None:
    spec = importlib.util.find_spec("diffusers")
    locs = list(spec.submodule_search_locations or []) if spec else []
    return Path(locs[0]) if locs else None


def available(flow: bool | None = False) -> list[str]:
    """Names the installed diffusers ships (and whose extra dependencies are installed).

    ``flow`` False: the noise-prediction (UNet-type) schedulers; True: the flow-matching ones;
    None: all. Decided from the package's files, without importing diffusers (slow to import),
    so building the node registry stays fast; the class itself is imported when used.
    """
    root = _diffusers_dir()
    if root is None:
        return []
    out = []
    for name, kind in KINDS.items():
        if flow is not None and kind.flow != flow:
            continue
        if kind.needs and importlib.util.find_spec(kind.needs) is None:
            continue
        if (root / "schedulers" / f"scheduling_{kind.module}.py").is_file():
            out.append(name)
    return out


def init_params(cls: type) -> set[str]:
    """Constructor parameter names of a scheduler class."""
    return set(inspect.signature(cls.__init__).parameters)


def is_flow_config(model_config: dict[str, Any]) -> bool:
    """Whether a model's scheduler config is a flow-matching one (SD3, Flux, shapes-dit)."""
    return str(model_config.get("_class_name", "")).startswith("FlowMatch")


def check_kind(name: str, model_config: dict[str, Any]) -> None:
    """Raise ValueError when scheduler ``name`` does not fit the model's kind (flow or noise prediction)."""
    if name not in KINDS:
        return
    flow_model, flow_kind = is_flow_config(model_config), KINDS[name].flow
    if flow_model and not flow_kind:
        raise ValueError(f"scheduler {name!r} is for noise-prediction (UNet-type) models, but this model "
                         f"is trained for flow matching; use {' or '.join(FLOW_NAMES)}")
    if flow_kind and not flow_model:
        raise ValueError(f"scheduler {name!r} is for flow-matching models (SD3, Flux), but this model "
                         f"predicts {model_config.get('prediction_type', 'epsilon')}; use euler, "
                         "dpmpp_2m or another noise-prediction scheduler")


def build(name: str, model_config: dict[str, Any], sigmas: str = "default",
          spacing: str = "default", seed: int | None = None, mu: float | None = None) -> Any:
    """A diffusers scheduler of kind ``name`` configured from ``model_config``.

    ``mu``: a flow model's dynamic shift for this image; a flow solver without dynamic shifting
    (flow_heun) gets the equal fixed shift ``e^mu`` instead.
    """
    cls = _class(name) if name in KINDS else None
    if cls is None:
        raise ValueError(f"scheduler {name!r} is not available here (available: {', '.join(available(None))})")
    check_kind(name, model_config)
    params = init_params(cls)
    config = {k: v for k, v in dict(model_config).items()
              if not k.startswith("_") and k not in ("use_karras_sigmas", "use_exponential_sigmas",
                                                     "use_beta_sigmas")}
    config.update(KINDS[name].options)
    if sigmas != "default":
        flag = _SIGMA_FLAGS[sigmas]
        if flag not in params:
            others = [n for n in available(KINDS[name].flow) if flag in init_params(_class(n))]
            raise ValueError(f"scheduler {name!r} has no {sigmas} sigma schedule (use one of: {', '.join(others)})")
        config.update({f: False for f in _SIGMA_FLAGS.values() if f in params})
        config[flag] = True
    if spacing != "default":
        if "timestep_spacing" not in params:
            raise ValueError(f"scheduler {name!r} has no timestep spacing option")
        config["timestep_spacing"] = spacing
    if "noise_sampler_seed" in params and seed is not None:
        config["noise_sampler_seed"] = int(seed)
    if config.get("use_dynamic_shifting") and "use_dynamic_shifting" not in params and mu is not None:
        config["shift"] = math.exp(mu)
    config = {k: v for k, v in config.items() if k in params or k.startswith("_")} if KINDS[name].flow else config
    return cls.from_config(config)


def step_takes_generator(scheduler: Any) -> bool:
    """Whether ``scheduler.step`` draws noise from a ``generator`` argument."""
    return "generator" in inspect.signature(scheduler.step).parameters


def taking_sigmas() -> list[str]:
    """Available noise-prediction names whose scheduler accepts a custom sigma schedule."""
    out = []
    for name in available():
        cls = _class(name)
        if cls is not None and "sigmas" in inspect.signature(cls.set_timesteps).parameters:
            out.append(name)
    return out
