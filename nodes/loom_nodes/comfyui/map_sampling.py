"""KSampler → ``sample``, KSamplerAdvanced → ``sample_advanced``, each with a ``scheduler`` node."""
from __future__ import annotations

from typing import Any

from .context import Mapper
from .model import CONTROL, CNode, as_float, as_int
from .map_transformers import family_hint, is_flow
from .samplers import choose, choose_flow
from .table import Spec, define, is_value

FAMILY = "sampling"
SEED_MAX = 2**53 - 1      # Loom's seeds stay exact in a browser
STEPS_MAX = 1000
CFG_MAX = 100.0
WINDOW_MAX = 10000
NUMERICS = ("Loom samples with diffusers' schedulers built from the model's config; ComfyUI "
            "with its own k-diffusion implementation. The same solver and sigma schedule give "
            "close images, not identical pixels (sigma tables, noise and rounding differ).")


def _seed(ctx: Mapper, node: CNode, name: str) -> Any:
    seed = as_int(ctx.value(node, name, 0))
    if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed <= SEED_MAX:
        new = seed % (SEED_MAX + 1)
        ctx.changed(node, name, seed, new, f"Loom seeds go up to {SEED_MAX}")
        seed = new
    return seed


def _clamped(ctx: Mapper, node: CNode, name: str, value: Any, lo: float, hi: float) -> Any:
    if is_value(value) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not lo <= value <= hi:
            new = type(value)(min(max(value, lo), hi))
            ctx.changed(node, name, value, new, f"Loom's range is {lo:g} to {hi:g}")
            return new
    return value


def _scheduler(ctx: Mapper, node: CNode, names: tuple[Any, Any] | None = None,
               model: Any = None) -> tuple[str, bool]:
    """The scheduler node of a sampler (``names``: its sampler_name and scheduler when they are
    not the node's own); a flow model (SD3, Flux) gets a flow solver. Returns its id and whether
    the method is the same."""
    sampler_name, scheduler = names or (ctx.value(node, "sampler_name", "euler"),
                                        ctx.value(node, "scheduler", "normal"))
    flow = is_flow(ctx, ctx.value(node, "model") if model is None else model)
    if flow is None and family_hint(ctx) is not None:
        flow = True
        ctx.note(node, "its model is taken for a flow model (SD3/Flux), as the workflow's other nodes say")
    if not isinstance(sampler_name, str) or not isinstance(scheduler, str):
        inputs: dict[str, Any] = {"name": sampler_name, "sigmas": "default", "spacing": "default"}
        if not isinstance(scheduler, str):
            inputs["sigmas"] = scheduler
        ctx.note(node, "sampler_name/scheduler come from a link: ComfyUI's names are not "
                       "translated; Loom's scheduler node may refuse them")
        return ctx.add(node, "scheduler", inputs, suffix="scheduler"), False
    choice = choose_flow(sampler_name, scheduler) if flow else choose(sampler_name, scheduler)
    for comfy_input, old, new, why in choice.changes:
        ctx.changed(node, comfy_input, old, new, why)
    sid = ctx.add(node, "scheduler", {"name": choice.name, "sigmas": choice.sigmas,
                                      "spacing": choice.spacing}, suffix="scheduler")
    return sid, choice.exact_method


