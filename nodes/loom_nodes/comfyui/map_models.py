"""Model loaders, prompt encoders and primitive values."""
from __future__ import annotations

from typing import Any

from .context import Mapper
from .model import CONTROL, CNode, Literal, Ref, as_float, as_int
from .map_transformers import dit_vae, pixart_clip_loader
from .table import NOT_YET, Spec, define, direct, is_value, ranged

FAMILY = "models"
MODEL_OUTPUTS = ("denoiser", "text_encoder", "vae")


def _loader(name_input: str, loom_type: str, loom_input: str, outputs: tuple[str, ...],
            note: str = "") -> Any:
    """A handler for a loader: the file name (substituted by ``--models``) into ``loom_input``
    of ``loom_type``; a ``diffusers:`` substitution loads a diffusers folder instead and takes
    the matching outputs of ``load_diffusers_model``."""

    def handle(ctx: Mapper, node: CNode) -> None:
        name = ctx.value(node, name_input)
        diffusers = False
        if is_value(name) and name is not ctx.ABSENT:
            name, diffusers = ctx.substitute(node, name_input, name)
        kind, key = ("load_diffusers_model", "model") if diffusers else (loom_type, loom_input)
        nid = ctx.add(node, kind, {} if name is ctx.ABSENT else {key: name})
        for slot, out in enumerate(outputs):
            ctx.output(node, slot, ctx.link(nid, out))
        ctx.mapped(node, [nid], "exact", note)

    return handle


def checkpoint_with_config(ctx: Mapper, node: CNode) -> None:
    """CheckpointLoader: the config file is not needed (Loom reads the layout from the weights)."""
    config = ctx.value(node, "config_name")
    if is_value(config) and config is not ctx.ABSENT:
        ctx.changed(node, "config_name", config, None,
                    "Loom infers the architecture from the weights; the config is not used")
    _loader("ckpt_name", "load_checkpoint", "checkpoint", MODEL_OUTPUTS)(ctx, node)


def clip_loader(ctx: Mapper, node: CNode) -> None:
    """CLIPLoader: a CLIP for SD 1.x/2.x, or PixArt's T5; other families have no Loom encoder yet."""
    kind = ctx.value(node, "type", "stable_diffusion")
    if kind == "pixart":
        pixart_clip_loader(ctx, node)
        return
    if kind not in ("stable_diffusion", ctx.ABSENT):
        ctx.placeholder(node, f"{NOT_YET}: text encoders of type {kind!r}")
        return
    _loader("clip_name", "load_text_encoder", "name", ("text_encoder",))(ctx, node)


def vae_loader(ctx: Mapper, node: CNode) -> None:
    """VAELoader → load_dit_vae for SD3/Flux's 16-channel VAEs, else load_vae."""
    name, diffusers = ctx.value(node, "vae_name"), False
    if is_value(name) and name is not ctx.ABSENT:
        name, diffusers = ctx.substitute(node, "vae_name", name)
        if not diffusers and dit_vae(ctx, node, name):
            return
    kind, key = ("load_diffusers_model", "model") if diffusers else ("load_vae", "vae")
    nid = ctx.add(node, kind, {} if name is ctx.ABSENT else {key: name})
    ctx.output(node, 0, ctx.link(nid, "vae"))
    ctx.mapped(node, [nid], "exact")


def sdxl_encode(ctx: Mapper, node: CNode) -> None:
    """CLIPTextEncodeSDXL: one prompt for both encoders; the size conditioning is Loom's own."""
    text_g, text_l = ctx.value(node, "text_g", ""), ctx.value(node, "text_l", "")
    if is_value(text_g) and is_value(text_l) and text_l not in ("", text_g):
        ctx.changed(node, "text_l", text_l, text_g,
                    "Loom gives both SDXL encoders the same prompt (text_g)")
    size = {k: as_int(ctx.value(node, k, None)) for k in
            ("width", "height", "crop_w", "crop_h", "target_width", "target_height")}
    if (size["crop_w"] or size["crop_h"] or size["width"] != size["target_width"]
            or size["height"] != size["target_height"]):
        ctx.changed(node, "size conditioning", size, "the latent size",
                    "Loom conditions SDXL on the latent's size, uncropped")
    nid = ctx.add(node, "text_encode", {"encoder": ctx.value(node, "clip"), "text": text_g})
    ctx.output(node, 0, ctx.link(nid, "conditioning"))
    ctx.mapped(node, [nid], "approximate")


