"""Transformer (DiT) models: SD3/3.5 and Flux loaders, their prompt encoders, Flux guidance and
the flow models' sigma shift.

ComfyUI loads these with generic nodes (UNETLoader, DualCLIPLoader, VAELoader) and tells the
family from the weights; Loom has a loader per family. Which one a node becomes is read from
its ``type`` widget, the file names and, where those say nothing, the rest of the workflow
(``family_hint``). Whether a sampler's model is a flow model (``is_flow``) decides the
scheduler names (euler → flow_euler).
"""
from __future__ import annotations

import re
from typing import Any

from .context import Mapper
from .model import CNode, Link, Ref, as_float, as_int
from .table import NOT_YET, Spec, define, is_value, ranged

FAMILY = "models"
SHIFT = ranged(0.01, 100.0, "shift")
LOG_SHIFT = ranged(0.0, 10.0, "log-shift")
WEIGHT_DTYPES = {"default": "default", "fp8_e4m3fn": "fp8_e4m3fn", "fp8_e5m2": "fp8_e5m2",
                 "fp8_e4m3fn_fast": "fp8_e4m3fn"}
FLUX_CUES = ("FluxGuidance", "ModelSamplingFlux", "CLIPTextEncodeFlux")
SD3_CUES = ("TripleCLIPLoader", "ModelSamplingSD3", "CLIPTextEncodeSD3")
_FLUX_NAME = re.compile(r"flux|(^|/)ae\.(safetensors|sft)$", re.I)
_SD3_NAME = re.compile(r"sd3|sd_3|stable[-_ ]?diffusion[-_ ]?3", re.I)
_T5_NAME = re.compile(r"t5|umt5", re.I)
FLUX_SHIFT_NOTE = ("Loom computes the shift from each latent's token count (as FluxPipeline); "
                   "ComfyUI once from the width and height widgets: the same when they match the "
                   "latent's size")


def name_family(name: Any) -> str | None:
    """'flux' or 'sd3' when a model file name says so (``ae.safetensors`` is Flux's VAE)."""
    if not isinstance(name, str):
        return None
    if _FLUX_NAME.search(name):
        return "flux"
    if _SD3_NAME.search(name):
        return "sd3"
    return None


def family_hint(ctx: Mapper) -> str | None:
    """The transformer family the workflow's ComfyUI nodes point to: 'flux', 'sd3' or None."""
    found: str | None = None
    for node in ctx.parsed.nodes.values():
        kind = node.values.get("type")
        if node.type in FLUX_CUES or (node.type == "DualCLIPLoader" and kind == "flux"):
            found = "flux"
            break
        if node.type in SD3_CUES or (node.type == "DualCLIPLoader" and kind == "sd3"):
            found = found or "sd3"
        elif node.type in ("UNETLoader", "CheckpointLoaderSimple"):
            fam = name_family(node.values.get("unet_name", node.values.get("ckpt_name")))
            if fam == "flux":
                found = "flux"
                break
            found = found or fam
    return found


def is_flow(ctx: Mapper, model: Any) -> bool | None:
    """Whether ``model`` (a ComfyUI input value) is a flow-matching model, from the Loom nodes it
    leads to (through LoRAs and shift nodes); None when nothing says."""
    target = _target(ctx, model)
    for _ in range(64):
        if not isinstance(target, Link):
            return None
        entry = ctx.nodes.get(target.node)
        if entry is None:
            return None
        kind, inputs = entry["type"], entry["inputs"]
        if kind == "model_sampling_flow":
            return True
        if kind == "load_diffusion_transformer":
            return "pixart" not in str(inputs.get("model", "")).lower()
        if kind in ("load_checkpoint", "load_diffusers_model"):
            name = inputs.get("checkpoint", inputs.get("model"))
            return True if name_family(name) or "shapes-dit" in str(name) else None
        if kind != "load_lora":
            return None
        target = _target(ctx, inputs.get("denoiser"))
    return None


def _target(ctx: Mapper, value: Any) -> Any:
    """A ComfyUI reference, or a Loom link in either form, as a ``Link`` (else as it is)."""
    if isinstance(value, Ref):
        return ctx.follow(value)
    if isinstance(value, dict) and set(value) == {"node", "output"}:
        return Link(str(value["node"]), str(value["output"]))
    return value


