"""Custom sampling: SamplerCustom, KSamplerSelect and the sigma nodes → ``sample_advanced``
with linked ``sigmas``, a ``scheduler`` node, ``sigmas`` / ``split_sigmas`` / ``flip_sigmas``.

ComfyUI's sigma schedulers that take no model (Karras, exponential) get the model and the
solver of the sampler they feed after mapping (``link_sigma_models``): Loom spaces its levels
between that model's own highest and lowest noise level.
"""
from __future__ import annotations

from typing import Any

from .context import Mapper
from .map_guiders import merge, merged, parts
from .map_sampling import STEPS_MAX, _clamped, _seed, note_numerics
from .model import CONTROL, CNode, Missing, as_float, as_int
from .samplers import SAMPLERS, SCHEDULERS
from .table import Spec, define, direct, is_value

FAMILY = "sampling"
SD_SIGMA_MAX, SD_SIGMA_MIN, RHO = 14.614642, 0.0291675, 7.0   # ComfyUI's defaults: SD 1.x/SDXL's range
MODEL_LEVELS = ("Loom spaces the levels between the model's own highest and lowest noise level "
                f"(SD 1.x/SDXL: {SD_SIGMA_MAX:g} and {SD_SIGMA_MIN:g}, ComfyUI's defaults)")
_S = ("SIGMAS",)


def sampler_custom(ctx: Mapper, node: CNode) -> None:
    """SamplerCustom → sample_advanced on the linked sigmas, its KSamplerSelect as the
    scheduler; a schedule ending above 0 returns its leftover noise, as ComfyUI's output does.
    On a flow model (SD3, Flux) with KSamplerSelect and BasicScheduler it becomes one sample."""
    merged_parts = parts(ctx, node)
    if merged_parts is not None:
        merge(ctx, node, merged_parts)
        return
    add_noise = ctx.value(node, "add_noise", True)
    inputs: dict[str, Any] = {
        "denoiser": ctx.value(node, "model"), "positive": ctx.value(node, "positive"),
        "negative": ctx.value(node, "negative"), "latent": ctx.value(node, "latent_image"),
        "scheduler": ctx.value(node, "sampler"), "sigmas": ctx.value(node, "sigmas"),
        "cfg": _clamped(ctx, node, "cfg", as_float(ctx.value(node, "cfg", 8.0)), 0.0, 100.0),
        "seed": _seed(ctx, node, "noise_seed"),
        "add_noise": add_noise == "enable" if isinstance(add_noise, str) else add_noise,
        "return_with_leftover_noise": True,
    }
    control = ctx.control(node, "noise_seed")
    nid = ctx.add(node, "sample_advanced", inputs,
                  ui={"seed_control": {"seed": control}} if control else None)
    ctx.output(node, 0, ctx.link(nid, "latent"))
    ctx.output(node, 1, Missing("Loom's sample_advanced has no denoised_output (the last step's "
                                "clean estimate)"))
    ctx.mapped(node, [nid], "approximate", "the same schedule and solver, diffusers numerics; "
                                           "Loom runs custom sigmas with euler or unipc only",
               numerics="close")
    note_numerics(ctx)


def ksampler_select(ctx: Mapper, node: CNode) -> None:
    """KSamplerSelect → scheduler (the solver; the levels come from the linked sigmas)."""
    name = ctx.value(node, "sampler_name", "euler")
    inputs: dict[str, Any] = {"name": name, "sigmas": "default", "spacing": "default"}
    status = "exact"
    if isinstance(name, str):
        loom, why = SAMPLERS.get(name, ("euler", f"unknown sampler {name!r}; Euler"))
        inputs["name"] = loom
        if why or loom != name:
            ctx.changed(node, "sampler_name", name, loom, why or "Loom's name for this solver")
        status = "approximate" if why else "exact"
    nid = ctx.add(node, "scheduler", inputs)
    ctx.output(node, 0, ctx.link(nid, "scheduler"))
    ctx.mapped(node, [nid], status)


def _steps(ctx: Mapper, node: CNode) -> Any:
    return _clamped(ctx, node, "steps", as_int(ctx.value(node, "steps", 20)), 1, STEPS_MAX)


def model_free_schedule(schedule: str) -> Any:
    """KarrasScheduler / ExponentialScheduler → sigmas (schedule ``schedule``) whose model and
    scheduler come from the sampler it feeds."""

    def handle(ctx: Mapper, node: CNode) -> None:
        for name, default in (("sigma_max", SD_SIGMA_MAX), ("sigma_min", SD_SIGMA_MIN), ("rho", RHO)):
            v = as_float(ctx.value(node, name, default))
            if schedule == "exponential" and name == "rho":
                continue
            if not is_value(v) or not isinstance(v, float) or abs(v - default) > 1e-6 * max(1.0, default):
                ctx.changed(node, name, v, "the model's" if name != "rho" else RHO,
                            MODEL_LEVELS if name != "rho" else "Loom's Karras schedule uses rho 7")
        nid = ctx.add(node, "sigmas", {"steps": _steps(ctx, node), "schedule": schedule})
        ctx.output(node, 0, ctx.link(nid, "sigmas"))
        ctx.mapped(node, [nid], "approximate", MODEL_LEVELS + "; its model and scheduler are "
                                               "those of the sampler it feeds")

    return handle