def _sample(ctx: Mapper, node: CNode, loom_type: str, seed_input: str, extra: dict[str, Any],
            message: str = "") -> str:
    """The Loom sampler for ``node`` plus its scheduler node; ``extra`` holds the inputs that
    differ between ``sample`` and ``sample_advanced``. Returns the sampler's id."""
    inputs: dict[str, Any] = {
        "denoiser": ctx.value(node, "model"), "positive": ctx.value(node, "positive"),
        "negative": ctx.value(node, "negative"), "latent": ctx.value(node, "latent_image"),
        "cfg": _clamped(ctx, node, "cfg", as_float(ctx.value(node, "cfg", 8.0)), 0.0, CFG_MAX),
        "seed": _seed(ctx, node, seed_input), **extra,
    }
    inputs = {k: v for k, v in inputs.items() if v is not ctx.ABSENT}
    control = ctx.control(node, seed_input)
    ui = {"seed_control": {"seed": control}} if control else None
    nid = ctx.add(node, loom_type, inputs, ui=ui)
    sid, exact = _scheduler(ctx, node)
    inputs["scheduler"] = ctx.link(sid, "scheduler")
    ctx.output(node, 0, ctx.link(nid, "latent"))
    text = "the same solver and schedule, diffusers numerics" if exact else \
        "an approximation (see the changes below)"
    ctx.mapped(node, [nid, sid], "approximate", text + (f"; {message}" if message else ""),
               numerics="close" if exact else "approximate")
    note_numerics(ctx)
    return nid


def note_numerics(ctx: Mapper) -> None:
    """Say once per conversion how Loom's sampling numerics relate to ComfyUI's."""
    if not ctx.numerics_noted:
        ctx.numerics_noted = True
        ctx.note(None, NUMERICS)


def _steps(ctx: Mapper, node: CNode, name: str, default: int, lo: int, hi: int) -> Any:
    return _clamped(ctx, node, name, as_int(ctx.value(node, name, default)), lo, hi)


def ksampler(ctx: Mapper, node: CNode) -> None:
    """KSampler: seed, steps, cfg, sampler, scheduler, denoise."""
    denoise = _clamped(ctx, node, "denoise", as_float(ctx.value(node, "denoise", 1.0)), 0.0, 1.0)
    _sample(ctx, node, "sample", "seed", {"steps": _steps(ctx, node, "steps", 20, 1, STEPS_MAX),
                                          "denoise": denoise})


def enabled(ctx: Mapper, node: CNode, name: str, default: str) -> Any:
    """An "enable"/"disable" widget (or a boolean) as a bool; a link stays a link."""
    v = ctx.value(node, name, default)
    if isinstance(v, str):
        return v == "enable"
    return v


def ksampler_advanced(ctx: Mapper, node: CNode) -> None:
    """KSamplerAdvanced → sample_advanced: the same step window (start_at_step ≤ i <
    end_at_step of a ``steps``-step schedule), add_noise and return_with_leftover_noise, so a
    base + refiner pair hands over its noisy latents as in ComfyUI."""
    extra = {"steps": _steps(ctx, node, "steps", 20, 1, STEPS_MAX),
             "start_step": _steps(ctx, node, "start_at_step", 0, 0, WINDOW_MAX),
             "end_step": _steps(ctx, node, "end_at_step", WINDOW_MAX, 0, WINDOW_MAX),
             "add_noise": enabled(ctx, node, "add_noise", "enable"),
             "return_with_leftover_noise": enabled(ctx, node, "return_with_leftover_noise", "disable")}
    _sample(ctx, node, "sample_advanced", "noise_seed", extra, "the step window, added noise and "
            "leftover noise as in ComfyUI")


define(Spec("KSampler", FAMILY, ("seed", CONTROL, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
            inputs=("model", "positive", "negative", "latent_image"), outputs=("LATENT",),
            loom="sample + scheduler", status="approximate", handler=ksampler, display="KSampler",
            note="sampler/scheduler names mapped to Loom's scheduler node; diffusers numerics"))
define(Spec("KSamplerAdvanced", FAMILY,
            ("add_noise", "noise_seed", CONTROL, "steps", "cfg", "sampler_name", "scheduler",
             "start_at_step", "end_at_step", "return_with_leftover_noise"),
            inputs=("model", "positive", "negative", "latent_image"), outputs=("LATENT",),
            loom="sample_advanced + scheduler", status="approximate", handler=ksampler_advanced,
            display="KSampler (Advanced)",
            note="the step window, add_noise and leftover noise carry over one for one (exact "
                 "handoffs); names and numerics as KSampler"))