def sdxl_refiner_encode(ctx: Mapper, node: CNode) -> None:
    """CLIPTextEncodeSDXLRefiner: the prompt; the aesthetic score has no Loom input."""
    ascore = ctx.value(node, "ascore", None)
    if is_value(ascore) and ascore is not None:
        ctx.changed(node, "ascore", ascore, None, "Loom has no aesthetic-score conditioning")
    nid = ctx.add(node, "text_encode", {"encoder": ctx.value(node, "clip"),
                                        "text": ctx.value(node, "text", "")})
    ctx.output(node, 0, ctx.link(nid, "conditioning"))
    ctx.mapped(node, [nid], "approximate")


def clip_set_last_layer(ctx: Mapper, node: CNode) -> None:
    """CLIPSetLastLayer: −1 is the encoder as it is and dissolves into its link; −k becomes
    clip_set_last_layer with clip_skip k (A1111's count, which equals ComfyUI's on SD 1.x)."""
    layer = as_int(ctx.value(node, "stop_at_clip_layer", -1))
    if layer == -1 and "clip" in node.links:
        ctx.output(node, 0, node.links["clip"])
        ctx.dissolved(node, "stop_at_clip_layer -1 is the encoder as it is: dissolved into its link")
        return
    inputs: dict[str, Any] = {"encoder": ctx.value(node, "clip")}
    if isinstance(layer, int) and not isinstance(layer, bool):
        skip = min(max(1, -layer), 24)
        if skip != -layer:
            ctx.changed(node, "stop_at_clip_layer", layer, -skip, "Loom's clip_skip goes from 1 to 24")
        inputs["clip_skip"] = skip
    elif layer is not ctx.ABSENT:
        ctx.note(node, "stop_at_clip_layer comes from a link: Loom's clip_skip counts up (2 = −2)")
        inputs["clip_skip"] = layer
    nid = ctx.add(node, "clip_set_last_layer", inputs)
    ctx.output(node, 0, ctx.link(nid, "text_encoder"))
    ctx.mapped(node, [nid], "approximate", CLIP_SKIP_NOTE)


CLIP_SKIP_NOTE = ("the same layer on SD 1.x; SD 2.x and SDXL already use the penultimate layer, "
                  "which ComfyUI counts as −2 and Loom as clip_skip 1, so there Loom goes one "
                  "layer deeper")


LORA_NOTE = ("kohya, diffusers and PEFT LoRA and LyCORIS (LoHa, LoKr) files; the base model is "
             "patched while it runs, never changed")


def lora_loader(ctx: Mapper, node: CNode) -> None:
    """LoraLoader / LoraLoaderModelOnly → load_lora (its text encoder only when a CLIP is linked)."""
    name = ctx.value(node, "lora_name")
    if isinstance(name, str):
        name, _ = ctx.substitute(node, "lora_name", name, folders=False)
    inputs: dict[str, Any] = {"denoiser": ctx.value(node, "model")}
    if name is not ctx.ABSENT:
        inputs["lora"] = name
    strength = ranged(-4.0, 4.0, "LoRA strength")
    for comfy in ("strength_model", "strength_clip"):
        v = ctx.value(node, comfy)
        if v is not ctx.ABSENT:
            inputs[comfy] = strength(ctx, node, comfy, as_float(v)) if is_value(v) else v
    if "clip" in node.links:
        inputs["text_encoder"] = ctx.value(node, "clip")
    nid = ctx.add(node, "load_lora", inputs)
    ctx.output(node, 0, ctx.link(nid, "denoiser"))
    ctx.output(node, 1, ctx.link(nid, "text_encoder"))
    ctx.mapped(node, [nid], "exact")


def primitive(loom_type: str, loom_input: str, output: str, coerce: Any) -> Any:
    """PrimitiveInt/Float/String… (core nodes that run) → Loom's primitive value nodes."""

    def handle(ctx: Mapper, node: CNode) -> None:
        value = ctx.value(node, "value")
        inputs = {} if value is ctx.ABSENT else {loom_input: coerce(value) if is_value(value) else value}
        control = node.controls.get("value")
        if control not in (None, "fixed"):
            ctx.changed(node, CONTROL, control, "fixed",
                        f"Loom's {loom_type} keeps its value between runs")
        nid = ctx.add(node, loom_type, inputs)
        ctx.output(node, 0, ctx.link(nid, output))
        ctx.mapped(node, [nid], "exact")

    return handle


def boolean(ctx: Mapper, node: CNode) -> None:
    """PrimitiveBoolean: Loom has no boolean node; its value goes into each input it feeds."""
    value = ctx.value(node, "value", False)
    ctx.output(node, 0, value if isinstance(value, Ref) else Literal(value if is_value(value) else False))
    ctx.dissolved(node, f"its value {value!r} goes into the inputs it feeds")


