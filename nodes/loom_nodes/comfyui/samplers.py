"""ComfyUI sampler and scheduler names ⇄ Loom's scheduler node (solver, sigmas, spacing).

ComfyUI samples with its own k-diffusion implementation; Loom with diffusers' schedulers,
built from the model's scheduler config. The same solver with the same sigma schedule gives
close images, never the same pixels: sigma tables, noise and rounding differ. Where Loom has
no such solver the nearest one is used and the report says so.
"""
from __future__ import annotations

from dataclasses import dataclass

CFG_PP = "CFG++ is not available in Loom; plain classifier-free guidance"
GPU_NOISE = "Loom draws the SDE noise on the CPU from the seed (the _gpu variant draws it on the GPU)"

# ComfyUI sampler_name → (Loom scheduler name, what differs beyond numerics; "" = the same method)
SAMPLERS: dict[str, tuple[str, str]] = {
    "euler": ("euler", ""),
    "euler_cfg_pp": ("euler", CFG_PP),
    "euler_ancestral": ("euler_ancestral", ""),
    "euler_ancestral_cfg_pp": ("euler_ancestral", CFG_PP),
    "heun": ("heun", ""),
    "heunpp2": ("heun", "Heun++ is not available; Heun's second-order method"),
    "dpm_2": ("dpm2", ""),
    "dpm_2_ancestral": ("dpm2_ancestral", ""),
    "lms": ("lms", ""),
    "dpm_fast": ("dpmpp_2m", "DPM-fast is not available; DPM++ 2M"),
    "dpm_adaptive": ("dpmpp_2m", "adaptive step sizes are not available; DPM++ 2M with the given steps"),
    "dpmpp_2s_ancestral": ("dpmpp_2s", "the ancestral (noise-adding) variant is not available; "
                                       "DPM++ 2S single-step"),
    "dpmpp_2s_ancestral_cfg_pp": ("dpmpp_2s", "the ancestral variant and CFG++ are not available; "
                                              "DPM++ 2S single-step"),
    "dpmpp_sde": ("dpmpp_sde", ""),
    "dpmpp_sde_gpu": ("dpmpp_sde", GPU_NOISE),
    "dpmpp_2m": ("dpmpp_2m", ""),
    "dpmpp_2m_cfg_pp": ("dpmpp_2m", CFG_PP),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", ""),
    "dpmpp_2m_sde_gpu": ("dpmpp_2m_sde", GPU_NOISE),
    "dpmpp_2m_sde_heun": ("dpmpp_2m_sde", "the Heun variant is not available; DPM++ 2M SDE (midpoint)"),
    "dpmpp_2m_sde_heun_gpu": ("dpmpp_2m_sde", "the Heun variant is not available; DPM++ 2M SDE (midpoint)"),
    "dpmpp_3m_sde": ("dpmpp_2m_sde", "third order is not available; second-order DPM++ 2M SDE"),
    "dpmpp_3m_sde_gpu": ("dpmpp_2m_sde", "third order is not available; second-order DPM++ 2M SDE"),
    "ddpm": ("ddpm", ""),
    "lcm": ("lcm", ""),
    "ipndm": ("lms", "iPNDM is not available; linear multistep (LMS)"),
    "ipndm_v": ("lms", "iPNDM-v is not available; linear multistep (LMS)"),
    "deis": ("deis", ""),
    "res_multistep": ("dpmpp_2m", "RES multistep is not available; DPM++ 2M"),
    "res_multistep_cfg_pp": ("dpmpp_2m", "RES multistep and CFG++ are not available; DPM++ 2M"),
    "res_multistep_ancestral": ("euler_ancestral", "RES multistep ancestral is not available; "
                                                   "Euler ancestral"),
    "res_multistep_ancestral_cfg_pp": ("euler_ancestral", "RES multistep ancestral and CFG++ are "
                                                          "not available; Euler ancestral"),
    "gradient_estimation": ("euler", "gradient estimation is not available; Euler"),
    "gradient_estimation_cfg_pp": ("euler", "gradient estimation and CFG++ are not available; Euler"),
    "er_sde": ("dpmpp_2m_sde", "ER-SDE is not available; DPM++ 2M SDE"),
    "seeds_2": ("dpmpp_sde", "SEEDS-2 is not available; DPM++ SDE"),
    "seeds_3": ("dpmpp_sde", "SEEDS-3 is not available; DPM++ SDE"),
    "sa_solver": ("dpmpp_2m_sde", "SA-Solver is not available; DPM++ 2M SDE"),
    "sa_solver_pece": ("dpmpp_2m_sde", "SA-Solver PECE is not available; DPM++ 2M SDE"),
    "ddim": ("ddim", ""),
    "uni_pc": ("unipc", "diffusers' UniPC runs the bh2 variant; ComfyUI's uni_pc is bh1"),
    "uni_pc_bh2": ("unipc", ""),
    "tcd": ("tcd", ""),
}

