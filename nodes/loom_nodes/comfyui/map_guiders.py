"""SamplerCustomAdvanced with its guider, noise, sampler and sigmas nodes → one ``sample``.

ComfyUI's newer sampling splits a KSampler into parts: a guider (BasicGuider: model and one
prompt, no CFG — what Flux dev workflows use; CFGGuider: two prompts and cfg), a noise source
(RandomNoise, DisableNoise), a solver (KSamplerSelect) and a sigma schedule (BasicScheduler).
When all four are those core nodes, together they say what a KSampler says, so they become
Loom's ``sample`` (``sample_advanced`` without added noise) with its ``scheduler`` node — which
also works on flow models (SD3, Flux), whose schedule Loom builds from the model itself. Parts
used that way dissolve into the sampler; other combinations stay placeholders.
"""
from __future__ import annotations

from typing import Any

from .context import Mapper
from .map_sampling import CFG_MAX, STEPS_MAX, _clamped, _scheduler, _seed, note_numerics
from .map_transformers import family_hint, name_family
from .model import ACTIVE, BYPASSED, CONTROL, MUTED, CNode, Ref, as_float, as_int
from .table import NOT_YET, Handler, Spec, define

FAMILY = "sampling"
GUIDERS = ("BasicGuider", "CFGGuider")
NOISES = ("RandomNoise", "DisableNoise")
PARTS = {"guider": GUIDERS, "noise": NOISES, "sampler": ("KSamplerSelect",), "sigmas": ("BasicScheduler",)}
SCA = "SamplerCustomAdvanced"
MERGING = (SCA, "SamplerCustom")
WHEN = ("Loom maps SamplerCustomAdvanced when its guider is BasicGuider or CFGGuider, its noise "
        "RandomNoise or DisableNoise, its sampler KSamplerSelect and its sigmas BasicScheduler")


def _origin(ctx: Mapper, ref: Any) -> CNode | None:
    """The node an input comes from, through reroutes."""
    for _ in range(256):
        src = ctx.parsed.nodes.get(ref.node) if isinstance(ref, Ref) else None
        if src is None or src.type != "Reroute":
            return src
        ref = next(iter(src.links.values()), None)
    return None


def flow_model(ctx: Mapper, ref: Any) -> bool:
    """Whether a ComfyUI model input leads to a flow model (SD3, Flux), read from the ComfyUI
    graph (through reroutes, LoRAs and shift nodes), else from the workflow's other nodes."""
    for _ in range(256):
        src = _origin(ctx, ref)
        if src is None:
            break
        if src.type in ("ModelSamplingSD3", "ModelSamplingFlux", "ModelSamplingAuraFlow"):
            return True
        if src.type == "UNETLoader":
            return "pixart" not in str(src.values.get("unet_name", "")).lower()
        if src.type == "CheckpointLoaderSimple" and name_family(src.values.get("ckpt_name")):
            return True
        if src.type not in ("LoraLoader", "LoraLoaderModelOnly") and src.mode != BYPASSED:
            break
        ref = src.links.get("model")
    return family_hint(ctx) is not None


def parts(ctx: Mapper, node: CNode) -> dict[str, CNode] | None:
    """The part nodes of a SamplerCustomAdvanced that Loom can merge (all four), or of a
    SamplerCustom on a flow model (solver and sigmas: Loom's custom sigmas do not take flow
    schedules); else None."""
    names = PARTS if node.type == SCA else ("sampler", "sigmas")
    if node.type == "SamplerCustom" and not flow_model(ctx, node.links.get("model")):
        return None
    found: dict[str, CNode] = {}
    for name in names:
        src = _origin(ctx, node.links.get(name))
        if src is None or src.type not in PARTS[name] or src.mode != ACTIVE:
            return None
        found[name] = src
    return found


def _consumers(ctx: Mapper, node: CNode) -> list[CNode]:
    return [n for n in ctx.parsed.nodes.values() if n.type != "Reroute" and n.mode != MUTED
            and any(_origin(ctx, ref) is node for ref in n.links.values())]


def absorbed(ctx: Mapper, node: CNode) -> list[CNode]:
    """The SamplerCustomAdvanced nodes that merge ``node`` (empty unless every user does)."""
    users = _consumers(ctx, node)
    if users and all(u.type in MERGING and u.mode == ACTIVE and parts(ctx, u) for u in users):
        return users
    return []


def merged(fallback: Handler | None, what: str) -> Handler:
    """A part's handler: dissolved into the samplers that merge it, else ``fallback`` (or a placeholder)."""

    def handle(ctx: Mapper, node: CNode) -> None:
        users = absorbed(ctx, node)
        if users:
            ids = ", ".join(u.id for u in users)
            ctx.dissolved(node, f"its {what} is written into sampler {ids} ({users[0].type} → sample)")
        elif fallback is not None:
            fallback(ctx, node)
        else:
            ctx.placeholder(node, f"{NOT_YET}: a {what} outside SamplerCustomAdvanced ({WHEN})")

    return handle