def _file(ctx: Mapper, node: CNode, name_input: str) -> Any:
    """A file name input after ``--models`` substitution (single files only)."""
    name = ctx.value(node, name_input)
    if isinstance(name, str):
        name, _ = ctx.substitute(node, name_input, name, folders=False)
    return name


def unet_loader(ctx: Mapper, node: CNode) -> None:
    """UNETLoader → load_diffusion_transformer (SD3/3.5, Flux, PixArt-Σ files)."""
    inputs: dict[str, Any] = {"model": _file(ctx, node, "unet_name")}
    dtype = ctx.value(node, "weight_dtype", "default")
    if is_value(dtype) and dtype is not ctx.ABSENT:
        new = WEIGHT_DTYPES.get(str(dtype), "default")
        if new != dtype:
            ctx.changed(node, "weight_dtype", dtype, new, "Loom keeps fp8 weights and casts each layer "
                                                          "up (no fast fp8 matmuls)" if "fp8" in str(dtype)
                        else "Loom's storage options are default and fp8")
        inputs["weight_dtype"] = new
    nid = ctx.add(node, "load_diffusion_transformer", inputs)
    ctx.output(node, 0, ctx.link(nid, "denoiser"))
    ctx.mapped(node, [nid], "exact")


def _sorted_encoders(names: list[Any]) -> dict[str, Any]:
    """Text-encoder files by kind (clip_l, clip_g, t5), read from their names; unknown names keep
    their place in ComfyUI's order for the kinds left."""
    out: dict[str, Any] = {}
    rest: list[Any] = []
    for name in names:
        low = name.lower() if isinstance(name, str) else ""
        kind = ("t5" if _T5_NAME.search(low) else "clip_g" if "clip_g" in low or "bigg" in low
                else "clip_l" if "clip_l" in low else None)
        if kind and kind not in out:
            out[kind] = name
        else:
            rest.append(name)
    return {"_rest": rest, **out}


def _encoders(ctx: Mapper, node: CNode, kinds: tuple[str, ...], inputs: tuple[str, ...],
              loom_type: str) -> None:
    names = [_file(ctx, node, i) for i in inputs]
    found = _sorted_encoders(names)
    rest = found.pop("_rest")
    order = {"DualCLIPLoader": ("t5", "clip_l")}.get(node.type, kinds)   # ComfyUI's Flux example order
    values: dict[str, Any] = {}
    for kind in order:
        if kind in found:
            values[kind] = found[kind]
        elif rest:
            values[kind] = rest.pop(0)
            if is_value(values[kind]):
                ctx.note(node, f"{values[kind]!r} taken as the {kind} file (its name does not say)")
    nid = ctx.add(node, loom_type, {k: values[k] for k in kinds if k in values})
    ctx.output(node, 0, ctx.link(nid, "text_encoder"))
    ctx.mapped(node, [nid], "exact", "files matched to encoders by name")


def dual_clip_loader(ctx: Mapper, node: CNode) -> None:
    """DualCLIPLoader type flux → load_flux_text_encoders; other types have no Loom loader."""
    kind = ctx.value(node, "type", "sdxl")
    if kind != "flux":
        why = {"sd3": "SD3 needs all three encoders in Loom (TripleCLIPLoader → load_sd3_text_encoders)",
               "sdxl": "SDXL's two CLIPs from separate files"}.get(str(kind), f"text encoders of type {kind!r}")
        ctx.placeholder(node, f"{NOT_YET}: {why}")
        return
    _encoders(ctx, node, ("clip_l", "t5"), ("clip_name1", "clip_name2"), "load_flux_text_encoders")


def triple_clip_loader(ctx: Mapper, node: CNode) -> None:
    """TripleCLIPLoader → load_sd3_text_encoders (CLIP-L, CLIP-G, T5-XXL)."""
    _encoders(ctx, node, ("clip_l", "clip_g", "t5"), ("clip_name1", "clip_name2", "clip_name3"),
              "load_sd3_text_encoders")


def pixart_clip_loader(ctx: Mapper, node: CNode) -> None:
    """CLIPLoader type pixart (a T5-XXL file) → load_pixart_text_encoder."""
    nid = ctx.add(node, "load_pixart_text_encoder", {"t5": _file(ctx, node, "clip_name")})
    ctx.output(node, 0, ctx.link(nid, "text_encoder"))
    ctx.mapped(node, [nid], "exact")


