"""Single-file SD 1.x / 2.x / SDXL checkpoints (original LDM key layout), of any size.

The family is detected and the sizes inferred from the tensors (``infer_config``); the
family configs shipped in ``nodes/loom_nodes/_lib/configs/<arch>/`` give the rest, so nothing
is fetched. Keys are converted with diffusers' LDM key mapping (UNet, VAE) and Loom's own
(CLIP / OpenCLIP text encoders); modules are built empty and loaded strictly.
Files load safely: ``.safetensors``, or ``torch.load(weights_only=True)`` for ``.ckpt``;
a checkpoint that needs arbitrary pickle code is refused.
"""
from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any, Callable

import torch

from .components import ClipPart, ClipTextEncoder, DiffusionDenoiser, DiffusionVAE
from .infer_config import (FAMILIES, UNET_KEY, TextLayout, detect_family, infer_clip, infer_unet, infer_vae,
                           vae_prefix)
from .loading import Loaded, ModelLoadError, load_tokenizer, loom_info, read_json

log = logging.getLogger(__name__)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ARCHS = ("sd1", "sd2", "sdxl")
__all__ = ["ARCHS", "CONFIGS", "UNET_KEY", "CheckpointLoaded", "detect_architecture", "load_checkpoint_file",
           "load_clip_file", "load_vae_file", "read_state_dict"]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.ckpt``/``.pt`` loaded with weights_only."""
    if not path.is_file():
        raise ModelLoadError(f"{path.name}: file not found")
    suffix = path.suffix.lower()
    if suffix in (".safetensors", ".sft"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"{path.name} is not a readable .safetensors file "
                                 f"(corrupt or incomplete download?): {exc}") from exc
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(f"{path.name} needs unsafe pickle code to load, which Loom refuses; "
                             "convert it to .safetensors") from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ModelLoadError(f"{path.name} is not a readable checkpoint: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelLoadError(f"{path.name} does not hold a state dict of tensors")
    return data


def detect_architecture(sd: dict[str, torch.Tensor]) -> str:
    """``sd1``, ``sd2`` or ``sdxl`` for an LDM-format checkpoint, else a clear error."""
    return detect_family(sd)


class CheckpointLoaded(Loaded):
    """``Loaded`` plus loom.json-style metadata: the detected family and the inferred sizes."""

    def __init__(self, denoiser: DiffusionDenoiser, text_encoder: Any, vae: DiffusionVAE,
                 info: dict[str, Any]) -> None:
        super().__init__(denoiser, text_encoder, vae)
        self.info = info

    @property
    def arch(self) -> str:
        """The detected family: ``sd1``, ``sd2`` or ``sdxl``."""
        return str(self.info["arch"])


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ModelLoadError:
        raise
    except (ValueError, KeyError, RuntimeError, OSError, TypeError) as exc:
        raise ModelLoadError(f"cannot convert the {what} of this checkpoint: {exc}") from exc


def _fit_errors(what: str, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Raise a short, readable error when ``state`` does not fit ``model`` exactly."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [f"{k} is {tuple(state[k].shape)} in the file but {tuple(expected[k].shape)} in the model"
             for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    parts = []
    if wrong:
        parts.append("; ".join(wrong[:3]) + (f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""))
    if missing:
        parts.append(f"{len(missing)} weights missing ({', '.join(missing[:3])})")
    if extra:
        parts.append(f"{len(extra)} weights not recognised ({', '.join(extra[:3])})")
    if parts:
        raise ModelLoadError(f"the {what} weights do not fit the layout inferred from the file: "
                             + "; ".join(parts))


def build_module(what: str, make: Callable[[], Any], convert: Callable[[Any], dict[str, torch.Tensor]],
                 dtype: torch.dtype) -> Any:
    """A module built without allocating weights, then given the converted tensors (strict)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = _call(what, make)
    state = _call(what, convert, model)
    _fit_errors(what, model, state)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def hf_clip_state(sd: dict[str, torch.Tensor], prefix: str, model: Any) -> dict[str, torch.Tensor]:
    """transformers-layout CLIP keys under ``prefix`` → ``model``'s keys."""
    wrap = "text_model." if hasattr(model, "text_model") else ""
    out = {}
    for k, v in sd.items():
        if k.startswith(prefix):
            rest = k[len(prefix):].removeprefix("text_model.")
            if not rest.endswith("position_ids"):
                out[rest if rest.startswith("text_projection") else wrap + rest] = v
    return out


_OPEN_CLIP = {"token_embedding.weight": "embeddings.token_embedding.weight",
              "positional_embedding": "embeddings.position_embedding.weight",
              "ln_final.weight": "final_layer_norm.weight", "ln_final.bias": "final_layer_norm.bias"}
_OPEN_CLIP_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1",
                    "mlp.c_proj": "mlp.fc2", "attn.out_proj": "self_attn.out_proj"}
_OPEN_CLIP_IGNORED = {"logit_scale", "attn_mask"}


