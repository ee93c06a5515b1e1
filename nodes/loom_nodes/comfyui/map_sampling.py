"""KSampler and KSamplerAdvanced → Loom's ``sample`` plus a ``scheduler`` node."""
from __future__ import annotations

from typing import Any

from .context import Mapper
from .model import CONTROL, CNode, MaskOf, Ref, as_float, as_int
from .samplers import choose
from .table import Spec, define, is_value

FAMILY = "sampling"
SEED_MAX = 2**53 - 1      # Loom's seeds stay exact in a browser
STEPS_MAX = 1000
CFG_MAX = 100.0
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


def _scheduler(ctx: Mapper, node: CNode) -> tuple[str, bool]:
    """The scheduler node of a sampler; returns its id and whether the method is the same."""
    sampler_name = ctx.value(node, "sampler_name", "euler")
    scheduler = ctx.value(node, "scheduler", "normal")
    if not isinstance(sampler_name, str) or not isinstance(scheduler, str):
        inputs: dict[str, Any] = {"name": sampler_name, "sigmas": "default", "spacing": "default"}
        if not isinstance(scheduler, str):
            inputs["sigmas"] = scheduler
        ctx.note(node, "sampler_name/scheduler come from a link: ComfyUI's names are not "
                       "translated; Loom's scheduler node may refuse them")
        return ctx.add(node, "scheduler", inputs, suffix="scheduler"), False
    choice = choose(sampler_name, scheduler)
    for comfy_input, old, new, why in choice.changes:
        ctx.changed(node, comfy_input, old, new, why)
    sid = ctx.add(node, "scheduler", {"name": choice.name, "sigmas": choice.sigmas,
                                      "spacing": choice.spacing}, suffix="scheduler")
    return sid, choice.exact_method


def _sample(ctx: Mapper, node: CNode, seed_input: str, steps: Any, denoise: Any,
            extra_message: str = "") -> None:
    latent = ctx.value(node, "latent_image")
    inputs: dict[str, Any] = {
        "denoiser": ctx.value(node, "model"), "positive": ctx.value(node, "positive"),
        "negative": ctx.value(node, "negative"), "latent": latent,
        "steps": _clamped(ctx, node, "steps", as_int(steps), 1, STEPS_MAX),
        "cfg": _clamped(ctx, node, "cfg", as_float(ctx.value(node, "cfg", 8.0)), 0.0, CFG_MAX),
        "seed": _seed(ctx, node, seed_input),
        "denoise": denoise,
    }
    inputs = {k: v for k, v in inputs.items() if v is not ctx.ABSENT}
    if isinstance(latent, Ref):
        inputs["mask"] = MaskOf(latent)   # the inpainting mask the latent carries, if any
    control = ctx.control(node, seed_input)
    ui = {"seed_control": {"seed": control}} if control else None
    nid = ctx.add(node, "sample", inputs, ui=ui)
    sid, exact = _scheduler(ctx, node)
    inputs["scheduler"] = ctx.link(sid, "scheduler")
    ctx.output(node, 0, ctx.link(nid, "latent"),
               mask=MaskOf(latent) if isinstance(latent, Ref) else None)
    message = "the same solver and schedule, diffusers numerics" if exact else \
        "an approximation (see the changes below)"
    ctx.mapped(node, [nid, sid], "approximate",
               message + (f"; {extra_message}" if extra_message else ""),
               numerics="close" if exact else "approximate")
    if not ctx.numerics_noted:
        ctx.numerics_noted = True
        ctx.note(None, NUMERICS)


def ksampler(ctx: Mapper, node: CNode) -> None:
    """KSampler: seed, steps, cfg, sampler, scheduler, denoise."""
    denoise = ctx.value(node, "denoise", 1.0)
    denoise = _clamped(ctx, node, "denoise", as_float(denoise), 0.0, 1.0)
    _sample(ctx, node, "seed", ctx.value(node, "steps", 20), denoise)


def ksampler_advanced(ctx: Mapper, node: CNode) -> None:
    """KSamplerAdvanced: steps start_at_step…end_at_step of a schedule of ``steps`` steps.

    Loom's ``sample`` always denoises to the end: ``steps - start`` model calls with
    ``denoise = (steps - start) / steps`` starts at the same point of the same schedule. A
    pass that stops early (base of a base + refiner pair) runs to the end instead, and the
    next pass noises its clean output back to its start: the usual img2img refiner."""
    steps = as_int(ctx.value(node, "steps", 20))
    start = as_int(ctx.value(node, "start_at_step", 0))
    end = as_int(ctx.value(node, "end_at_step", 10000))
    add_noise = ctx.value(node, "add_noise", "enable")
    leftover = ctx.value(node, "return_with_leftover_noise", "disable")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (steps, start, end)):
        ctx.note(node, "steps, start_at_step or end_at_step come from a link: the step "
                       "window is not translated (Loom runs every step)")
        _sample(ctx, node, "noise_seed", steps, 1.0)
        return
    steps = max(1, steps)
    start = min(max(0, start), steps)
    messages = []
    if start >= min(end, steps):
        ctx.changed(node, "start_at_step", start, "denoise 0",
                    "nothing to sample: the latent passes through unchanged")
        _sample(ctx, node, "noise_seed", 1, 0.0)
        return
    if end < steps:
        why = ("Loom's sample runs to the last step; ComfyUI stops here and returns the "
               "remaining noise" if leftover == "enable" else
               "Loom's sample runs to the last step; ComfyUI stops here and jumps to sigma 0")
        ctx.changed(node, "end_at_step", end, steps, why)
    if start > 0:
        messages.append(f"starts at step {start} of {steps}: steps={steps - start}, "
                        f"denoise={(steps - start) / steps:.4g}")
    if add_noise == "disable":
        ctx.changed(node, "add_noise", "disable", "enable",
                    "Loom's sample always noises its input to the starting step")
    denoise = round((steps - start) / steps, 6)
    _sample(ctx, node, "noise_seed", steps - start, denoise, "; ".join(messages))


define(Spec("KSampler", FAMILY, ("seed", CONTROL, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
            inputs=("model", "positive", "negative", "latent_image"), outputs=("LATENT",),
            loom="sample + scheduler", status="approximate", handler=ksampler, display="KSampler",
            note="sampler/scheduler names mapped to Loom's scheduler node; diffusers numerics"))
define(Spec("KSamplerAdvanced", FAMILY,
            ("add_noise", "noise_seed", CONTROL, "steps", "cfg", "sampler_name", "scheduler",
             "start_at_step", "end_at_step", "return_with_leftover_noise"),
            inputs=("model", "positive", "negative", "latent_image"), outputs=("LATENT",),
            loom="sample + scheduler", status="approximate", handler=ksampler_advanced,
            display="KSampler (Advanced)",
            note="a start step becomes denoise; a pass that stops early runs to the end"))