# ComfyUI scheduler → (Loom sigmas, Loom timestep spacing, what differs; "" = the same spacing)
SCHEDULERS: dict[str, tuple[str, str, str]] = {
    "normal": ("default", "linspace", ""),
    "karras": ("karras", "default", ""),
    "exponential": ("exponential", "default", ""),
    "sgm_uniform": ("default", "trailing", "SGM uniform is closest to trailing timestep spacing"),
    "simple": ("default", "trailing", ""),
    "ddim_uniform": ("default", "leading", ""),
    "beta": ("beta", "default", ""),
    "linear_quadratic": ("default", "linspace", "linear-quadratic spacing is not available; linear"),
    "kl_optimal": ("default", "linspace", "KL-optimal spacing is not available; linear"),
    "turbo": ("default", "trailing", "the turbo schedule is not available; trailing spacing"),
    "lcm": ("default", "default", "the LCM schedule comes from the model's own config"),
}

# Loom scheduler names whose diffusers class has no karras/exponential/beta sigmas, or no
# timestep spacing option (checked against the installed diffusers by a test)
NO_SIGMA_OPTIONS = frozenset({"euler_ancestral", "ddim", "ddpm", "pndm", "lcm", "tcd"})
NO_SPACING_OPTION = frozenset({"dpmpp_2s"})

# the way back (export): Loom scheduler name → ComfyUI sampler_name (+ a scheduler it implies)
TO_COMFY_SAMPLER: dict[str, tuple[str, str | None]] = {
    "euler": ("euler", None), "euler_ancestral": ("euler_ancestral", None), "heun": ("heun", None),
    "ddim": ("ddim", None), "ddpm": ("ddpm", None), "pndm": ("ipndm", None), "lms": ("lms", None),
    "dpm2": ("dpm_2", None), "dpm2_ancestral": ("dpm_2_ancestral", None),
    "dpmpp_2m": ("dpmpp_2m", None), "dpmpp_2m_karras": ("dpmpp_2m", "karras"),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", None), "dpmpp_sde": ("dpmpp_sde", None),
    "dpmpp_2s": ("dpmpp_2s_ancestral", None), "deis": ("deis", None), "unipc": ("uni_pc_bh2", None),
    "lcm": ("lcm", None), "tcd": ("tcd", None),
}
TO_COMFY_SIGMAS = {"karras": "karras", "exponential": "exponential", "beta": "beta"}
TO_COMFY_SPACING = {"linspace": "normal", "trailing": "simple", "leading": "ddim_uniform",
                    "default": "normal"}


# flow-matching models (SD3, Flux): Loom has two flow solvers, built from the model's own
# FlowMatch scheduler config (its shift); ComfyUI's scheduler → Loom's sigmas for them
FLOW_SAMPLERS = {"euler": "flow_euler", "euler_cfg_pp": "flow_euler", "heun": "flow_heun"}
FLOW_SIGMAS: dict[str, tuple[str, str]] = {
    "simple": ("default", ""), "normal": ("default", ""), "sgm_uniform": ("default", ""),
    "beta": ("beta", ""), "karras": ("karras", ""), "exponential": ("exponential", ""),
    "ddim_uniform": ("default", "the flow scheduler's own (uniform) spacing"),
    "linear_quadratic": ("default", "linear-quadratic spacing is not available; the flow scheduler's own"),
    "kl_optimal": ("default", "KL-optimal spacing is not available; the flow scheduler's own"),
}
FLOW_NO_SIGMA_OPTIONS = frozenset({"flow_heun"})   # FlowMatchHeunDiscreteScheduler has none