def open_clip_state(sd: dict[str, torch.Tensor], prefix: str, model: Any) -> dict[str, torch.Tensor]:
    """OpenCLIP keys under ``prefix`` → ``model``'s keys (fused q/k/v split, later blocks dropped)."""
    wrap = "text_model." if hasattr(model, "text_model") else ""
    layers = int(model.config.num_hidden_layers)
    projection = hasattr(model, "text_projection")
    out = {}
    for k, v in sd.items():
        if not k.startswith(prefix):
            continue
        rest = k[len(prefix):]
        if rest in _OPEN_CLIP:
            out[wrap + _OPEN_CLIP[rest]] = v
        elif rest == "text_projection":
            if projection:
                out["text_projection.weight"] = v.T.contiguous()
        elif m := re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)\.(\w+)", rest):
            if int(m[1]) >= layers:
                continue
            block = f"{wrap}encoder.layers.{m[1]}."
            if m[2] == "attn" and m[3] in ("in_proj_weight", "in_proj_bias"):
                for name, part in zip("qkv", v.chunk(3, dim=0)):
                    out[f"{block}self_attn.{name}_proj.{m[3][8:]}"] = part.contiguous()
            else:
                out[block + _OPEN_CLIP_BLOCK.get(m[2], m[2]) + "." + m[3]] = v
        elif rest not in _OPEN_CLIP_IGNORED:
            out[rest] = v  # reported as not recognised
    return out


def _text_encoder(sd: dict[str, torch.Tensor], layout: TextLayout, cfg: dict[str, Any], dtype: torch.dtype) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    projected = (cfg.get("architectures") or ["CLIPTextModel"])[0] == "CLIPTextModelWithProjection"
    cls = CLIPTextModelWithProjection if projected else CLIPTextModel
    convert = open_clip_state if layout.open_clip else hf_clip_state
    return build_module(f"text encoder ({layout.prefix})", lambda: cls(CLIPTextConfig(**cfg)),
                        lambda m: convert(sd, layout.prefix, m), dtype)


def _base(cfg_dir: Path, sub: str) -> dict[str, Any]:
    data = read_json(cfg_dir / sub / "config.json")
    if not data:
        raise ModelLoadError(f"no {sub}/config.json in {cfg_dir}")
    return data


def _summary(changed: dict[str, dict[str, Any]]) -> str:
    items = [f"{part}.{k}={v}" for part, ch in changed.items() for k, v in ch.items()]
    return "; sizes inferred from the tensors: " + ", ".join(items) if items else "; standard sizes"


def _load(sd: dict[str, torch.Tensor], work: torch.dtype, name: str, prediction: str,
          config_dir: Path | None) -> CheckpointLoaded:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    arch = detect_family(sd)
    cfg = config_dir or CONFIGS / arch
    info = loom_info(cfg)
    layouts = FAMILIES[arch]
    te_cfgs, changed = [], {}
    for lay in layouts:
        te_cfg, changed[lay.subfolder] = infer_clip(sd, lay, _base(cfg, lay.subfolder))
        te_cfgs.append(te_cfg)
    pooled = int(te_cfgs[-1]["projection_dim"]) if arch == "sdxl" else None
    unet_cfg, changed["unet"] = infer_unet(sd, _base(cfg, "unet"), pooled)
    vae_cfg, changed["vae"] = infer_vae(sd, vae_prefix(sd), _base(cfg, "vae"))
    text_dim = sum(int(c["hidden_size"]) for c in te_cfgs)
    if unet_cfg["cross_attention_dim"] != text_dim:
        raise ModelLoadError(f"the UNet attends to {unet_cfg['cross_attention_dim']}-dim text states but "
                             f"the text encoders give {text_dim}")
    latent = vae_cfg["latent_channels"]
    if unet_cfg["in_channels"] not in (latent, 2 * latent + 1) or unet_cfg["out_channels"] != latent:
        raise ModelLoadError(f"the UNet takes {unet_cfg['in_channels']} channels and gives "
                             f"{unet_cfg['out_channels']} but the VAE makes {latent}-channel latents (an "
                             f"inpainting UNet takes {2 * latent + 1}: latents, mask, masked-image latents)")
    if unet_cfg["in_channels"] != latent:
        log.info("%s: an inpainting model (the UNet takes %d channels); give its prompts the image and mask "
                 "with inpaint_conditioning", name, unet_cfg["in_channels"])
    info = {**info, "kind": "checkpoint", "arch": arch, "file": name,
            "inferred": {k: v for k, v in changed.items() if v}}
    log.info("%s: detected %s (%s)%s", name, info.get("title", arch), arch, _summary(changed))
    unet = build_module("UNet", lambda: UNet2DConditionModel.from_config(unet_cfg),
                        lambda m: convert_ldm_unet_checkpoint(sd, unet_cfg), work)
    vae = DiffusionVAE(build_module("VAE", lambda: AutoencoderKL.from_config(vae_cfg),
                                    lambda m: convert_ldm_vae_checkpoint(sd, vae_cfg), work), name)
    pads = info.get("tokenizers", {})
    sdxl = arch == "sdxl"
    parts = []
    for i, (lay, te_cfg) in enumerate(zip(layouts, te_cfgs)):
        model = _text_encoder(sd, lay, te_cfg, work)
        tok_sub = "tokenizer" if i == 0 else "tokenizer_2"
        tok = load_tokenizer(cfg / tok_sub, pads.get(tok_sub, "<|endoftext|>"))
        if len(tok) > int(te_cfg["vocab_size"]):
            log.warning("%s: %s has %d token embeddings but its tokenizer %d ids; prompts using the "
                        "others will fail", name, lay.subfolder, te_cfg["vocab_size"], len(tok))
        parts.append(ClipPart(tok, model, "penultimate" if sdxl else "last", pooled=sdxl and i == 1))
    sched = read_json(cfg / "scheduler" / "scheduler_config.json")
    if prediction != "auto":
        sched["prediction_type"] = prediction
    elif arch == "sd2" and any(k.endswith("v_pred") for k in sd):
        sched["prediction_type"] = "v_prediction"
    den = DiffusionDenoiser(unet, sched, vae.family, name, vae.latent_channels, vae.downscale)
    te = ClipTextEncoder(parts, "sdxl" if sdxl else "clip", name)
    return CheckpointLoaded(den, te, vae, info)