def sampler_custom_advanced(ctx: Mapper, node: CNode) -> None:
    """SamplerCustomAdvanced → sample (RandomNoise) or sample_advanced (DisableNoise) + scheduler."""
    p = parts(ctx, node)
    if p is None:
        ctx.placeholder(node, f"{NOT_YET}: these custom-sampling parts ({WHEN})")
        return
    merge(ctx, node, p)


def merge(ctx: Mapper, node: CNode, p: dict[str, CNode]) -> None:
    """One sample (+ scheduler) for a SamplerCustomAdvanced or SamplerCustom and its ``parts``."""
    guider, noise, select, sched = p.get("guider", node), p.get("noise", node), p["sampler"], p["sigmas"]
    model = ctx.value(guider, "model")
    if guider.type == "BasicGuider":
        positive = negative = ctx.value(guider, "conditioning")
        cfg: Any = 1.0
        ctx.note(node, "BasicGuider has one prompt and no CFG: cfg 1 (the negative, the same prompt, is "
                       "not run)")
    else:
        positive, negative = ctx.value(guider, "positive"), ctx.value(guider, "negative")
        cfg = _clamped(ctx, guider, "cfg", as_float(ctx.value(guider, "cfg", 8.0)), 0.0, CFG_MAX)
    if sched.links.get("model") != guider.links.get("model"):
        ctx.note(node, f"the sigmas come from {sched.label}'s model input; Loom builds them from the "
                       "guider's model")
    steps = _clamped(ctx, sched, "steps", as_int(ctx.value(sched, "steps", 20)), 1, STEPS_MAX)
    denoise = _clamped(ctx, sched, "denoise", as_float(ctx.value(sched, "denoise", 1.0)), 0.0, 1.0)
    inputs: dict[str, Any] = {"denoiser": model, "positive": positive, "negative": negative,
                              "latent": ctx.value(node, "latent_image"), "cfg": cfg, "steps": steps}
    add_noise = ctx.value(node, "add_noise", True) if noise is node else noise.type == "RandomNoise"
    if isinstance(add_noise, Ref):
        kind, control = "sample_advanced", ctx.control(noise, "noise_seed")
        inputs.update(seed=_seed(ctx, noise, "noise_seed"), add_noise=add_noise)
    elif add_noise in (True, "enable"):
        kind = "sample"
        inputs.update(seed=_seed(ctx, noise, "noise_seed"), denoise=denoise)
        control = ctx.control(noise, "noise_seed")
    else:
        kind, control = "sample_advanced", None
        inputs.update(seed=0, add_noise=False, start_step=0, end_step=10000)
        if isinstance(denoise, float) and isinstance(steps, int) and 0.0 < denoise < 1.0:
            total = min(int(steps / denoise), STEPS_MAX)
            inputs.update(steps=total, start_step=total - steps)
    nid = ctx.add(node, kind, inputs, ui={"seed_control": {"seed": control}} if control else None)
    sid, exact = _scheduler(ctx, node, (ctx.value(select, "sampler_name", "euler"),
                                        ctx.value(sched, "scheduler", "simple")), model)
    inputs["scheduler"] = ctx.link(sid, "scheduler")
    out = ctx.link(nid, "latent")
    ctx.output(node, 0, out)
    ctx.output(node, 1, out)
    names = ", ".join(f"{n.id} ({n.type})" for n in p.values())
    ctx.mapped(node, [nid, sid], "approximate",
               f"merged with {names}; denoised_output is the same final latent (the schedule ends "
               f"at 0); " + ("the same solver and schedule, diffusers numerics" if exact else
                             "an approximation (see the changes below)"),
               numerics="close" if exact else "approximate")
    note_numerics(ctx)


_N = ("NOISE",)
define(Spec(SCA, FAMILY, (), inputs=("noise", "guider", "sampler", "sigmas", "latent_image"),
            outputs=("output", "denoised_output"), loom="sample + scheduler", status="approximate",
            handler=sampler_custom_advanced, display="SamplerCustomAdvanced",
            note=f"{WHEN} (what Flux workflows use): they merge into one sample as a KSampler would; "
                 "denoised_output is the final latent"))
define(Spec("BasicGuider", FAMILY, (), inputs=("model", "conditioning"), outputs=("GUIDER",),
            loom="(sample: model, prompt, cfg 1)", status="dissolved", handler=merged(None, "guider"),
            display="BasicGuider", note="merged into the sample of its SamplerCustomAdvanced"))
define(Spec("CFGGuider", FAMILY, ("cfg",), inputs=("model", "positive", "negative"), outputs=("GUIDER",),
            loom="(sample: model, prompts, cfg)", status="dissolved", handler=merged(None, "guider"),
            display="CFGGuider", note="merged into the sample of its SamplerCustomAdvanced"))
define(Spec("RandomNoise", FAMILY, ("noise_seed", CONTROL), outputs=_N, loom="(sample: seed)",
            status="dissolved", handler=merged(None, "noise seed"), display="RandomNoise",
            note="its seed goes into the sample of its SamplerCustomAdvanced"))
define(Spec("DisableNoise", FAMILY, (), outputs=_N, loom="(sample_advanced: add_noise off)",
            status="dissolved", handler=merged(None, "noise source"), display="DisableNoise",
            note="its SamplerCustomAdvanced becomes sample_advanced without added noise"))
