"""Single-file transformer checkpoints: SD3/3.5 (all-in-one or transformer only), Flux, PixArt.

``detect`` tells the family, the key layout and the parts of a file from its tensor names and
shapes alone (a ``.safetensors`` header is enough: ``read_specs``), and infers the transformer
config (``dit_configs``). Original layouts are converted with diffusers' own single-file
functions (``convert_sd3_transformer_checkpoint_to_diffusers``,
``convert_flux_transformer_checkpoint_to_diffusers``); PixArt's original layout, which
diffusers converts only in a script, with Loom's key map. Weights stored as bf16, fp16 or fp8
(``float8_e4m3fn`` / ``float8_e5m2``, also ComfyUI's "scaled fp8") are cast to the compute
dtype on load; ``storage="fp8"`` keeps them in fp8 and casts each layer for its forward
(diffusers' layerwise casting).
"""
from __future__ import annotations

import json
import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from . import dit_configs as cfgs
from .infer_config import ids_after, infer_vae
from .loading import ModelLoadError
from .single_file import build_module, read_state_dict

log = logging.getLogger(__name__)

PREFIXES = ("model.diffusion_model.", "transformer.", "")
TEXT_PREFIXES = {"clip_l": "text_encoders.clip_l.transformer.", "clip_g": "text_encoders.clip_g.transformer.",
                 "t5": "text_encoders.t5xxl.transformer."}
VAE_PREFIX = "first_stage_model."
# (family, layout) → a key that only that layout has (after the prefix)
MARKERS = (("sd3", "original", "joint_blocks.0.context_block.adaLN_modulation.1.bias"),
           ("flux", "original", "double_blocks.0.img_attn.norm.key_norm.scale"),
           ("pixart", "original", "blocks.0.cross_attn.kv_linear.weight"),
           ("flux", "diffusers", "single_transformer_blocks.0.proj_mlp.weight"),
           ("pixart", "diffusers", "adaln_single.linear.weight"),
           ("sd3", "diffusers", "transformer_blocks.0.norm1_context.linear.weight"))
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                      "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32",
                      "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
FP8 = ("float8_e4m3fn", "float8_e5m2")
STORAGE = {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}


@dataclass(frozen=True)
class TensorSpec:
    """A tensor's shape and dtype name (``float16``, ``float8_e4m3fn``…) without its data."""

    shape: tuple[int, ...]
    dtype: str = "float32"


def spec_of(value: Any) -> TensorSpec:
    """A TensorSpec from a tensor, a TensorSpec, a shape, or a (shape, dtype) pair."""
    if isinstance(value, TensorSpec):
        return value
    if isinstance(value, torch.Tensor):
        return TensorSpec(tuple(value.shape), str(value.dtype).replace("torch.", ""))
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], (str, torch.dtype)):
        return TensorSpec(tuple(value[0]), str(value[1]).replace("torch.", ""))
    return TensorSpec(tuple(int(n) for n in value))


MAX_HEADER = 100 * 1024 * 1024  # the safetensors format caps its JSON header at 100 MB


def read_specs(path: Path) -> dict[str, TensorSpec]:
    """Names, shapes and dtypes of a file's tensors; for ``.safetensors`` from the header only."""
    if path.suffix.lower() not in (".safetensors", ".sft"):
        return {k: spec_of(v) for k, v in read_state_dict(path).items()}
    try:
        with path.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > min(path.stat().st_size - 8, MAX_HEADER):  # garbage, not a header length
                raise ValueError(f"header length {n} does not fit the file")
            header = json.loads(fh.read(n))
    except (OSError, ValueError, struct.error) as exc:
        raise ModelLoadError(f"{path.name} is not a readable .safetensors file: {exc}") from exc
    return {k: TensorSpec(tuple(v["shape"]), SAFETENSORS_DTYPES.get(v["dtype"], v["dtype"].lower()))
            for k, v in header.items() if k != "__metadata__"}


@dataclass(frozen=True)
class Detected:
    """What a file holds: the transformer's family, key layout, config, and the other parts."""

    family: str                       # "sd3" | "flux" | "pixart"
    layout: str                       # "original" | "diffusers"
    prefix: str                       # the transformer's key prefix
    parts: tuple[str, ...]            # "transformer", and "vae", "clip_l", "clip_g", "t5" when present
    config: dict[str, Any] = field(hash=False)
    variant: str = ""
    storage: tuple[str, ...] = ()     # dtypes the transformer's weights are stored in

    @property
    def fp8(self) -> bool:
        """Whether the transformer is stored in an 8-bit float format."""
        return any(d in FP8 for d in self.storage)

    def describe(self) -> str:
        """One line for the run log."""
        extra = [p for p in self.parts if p != "transformer"]
        return (f"{self.variant} transformer ({self.layout} layout, stored as {'/'.join(self.storage)})"
                + (f" with {', '.join(extra)}" if extra else ""))