def load_checkpoint_file(path: Path, device: torch.device, dtype: torch.dtype, name: str,
                         prediction: str = "auto", config_dir: Path | None = None) -> CheckpointLoaded:
    """Denoiser + text encoder + VAE of a single-file checkpoint, sized from its tensors.

    The family (sd1/sd2/sdxl) is detected from the layout and logged; its shipped configs (or
    ``config_dir``: a folder with unet/, vae/, text_encoder/ [, text_encoder_2/], scheduler/ and
    optionally tokenizer folders) give what the shapes cannot; the result's ``info`` says what
    was detected and inferred.
    """
    work = torch.float32 if device.type == "cpu" else dtype
    sd = read_state_dict(path)
    try:
        return _load(sd, work, name, prediction, config_dir)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from exc
    finally:
        del sd


def load_vae_file(path: Path, dtype: torch.dtype, name: str, family: str = "auto") -> DiffusionVAE:
    """An SD VAE single file (LDM keys, with or without ``first_stage_model.``), sized from its tensors."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    sd = read_state_dict(path)
    if family == "auto":
        family = "sdxl" if "xl" in path.name.lower() else "sd1"
    try:
        cfg, changed = infer_vae(sd, vae_prefix(sd), _base(CONFIGS / ("sdxl" if family == "sdxl" else "sd1"), "vae"))
        if changed:
            log.info("%s: VAE%s", path.name, _summary({"vae": changed}))
        vae = build_module("VAE", lambda: AutoencoderKL.from_config(cfg),
                           lambda m: convert_ldm_vae_checkpoint(sd, cfg), dtype)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path.name} is not a loadable SD VAE: {exc}") from exc
    return DiffusionVAE(vae, name)


def load_clip_file(path: Path, dtype: torch.dtype, name: str) -> ClipTextEncoder:
    """A CLIP text encoder single file in transformers key format (e.g. ``clip_l.safetensors``)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    sd = read_state_dict(path)
    key = next((k for k in sd if k.endswith("embeddings.token_embedding.weight")), None)
    if key is None:
        raise ModelLoadError(f"{path.name} is not a CLIP text encoder (no token embedding)")
    width = sd[key].shape[-1]
    table = {768: ("sd1", "text_encoder", CLIPTextModel, "<|endoftext|>"),
             1024: ("sd2", "text_encoder", CLIPTextModel, "!"),
             1280: ("sdxl", "text_encoder_2", CLIPTextModelWithProjection, "!")}
    if width not in table:
        raise ModelLoadError(f"{path.name}: CLIP width {width} is not CLIP-L, OpenCLIP-H or OpenCLIP-G")
    arch, sub, cls, pad = table[width]
    config = CLIPTextConfig(**read_json(CONFIGS / arch / sub / "config.json"))
    model = cls(config)
    prefix = key[: -len("embeddings.token_embedding.weight")]
    base = "text_model." if hasattr(model, "text_model") else ""
    state = {base + k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    state.update({k: v for k, v in sd.items() if k.startswith("text_projection")})
    missing, _ = model.load_state_dict(state, strict=False)
    if [m for m in missing if "position_ids" not in m]:
        raise ModelLoadError(f"{path.name}: weights missing for {missing[:3]}")
    model = model.to(dtype).eval()
    return ClipTextEncoder([ClipPart(load_tokenizer(None, pad), model, "last", pooled=width == 1280)],
                           "clip", name)