def basic_scheduler(ctx: Mapper, node: CNode) -> None:
    """BasicScheduler → sigmas with a scheduler node for the spacing; denoise d < 1 takes the
    last ``steps`` steps of a ``int(steps / d)``-step schedule, as ComfyUI does (split_sigmas)."""
    name = ctx.value(node, "scheduler", "normal")
    steps = _steps(ctx, node)
    denoise = _clamped(ctx, node, "denoise", as_float(ctx.value(node, "denoise", 1.0)), 0.0, 1.0)
    schedule, spacing, why = "scheduler", "default", "the model's own schedule"
    if isinstance(name, str):
        sig, spacing, why = SCHEDULERS.get(name, ("default", "default", f"unknown scheduler {name!r}"))
        schedule = sig if sig in ("karras", "exponential") else "scheduler"
    ctx.changed(node, "scheduler", name, f"schedule={schedule}, spacing={spacing}",
                why or "the same schedule in Loom's terms")
    sid = ctx.add(node, "scheduler", {"name": "euler", "sigmas": "default", "spacing": spacing},
                  suffix="scheduler")
    total = steps
    cut = isinstance(denoise, float) and isinstance(steps, int) and 0.0 < denoise < 1.0
    if cut:
        total = min(int(steps / denoise), STEPS_MAX)
    nid = ctx.add(node, "sigmas", {"denoiser": ctx.value(node, "model"), "scheduler": ctx.link(sid, "scheduler"),
                                   "steps": total, "schedule": schedule})
    ids = [nid, sid]
    out = ctx.link(nid, "sigmas")
    if cut:
        split = ctx.add(node, "split_sigmas", {"sigmas": out, "step": total - steps}, suffix="denoise")
        out = ctx.link(split, "low")
        ids.append(split)
    ctx.output(node, 0, out)
    ctx.mapped(node, ids, "approximate", "diffusers' levels for that spacing (close to ComfyUI's)")


def link_sigma_models(m: Mapper) -> None:
    """A ``sigmas`` node without a model or scheduler (from KarrasScheduler and the like) gets
    those of the sample_advanced it feeds, through split_sigmas / flip_sigmas."""
    for entry in list(m.nodes.values()):
        if entry["type"] != "sample_advanced":
            continue
        link = entry["inputs"].get("sigmas")
        for _ in range(64):
            src = m.nodes.get(str(link.get("node"))) if isinstance(link, dict) else None
            if src is None or src["type"] not in ("split_sigmas", "flip_sigmas"):
                break
            link = src["inputs"].get("sigmas")
        if src is None or src["type"] != "sigmas":
            continue
        for name in ("denoiser", "scheduler"):
            if name not in src["inputs"] and isinstance(entry["inputs"].get(name), dict):
                src["inputs"][name] = dict(entry["inputs"][name])
                m.note(m.origin[str(link["node"])], f"its {name} is linked from the sampler it feeds")


define(Spec("SamplerCustom", FAMILY, ("add_noise", "noise_seed", CONTROL, "cfg"),
            inputs=("model", "positive", "negative", "sampler", "sigmas", "latent_image"),
            outputs=("output", "denoised_output"), loom="sample_advanced (sigmas)", status="approximate",
            handler=sampler_custom, display="SamplerCustom",
            note="denoised_output has no counterpart; custom sigmas need the euler or unipc solver"))
define(Spec("KSamplerSelect", FAMILY, ("sampler_name",), outputs=("SAMPLER",), loom="scheduler",
            status="exact", handler=merged(ksampler_select, "solver"), display="KSamplerSelect",
            note="solver names as for KSampler; merged into the sample of a SamplerCustomAdvanced"))
define(Spec("BasicScheduler", FAMILY, ("scheduler", "steps", "denoise"), inputs=("model",), outputs=_S,
            loom="sigmas + scheduler (+ split_sigmas)", status="approximate",
            handler=merged(basic_scheduler, "schedule (steps, scheduler, denoise)"),
            display="BasicScheduler", note="scheduler names as for KSampler; denoise cuts the schedule"))
define(Spec("KarrasScheduler", FAMILY, ("steps", "sigma_max", "sigma_min", "rho"), outputs=_S,
            loom="sigmas (karras)", status="approximate", handler=model_free_schedule("karras"),
            display="KarrasScheduler", note=MODEL_LEVELS + "; rho 7"))
define(Spec("ExponentialScheduler", FAMILY, ("steps", "sigma_max", "sigma_min"), outputs=_S,
            loom="sigmas (exponential)", status="approximate", handler=model_free_schedule("exponential"),
            display="ExponentialScheduler", note=MODEL_LEVELS))
define(Spec("SplitSigmas", FAMILY, ("step",), inputs=("sigmas",), outputs=("high_sigmas", "low_sigmas"),
            loom="split_sigmas", status="exact", display="SplitSigmas",
            handler=direct("split_sigmas", {"sigmas": "sigmas", "step": "step"}, ("high", "low"))))
define(Spec("FlipSigmas", FAMILY, inputs=("sigmas",), outputs=_S, loom="flip_sigmas", status="exact",
            display="FlipSigmas", handler=direct("flip_sigmas", {"sigmas": "sigmas"}, ("sigmas",))))