def _family_of(keys: set[str]) -> tuple[str, str, str]:
    for family, layout, marker in MARKERS:
        for prefix in PREFIXES:
            if prefix + marker in keys:
                return family, layout, prefix
    sample = ", ".join(sorted(keys)[:3])
    raise ModelLoadError("not a transformer checkpoint Loom knows (SD3/3.5, Flux, PixArt): none of their "
                         f"block names found (first keys: {sample}); UNet checkpoints go in models/checkpoints")


def _meta(specs: Mapping[str, TensorSpec]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s.shape, device="meta") for k, s in specs.items()}


def detect(specs: Mapping[str, Any], name: str = "") -> Detected:
    """Family, layout, parts and transformer config of a state dict given as ``{key: shape/tensor/spec}``."""
    specs = {k: spec_of(v) for k, v in specs.items()}
    family, layout, prefix = _family_of(set(specs))
    own = {k[len(prefix):]: s for k, s in specs.items() if k.startswith(prefix) and not _foreign(k)}
    diff = to_diffusers(family, layout, _meta(own))
    shapes = {k: tuple(v.shape) for k, v in diff.items()}
    if family == "sd3":
        config = cfgs.sd3_config(shapes)
        variant = cfgs.sd3_variant(config)
    elif family == "flux":
        config = cfgs.flux_config(shapes)
        variant = "Flux dev" if config["guidance_embeds"] else "Flux schnell"
    else:
        positions = own["pos_embed"].shape[1] if "pos_embed" in own and layout == "original" else None
        config = cfgs.pixart_config(shapes, positions, name)
        variant = "PixArt-α" if config["use_additional_conditions"] else "PixArt-Σ"
    parts = ["transformer"]
    if any(k.startswith(VAE_PREFIX + "decoder.") for k in specs):
        parts.append("vae")
    for part, p in TEXT_PREFIXES.items():
        if any(k.startswith(p) for k in specs):
            parts.append(part)
    storage = tuple(sorted({s.dtype for s in own.values() if s.dtype not in ("int64", "int32", "bool")}))
    return Detected(family, layout, prefix, tuple(parts), config, variant, storage)


def _foreign(key: str) -> bool:
    """Keys of the other parts of an all-in-one file (with the empty prefix everything matches)."""
    return key.startswith((VAE_PREFIX, "text_encoders.", "cond_stage_model.", "conditioner."))