@dataclass(frozen=True)
class Choice:
    """Loom's scheduler node inputs for one ComfyUI sampler + scheduler, and what differs."""

    name: str
    sigmas: str
    spacing: str
    changes: tuple[tuple[str, str, str, str], ...]   # (comfy input, comfy value, loom value, why)
    exact_method: bool                                # same solver and sigma schedule


def choose(sampler_name: str, scheduler: str) -> Choice:
    """Map a ComfyUI ``sampler_name`` and ``scheduler`` onto Loom's scheduler node."""
    changes: list[tuple[str, str, str, str]] = []
    name, why = SAMPLERS.get(sampler_name, ("euler", f"unknown sampler {sampler_name!r}; Euler"))
    if why or name != sampler_name:
        changes.append(("sampler_name", sampler_name, name, why or "Loom's name for this solver"))
    exact = not why
    sigmas, spacing, why = SCHEDULERS.get(
        scheduler, ("default", "default", f"unknown scheduler {scheduler!r}; the model's own spacing"))
    if why:
        exact = False
    if sigmas != "default" and name in NO_SIGMA_OPTIONS:
        why = f"Loom's {name} solver has no {sigmas} sigma schedule; its default schedule"
        sigmas, exact = "default", False
    if spacing != "default" and name in NO_SPACING_OPTION:
        why = f"Loom's {name} solver has no timestep spacing option; the model's own"
        spacing, exact = "default", False
    shown = f"sigmas={sigmas}, spacing={spacing}"
    changes.append(("scheduler", scheduler, shown, why or "the same schedule in Loom's terms"))
    return Choice(name, sigmas, spacing, tuple(changes), exact)


def choose_flow(sampler_name: str, scheduler: str) -> Choice:
    """Map a ComfyUI ``sampler_name`` and ``scheduler`` used on a flow model (SD3, Flux) onto
    Loom's flow schedulers (flow_euler, flow_heun)."""
    changes: list[tuple[str, str, str, str]] = []
    name = FLOW_SAMPLERS.get(sampler_name, "flow_euler")
    exact = sampler_name in ("euler", "heun")
    why = "" if exact else (CFG_PP if sampler_name == "euler_cfg_pp" else
                            f"Loom samples flow models with flow_euler or flow_heun; {sampler_name!r} → Euler")
    changes.append(("sampler_name", sampler_name, name, why or "Loom's flow-matching solver of this method"))
    sigmas, why = FLOW_SIGMAS.get(scheduler, ("default", f"unknown scheduler {scheduler!r}; the flow "
                                                         "scheduler's own"))
    if sigmas != "default" and name in FLOW_NO_SIGMA_OPTIONS:
        sigmas, why = "default", f"Loom's {name} has no {sigmas} sigma schedule; its own"
    exact = exact and not why
    changes.append(("scheduler", scheduler, f"sigmas={sigmas}, spacing=default",
                    why or "linear in time, shifted by the model's shift (as ComfyUI)"))
    return Choice(name, sigmas, "default", tuple(changes), exact)


def to_comfy(name: str, sigmas: str, spacing: str) -> tuple[str, str, list[str]]:
    """Loom scheduler inputs → (ComfyUI sampler_name, scheduler, what differs)."""
    notes: list[str] = []
    if name in ("flow_euler", "flow_heun"):   # ComfyUI's euler/heun sample flow models as flows
        return name[5:], TO_COMFY_SIGMAS.get(sigmas, "simple"), notes
    sampler, implied = TO_COMFY_SAMPLER.get(name, ("euler", None))
    if name not in TO_COMFY_SAMPLER:
        notes.append(f"Loom scheduler {name!r} has no ComfyUI counterpart; euler")
    elif name in ("pndm", "dpmpp_2s"):
        notes.append(f"Loom scheduler {name!r} has no exact ComfyUI counterpart; {sampler}")
    if implied:
        return sampler, implied, notes
    if sigmas in TO_COMFY_SIGMAS:
        if spacing != "default":
            notes.append(f"ComfyUI cannot combine {sigmas} sigmas with {spacing} spacing; {sigmas}")
        return sampler, TO_COMFY_SIGMAS[sigmas], notes
    if spacing == "default":
        notes.append("Loom's default spacing (the model's config) written as ComfyUI's 'normal'")
    return sampler, TO_COMFY_SPACING.get(spacing, "normal"), notes