_CKPT = ("MODEL", "CLIP", "VAE")
define(Spec("CheckpointLoaderSimple", FAMILY, ("ckpt_name",), outputs=_CKPT, loom="load_checkpoint",
            status="exact", handler=_loader("ckpt_name", "load_checkpoint", "checkpoint", MODEL_OUTPUTS),
            display="Load Checkpoint", note="SD 1.x/2.x/SDXL single files; SD3/3.5 and Flux checkpoints (with or "
            "without their text encoders)"))
define(Spec("CheckpointLoader", FAMILY, ("config_name", "ckpt_name"), outputs=_CKPT,
            loom="load_checkpoint", status="approximate", handler=checkpoint_with_config,
            display="Load Checkpoint With Config (DEPRECATED)", note="the config file is not used"))
define(Spec("DiffusersLoader", FAMILY, ("model_path",), outputs=_CKPT, loom="load_diffusers_model",
            status="exact", display="DiffusersLoader",
            handler=_loader("model_path", "load_diffusers_model", "model", MODEL_OUTPUTS)))
define(Spec("VAELoader", FAMILY, ("vae_name",), outputs=("VAE",), loom="load_vae / load_dit_vae", status="exact",
            handler=vae_loader, display="Load VAE",
            note="load_dit_vae for SD3/Flux's 16-channel VAEs (told by the name, e.g. ae.safetensors, "
                 "or by the workflow's Flux/SD3 nodes)"))
define(Spec("CLIPLoader", FAMILY, ("clip_name", "type"), variants=(("clip_name", "type", "device"),
                                                                   ("clip_name",)),
            outputs=("CLIP",), loom="load_text_encoder", status="exact", handler=clip_loader,
            display="Load CLIP", note="type stable_diffusion (a CLIP) and pixart (T5-XXL → "
            "load_pixart_text_encoder); other types have no Loom encoder yet"))
define(Spec("CLIPTextEncode", FAMILY, ("text",), inputs=("clip",), outputs=("CONDITIONING",),
            loom="text_encode", status="exact", display="CLIP Text Encode (Prompt)",
            handler=direct("text_encode", {"clip": "encoder", "text": "text"}, ("conditioning",))))
define(Spec("CLIPTextEncodeSDXL", FAMILY,
            ("width", "height", "crop_w", "crop_h", "target_width", "target_height", "text_g", "text_l"),
            inputs=("clip",), outputs=("CONDITIONING",), loom="text_encode", status="approximate",
            handler=sdxl_encode, note="text_g for both encoders; size conditioning from the latent"))
define(Spec("CLIPTextEncodeSDXLRefiner", FAMILY, ("ascore", "width", "height", "text"),
            inputs=("clip",), outputs=("CONDITIONING",), loom="text_encode", status="approximate",
            handler=sdxl_refiner_encode, note="no aesthetic score"))
define(Spec("CLIPSetLastLayer", FAMILY, ("stop_at_clip_layer",), inputs=("clip",), outputs=("CLIP",),
            loom="clip_set_last_layer", status="approximate", handler=clip_set_last_layer,
            display="CLIP Set Last Layer", note="−1 dissolves into its link; −k is clip_skip k: "
            + CLIP_SKIP_NOTE))
define(Spec("PrimitiveInt", FAMILY, ("value", CONTROL), variants=(("value",),), outputs=("INT",),
            loom="int_value", status="exact", handler=primitive("int_value", "value", "value", as_int),
            display="Int"))
define(Spec("PrimitiveFloat", FAMILY, ("value",), outputs=("FLOAT",), loom="float_value",
            status="exact", handler=primitive("float_value", "value", "value", as_float), display="Float"))
for _t, _d in (("PrimitiveString", "String"), ("PrimitiveStringMultiline", "String (Multiline)")):
    define(Spec(_t, FAMILY, ("value",), outputs=("STRING",), loom="string_value", status="exact",
                handler=primitive("string_value", "value", "value", str), display=_d))
define(Spec("PrimitiveBoolean", FAMILY, ("value",), outputs=("BOOLEAN",), loom="(value)",
            status="dissolved", handler=boolean, display="Boolean",
            note="no boolean node in Loom: the value goes into the inputs it feeds"))
define(Spec("LoraLoader", FAMILY, ("lora_name", "strength_model", "strength_clip"), inputs=("model", "clip"),
            outputs=("MODEL", "CLIP"), loom="load_lora", status="exact", handler=lora_loader,
            display="Load LoRA", note=LORA_NOTE + "; strengths from -4 to 4"))
define(Spec("LoraLoaderModelOnly", FAMILY, ("lora_name", "strength_model"), inputs=("model",),
            outputs=("MODEL",), loom="load_lora", status="exact", handler=lora_loader,
            display="LoraLoaderModelOnly", note="load_lora without a text encoder; " + LORA_NOTE))