def dit_vae(ctx: Mapper, node: CNode, name: Any) -> bool:
    """VAELoader of a 16-channel VAE (by its name, or in a Flux/SD3 workflow) → load_dit_vae;
    False when the VAE is an SD one (``load_vae``)."""
    family = name_family(name) or family_hint(ctx)
    if family is None:
        return False
    nid = ctx.add(node, "load_dit_vae", {"vae": name, "latent_space": family})
    ctx.output(node, 0, ctx.link(nid, "vae"))
    ctx.mapped(node, [nid], "exact", f"a 16-channel {'Flux' if family == 'flux' else 'SD3'} VAE "
                                     "(from its name or the workflow's other nodes)")
    return True


def flux_guidance(ctx: Mapper, node: CNode) -> None:
    """FluxGuidance → flux_guidance."""
    inputs: dict[str, Any] = {"conditioning": ctx.value(node, "conditioning")}
    g = ctx.value(node, "guidance")
    if g is not ctx.ABSENT:
        inputs["guidance"] = ranged(0.0, 100.0, "guidance")(ctx, node, "guidance", as_float(g)) if is_value(g) else g
    nid = ctx.add(node, "flux_guidance", inputs)
    ctx.output(node, 0, ctx.link(nid, "conditioning"))
    ctx.mapped(node, [nid], "exact")


def _one_prompt(ctx: Mapper, node: CNode, main: str, others: tuple[str, ...]) -> Any:
    """The prompt Loom gives every encoder: ``main``'s, else the first non-empty other one."""
    text = ctx.value(node, main, "")
    given = {o: ctx.value(node, o, "") for o in others}
    if is_value(text) and not text:
        for o, v in given.items():
            if is_value(v) and v:
                ctx.changed(node, main, text, v, f"{main} is empty: Loom gives every encoder the {o} prompt")
                text = v
                break
    for o, v in given.items():
        if is_value(v) and is_value(text) and v not in ("", text):
            ctx.changed(node, o, v, text, f"Loom gives every encoder one prompt (the {main} one)")
    return text


def clip_text_encode_flux(ctx: Mapper, node: CNode) -> None:
    """CLIPTextEncodeFlux → text_encode (one prompt) + flux_guidance."""
    text = _one_prompt(ctx, node, "t5xxl", ("clip_l",))
    nid = ctx.add(node, "text_encode", {"encoder": ctx.value(node, "clip"), "text": text})
    g = ctx.value(node, "guidance", 3.5)
    gid = ctx.add(node, "flux_guidance", {"conditioning": ctx.link(nid, "conditioning"),
                                          "guidance": as_float(g) if is_value(g) else g}, suffix="guidance")
    ctx.output(node, 0, ctx.link(gid, "conditioning"))
    ctx.mapped(node, [nid, gid], "approximate", "one prompt for CLIP-L and T5")


def clip_text_encode_sd3(ctx: Mapper, node: CNode) -> None:
    """CLIPTextEncodeSD3 → text_encode (one prompt for the three encoders)."""
    text = _one_prompt(ctx, node, "t5xxl", ("clip_l", "clip_g"))
    padding = ctx.value(node, "empty_padding", "none")
    empty = any(ctx.value(node, k, "") == "" for k in ("clip_l", "clip_g", "t5xxl"))
    if empty and padding not in ("empty_prompt", ctx.ABSENT) and is_value(padding):
        ctx.changed(node, "empty_padding", padding, "empty_prompt", "Loom encodes an empty prompt as "
                                                                    "diffusers does (the tokens of \"\")")
    nid = ctx.add(node, "text_encode", {"encoder": ctx.value(node, "clip"), "text": text})
    ctx.output(node, 0, ctx.link(nid, "conditioning"))
    ctx.mapped(node, [nid], "approximate", "one prompt for CLIP-L, CLIP-G and T5")


def model_sampling_fixed(ctx: Mapper, node: CNode) -> None:
    """ModelSamplingSD3 / ModelSamplingAuraFlow → model_sampling_flow, fixed shift."""
    shift = ctx.value(node, "shift", 3.0)
    nid = ctx.add(node, "model_sampling_flow", {"denoiser": ctx.value(node, "model"), "mode": "fixed",
                                                "shift": SHIFT(ctx, node, "shift", as_float(shift))
                                                if is_value(shift) else shift})
    ctx.output(node, 0, ctx.link(nid, "denoiser"))
    ctx.mapped(node, [nid], "exact", "σ' = shift·σ / (1 + (shift − 1)·σ), as ComfyUI")