# --- conversion to diffusers' layout --------------------------------------------------------
def to_diffusers(family: str, layout: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Transformer keys (prefix removed) in diffusers' layout; works on meta tensors too."""
    if layout == "diffusers":
        return dict(sd)
    from diffusers.loaders import single_file_utils as sfu

    sd = dict(sd)  # diffusers' converters pop from what they are given
    if family == "sd3":
        return sfu.convert_sd3_transformer_checkpoint_to_diffusers(sd)
    if family == "flux":
        return _flux_to_diffusers(sfu, sd)
    return pixart_to_diffusers(sd)


FLUX_WIDTH = 3072  # diffusers' converter splits the single blocks' fused projection at this width


def _flux_to_diffusers(sfu: Any, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' Flux conversion, with the fused single-block projection split at the file's width."""
    if "img_in.weight" not in sd:
        raise ModelLoadError("unrecognised Flux transformer layout: no img_in.weight")
    hidden = sd["img_in.weight"].shape[0]
    fused = {}
    for i in ids_after(sd, "single_blocks."):
        for p in ("weight", "bias"):
            key = f"single_blocks.{i}.linear1.{p}"
            fused[key] = sd[key]
            shape = (3 * FLUX_WIDTH + 4 * FLUX_WIDTH, *sd[key].shape[1:])
            sd[key] = torch.empty(shape, device="meta")  # what the converter expects; replaced below
    out = sfu.convert_flux_transformer_checkpoint_to_diffusers(sd)
    for key, t in fused.items():
        i, p = key.split(".")[1], key.rsplit(".", 1)[1]
        if t.shape[0] != 7 * hidden:
            raise ModelLoadError(f"Flux single block {i} fuses {t.shape[0]} outputs, not 3 × {hidden} + 4 × {hidden}")
        q, k, v, mlp = torch.split(t, (hidden, hidden, hidden, 4 * hidden), dim=0)
        block = f"single_transformer_blocks.{i}."
        out.update({f"{block}attn.to_q.{p}": q, f"{block}attn.to_k.{p}": k, f"{block}attn.to_v.{p}": v,
                    f"{block}proj_mlp.{p}": mlp})
    return out


_PIXART_TOP = {"x_embedder.proj": "pos_embed.proj", "y_embedder.y_proj.fc1": "caption_projection.linear_1",
               "y_embedder.y_proj.fc2": "caption_projection.linear_2",
               "t_embedder.mlp.0": "adaln_single.emb.timestep_embedder.linear_1",
               "t_embedder.mlp.2": "adaln_single.emb.timestep_embedder.linear_2", "t_block.1": "adaln_single.linear",
               "csize_embedder.mlp.0": "adaln_single.emb.resolution_embedder.linear_1",
               "csize_embedder.mlp.2": "adaln_single.emb.resolution_embedder.linear_2",
               "ar_embedder.mlp.0": "adaln_single.emb.aspect_ratio_embedder.linear_1",
               "ar_embedder.mlp.2": "adaln_single.emb.aspect_ratio_embedder.linear_2",
               "final_layer.linear": "proj_out"}
_PIXART_BLOCK = {"attn.proj": "attn1.to_out.0", "mlp.fc1": "ff.net.0.proj", "mlp.fc2": "ff.net.2",
                 "cross_attn.q_linear": "attn2.to_q", "cross_attn.proj": "attn2.to_out.0"}
_PIXART_DROPPED = {"pos_embed", "y_embedder.y_embedding"}  # a fixed buffer; the unconditional caption


def pixart_to_diffusers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """PixArt-α/Σ original keys → ``PixArtTransformer2DModel`` keys (fused q/k/v and k/v split)."""
    out: dict[str, torch.Tensor] = {}
    for key, t in sd.items():
        base, _, leaf = key.rpartition(".")
        if key in _PIXART_DROPPED:
            continue
        if key == "final_layer.scale_shift_table":
            out["scale_shift_table"] = t
        elif base in _PIXART_TOP:
            out[f"{_PIXART_TOP[base]}.{leaf}"] = t
        elif m := re.fullmatch(r"blocks\.(\d+)\.(.+)", base if leaf in ("weight", "bias") else key):
            block, rest = f"transformer_blocks.{m[1]}.", m[2]
            if rest == "scale_shift_table":
                out[block + rest] = t
            elif rest == "attn.qkv":
                for n, part in zip(("to_q", "to_k", "to_v"), t.chunk(3, dim=0)):
                    out[f"{block}attn1.{n}.{leaf}"] = part
            elif rest == "cross_attn.kv_linear":
                for n, part in zip(("to_k", "to_v"), t.chunk(2, dim=0)):
                    out[f"{block}attn2.{n}.{leaf}"] = part
            else:
                out[f"{block}{_PIXART_BLOCK.get(rest, rest)}.{leaf}"] = t
        else:
            out[key] = t  # reported as not recognised when the module is filled
    return out


# --- loading --------------------------------------------------------------------------------
MODEL_CLASSES = {"sd3": "SD3Transformer2DModel", "flux": "FluxTransformer2DModel", "pixart": "PixArtTransformer2DModel"}


def dequantize(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ComfyUI's "scaled fp8" files: each ``X.weight`` times its ``X.scale_weight``; markers dropped."""
    if "scaled_fp8" not in sd and not any(k.endswith(".scale_weight") for k in sd):
        return sd
    out = {}
    for k, v in sd.items():
        if k == "scaled_fp8" or k.endswith((".scale_weight", ".scale_input")):
            continue
        scale = sd.get(k[: -len("weight")] + "scale_weight") if k.endswith(".weight") else None
        out[k] = v.float() * scale.float() if scale is not None else v
    return out


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A file's tensors (``.safetensors``, or ``.ckpt``/``.pth`` with weights_only), scaled fp8 undone."""
    return dequantize(read_state_dict(path))


def build_transformer(det: Detected, sd: Mapping[str, torch.Tensor], dtype: torch.dtype,
                      storage: str = "default") -> Any:
    """The diffusers transformer of ``det`` filled (strictly) with the file's weights in ``dtype``.

    ``storage``: "default" keeps ``dtype``; "fp8_e4m3fn" / "fp8_e5m2" store the weights in fp8 and
    cast each layer to ``dtype`` for its forward (norms and embeddings stay in ``dtype``).
    """
    import diffusers

    cls = getattr(diffusers, MODEL_CLASSES[det.family])
    own = {k[len(det.prefix):]: v for k, v in sd.items() if k.startswith(det.prefix) and not _foreign(k)}
    module = build_module(f"{det.variant} transformer", lambda: cls(**det.config),
                          lambda m: to_diffusers(det.family, det.layout, own), dtype)
    if storage != "default":
        if storage not in STORAGE:
            raise ModelLoadError(f"unknown weight storage {storage!r} (default, {', '.join(STORAGE)})")
        module.enable_layerwise_casting(storage_dtype=STORAGE[storage], compute_dtype=dtype)
    return module


def load_transformer_file(path: Path, dtype: torch.dtype, storage: str = "default") -> tuple[Any, str]:
    """(diffusers transformer module, family) of a single file; family is "sd3", "flux" or "pixart"."""
    det, module = _load_transformer(path, dtype, storage)
    return module, det.family


def _load_transformer(path: Path, dtype: torch.dtype, storage: str) -> tuple[Detected, Any]:
    try:
        header_only = path.suffix.lower() in (".safetensors", ".sft")
        sd = None if header_only else read_tensors(path)  # a pickle is read once, whole
        det = detect(read_specs(path) if sd is None else sd, path.name)
        log.info("%s: %s", path.name, det.describe())
        if det.fp8 and storage == "default":
            log.info("%s: fp8-stored weights cast to %s on load", path.name, str(dtype).replace("torch.", ""))
        return det, build_transformer(det, read_tensors(path) if sd is None else sd, dtype, storage)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from exc


def load_vae16_file(path: Path, dtype: torch.dtype, family: str, sd: Mapping[str, torch.Tensor] | None = None,
                    prefix: str | None = None) -> Any:
    """The 16-channel ``AutoencoderKL`` of SD3 or Flux (``family``) from an LDM-layout file."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    from .infer_config import vae_prefix

    sd = read_tensors(path) if sd is None else sd
    prefix = vae_prefix(sd) if prefix is None else prefix
    base = {**cfgs.VAE16, **cfgs.VAE_SCALING[family]}
    config, changed = infer_vae(sd, prefix, base)
    if changed:
        log.info("%s: VAE sizes inferred from the tensors: %s", path.name, changed)
    vae_sd = {k: v for k, v in sd.items() if k.startswith(prefix)} if prefix else dict(sd)
    return build_module("VAE", lambda: AutoencoderKL.from_config(config),
                        lambda m: convert_ldm_vae_checkpoint({"first_stage_model." + k[len(prefix):]: v
                                                              for k, v in vae_sd.items()}, config), dtype)


@dataclass
class CheckpointParts:
    """Every part of an all-in-one file (SD3/3.5 checkpoints): absent parts are None."""

    detected: Detected
    transformer: Any
    scheduler_config: dict[str, Any]
    vae: Any = None
    clip_l: Any = None
    clip_g: Any = None
    t5: Any = None


def load_checkpoint_parts(path: Path, dtype: torch.dtype, storage: str = "default") -> CheckpointParts:
    """Transformer, VAE and text encoders (CLIP-L, CLIP-G, T5 where present) of one file."""
    from .dit_encoders_file import clip_from_state, t5_from_state

    try:
        det = detect(read_specs(path), path.name)
        log.info("%s: %s", path.name, det.describe())
        sd = read_tensors(path)
        parts = CheckpointParts(det, build_transformer(det, sd, dtype, storage),
                                cfgs.scheduler_for(det.family, det.config))
        if "vae" in det.parts:
            parts.vae = load_vae16_file(path, dtype, det.family, sd, VAE_PREFIX)
        if "clip_l" in det.parts:
            parts.clip_l = clip_from_state(sd, TEXT_PREFIXES["clip_l"], "clip_l", dtype)
        if "clip_g" in det.parts:
            parts.clip_g = clip_from_state(sd, TEXT_PREFIXES["clip_g"], "clip_g", dtype)
        if "t5" in det.parts:
            parts.t5 = t5_from_state(sd, TEXT_PREFIXES["t5"], dtype)
        return parts
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from exc