def model_sampling_flux(ctx: Mapper, node: CNode) -> None:
    """ModelSamplingFlux → model_sampling_flow, dynamic shift (base_shift, max_shift)."""
    inputs: dict[str, Any] = {"denoiser": ctx.value(node, "model"), "mode": "dynamic"}
    for name, default in (("base_shift", 0.5), ("max_shift", 1.15)):
        v = ctx.value(node, name, default)
        inputs[name] = LOG_SHIFT(ctx, node, name, as_float(v)) if is_value(v) else v
    size = [as_int(ctx.value(node, k, 1024)) for k in ("width", "height")]
    nid = ctx.add(node, "model_sampling_flow", inputs)
    ctx.output(node, 0, ctx.link(nid, "denoiser"))
    ctx.note(node, f"width × height {size[0]} × {size[1]}: {FLUX_SHIFT_NOTE}")
    ctx.mapped(node, [nid], "approximate", "the shift follows the latent's size")


_M, _C = ("MODEL",), ("CONDITIONING",)
define(Spec("UNETLoader", FAMILY, ("unet_name", "weight_dtype"), outputs=_M,
            loom="load_diffusion_transformer", status="exact", handler=unet_loader, display="Load Diffusion Model",
            note="SD3/3.5, Flux and PixArt-Σ transformer files (UNet-only SD files are refused); "
                 "fp8_e4m3fn_fast is fp8_e4m3fn"))
define(Spec("DualCLIPLoader", FAMILY, ("clip_name1", "clip_name2", "type"),
            variants=(("clip_name1", "clip_name2", "type", "device"),), outputs=("CLIP",),
            loom="load_flux_text_encoders", status="exact", handler=dual_clip_loader, display="DualCLIPLoader",
            note="type flux (CLIP-L + T5, matched by file name); sd3 and sdxl pairs have no Loom loader yet"))
define(Spec("TripleCLIPLoader", FAMILY, ("clip_name1", "clip_name2", "clip_name3"), outputs=("CLIP",),
            loom="load_sd3_text_encoders", status="exact", handler=triple_clip_loader,
            display="TripleCLIPLoader", note="CLIP-L, CLIP-G and T5-XXL matched by file name"))
define(Spec("FluxGuidance", "conditioning", ("guidance",), inputs=("conditioning",), outputs=_C,
            loom="flux_guidance", status="exact", handler=flux_guidance, display="FluxGuidance"))
define(Spec("CLIPTextEncodeFlux", "conditioning", ("clip_l", "t5xxl", "guidance"), inputs=("clip",),
            outputs=_C, loom="text_encode + flux_guidance", status="approximate", handler=clip_text_encode_flux,
            display="CLIPTextEncodeFlux", note="one prompt (t5xxl's) for CLIP-L and T5"))
define(Spec("CLIPTextEncodeSD3", "conditioning", ("clip_l", "clip_g", "t5xxl", "empty_padding"),
            inputs=("clip",), outputs=_C, loom="text_encode", status="approximate", handler=clip_text_encode_sd3,
            display="CLIPTextEncodeSD3", note="one prompt (t5xxl's) for the three encoders; empty prompts "
                                              "are encoded as diffusers does"))
define(Spec("ModelSamplingSD3", FAMILY, ("shift",), inputs=("model",), outputs=_M, loom="model_sampling_flow (fixed)",
            status="exact", handler=model_sampling_fixed, display="ModelSamplingSD3",
            note="the same shift formula"))
define(Spec("ModelSamplingAuraFlow", FAMILY, ("shift",), inputs=("model",), outputs=_M,
            loom="model_sampling_flow (fixed)", status="approximate", handler=model_sampling_fixed,
            display="ModelSamplingAuraFlow",
            note="the same shift on SD3/Flux models; AuraFlow models themselves do not load in Loom"))
define(Spec("ModelSamplingFlux", FAMILY, ("max_shift", "base_shift", "width", "height"), inputs=("model",),
            outputs=_M, loom="model_sampling_flow (dynamic)", status="approximate", handler=model_sampling_flux,
            display="ModelSamplingFlux", note=FLUX_SHIFT_NOTE))
