"""Separate text-encoder files of the transformer families: CLIP-L, CLIP-G and T5-XXL.

``load_text_encoder_file(path, dtype)`` tells the kind from the tensors (CLIP in transformers'
layout or OpenCLIP's, T5 in transformers' layout; any storage dtype incl. fp8) and builds the
transformers module with the sizes read from the shapes:

- ``clip_l``: ``CLIPTextModelWithProjection`` whose projection is the identity, so its pooled
  output is CLIP-L's unprojected one, which both SD3 and Flux use (diffusers' single-file
  conversion does the same).
- ``clip_g``: ``CLIPTextModelWithProjection`` (OpenCLIP bigG; its projection is needed).
- ``t5``: ``T5EncoderModel`` (T5 v1.1: gated-GELU); fp16 keeps the ``wo`` projections in fp32
  as transformers does.

Tokenizers: CLIP's is built offline from the ``openai-clip`` package (``clip_tokenizer``); T5's
ships in no registry package, so it is read from a folder holding ``tokenizer.json`` (or
``spiece.model`` with ``sentencepiece`` installed): ``models/tokenizers/t5/`` or a
``<file name>_tokenizer/`` / ``t5_tokenizer/`` folder beside the encoder file.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .infer_config import TextLayout, ids_after, infer_clip, shapes_of
from .loading import ModelLoadError, load_tokenizer, read_json
from .single_file import CONFIGS, build_module, hf_clip_state, open_clip_state

log = logging.getLogger(__name__)

KINDS = ("clip_l", "clip_g", "t5")
CLIP_WIDTHS = {768: "clip_l", 1280: "clip_g"}
TOKEN_KEY = "embeddings.token_embedding.weight"
T5_BLOCK = "encoder.block."
T5_TOKENIZER_HOME = Path("tokenizers") / "t5"   # under a model root


def _clip_layout(keys: Sequence[str]) -> tuple[str, bool] | None:
    """(prefix, open_clip) of the CLIP text model in ``keys``, or None."""
    for k in keys:
        if k.endswith(TOKEN_KEY):
            return k[: -len(TOKEN_KEY)].removesuffix("text_model."), False
    for k in keys:
        if k.endswith("transformer.resblocks.0.attn.in_proj_weight"):
            prefix = k[: -len("transformer.resblocks.0.attn.in_proj_weight")]
            if prefix + "token_embedding.weight" in keys:
                return prefix, True
    return None


def _t5_prefix(keys: Sequence[str]) -> str | None:
    for k in keys:
        if k.endswith(T5_BLOCK + "0.layer.0.SelfAttention.q.weight"):
            return k[: -len(T5_BLOCK + "0.layer.0.SelfAttention.q.weight")]
    return None


def detect_text_encoder(shapes: Mapping[str, Any], kind: str = "auto") -> tuple[str, str, bool]:
    """(kind, key prefix, OpenCLIP layout) of a text-encoder state dict (``{key: shape or tensor}``)."""
    keys = list(shapes)
    t5, clip = _t5_prefix(keys), _clip_layout(keys)
    if t5 is not None and (kind in ("auto", "t5") or clip is None):
        return "t5", t5, False
    if clip is None:
        sample = ", ".join(keys[:3])
        raise ModelLoadError(f"not a CLIP or T5 text encoder (no {TOKEN_KEY}, transformer.resblocks or "
                             f"{T5_BLOCK}N weights; first keys: {sample})")
    prefix, open_clip = clip
    if kind in ("clip_l", "clip_g"):
        return kind, prefix, open_clip
    if kind != "auto":
        raise ModelLoadError(f"this file holds a CLIP text encoder, not {kind}")
    token = prefix + ("token_embedding.weight" if open_clip else
                      ("text_model." if any(k.startswith(prefix + "text_model.") for k in keys) else "") + TOKEN_KEY)
    width = tuple(getattr(shapes[token], "shape", shapes[token]))[-1]
    if open_clip:
        return "clip_g", prefix, True
    if width not in CLIP_WIDTHS:
        raise ModelLoadError(f"a CLIP text encoder {width} wide is neither CLIP-L (768) nor CLIP-G (1280)")
    return CLIP_WIDTHS[width], prefix, False


def clip_from_state(sd: Mapping[str, torch.Tensor], prefix: str, kind: str, dtype: torch.dtype,
                    open_clip: bool | None = None) -> Any:
    """``CLIPTextModelWithProjection`` for CLIP-L or CLIP-G from the keys under ``prefix``."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    if open_clip is None:
        open_clip = any(k.startswith(prefix + "transformer.resblocks.") for k in sd)
    base = read_json(CONFIGS / ("sd1/text_encoder" if kind == "clip_l" else "sdxl/text_encoder_2") / "config.json")
    cfg, changed = infer_clip(sd, TextLayout("text_encoder", prefix, open_clip), base)
    if changed:
        log.info("%s: sizes inferred from the tensors: %s", kind, changed)
    cfg["architectures"] = ["CLIPTextModelWithProjection"]
    width = int(cfg["hidden_size"])
    if kind == "clip_l":
        cfg["projection_dim"] = width
    elif not any(k.startswith(prefix + "text_projection") for k in sd):
        raise ModelLoadError(f"the CLIP-G text encoder under {prefix or 'the file root'} has no text_projection")
    convert = open_clip_state if open_clip else hf_clip_state

    def state(model: Any) -> dict[str, torch.Tensor]:
        out = convert(sd, prefix, model)
        if kind == "clip_l":  # CLIP-L's pooled output is used unprojected
            out["text_projection.weight"] = torch.eye(width)
        return out

    return build_module(f"{kind} text encoder", lambda: CLIPTextModelWithProjection(CLIPTextConfig(**cfg)),
                        state, dtype)


def t5_config(sd: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``T5Config`` values of a T5 encoder, read from its shapes."""
    s = shapes_of(sd, prefix)
    embed = s.get("shared.weight") or s.get("encoder.embed_tokens.weight")
    bias = s.get(T5_BLOCK + "0.layer.0.SelfAttention.relative_attention_bias.weight")
    if embed is None or bias is None:
        raise ModelLoadError("unrecognised T5 layout: no shared.weight / encoder.embed_tokens.weight or "
                             "relative_attention_bias in block 0")
    layers = ids_after(s, T5_BLOCK)
    if layers != list(range(len(layers))):
        raise ModelLoadError(f"unrecognised T5 layout: blocks {layers[:8]}")
    buckets, heads = bias
    gated = T5_BLOCK + "0.layer.1.DenseReluDense.wi_0.weight" in s
    ff = s[T5_BLOCK + "0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"][0]
    return {"vocab_size": embed[0], "d_model": embed[1], "num_heads": heads,
            "d_kv": s[T5_BLOCK + "0.layer.0.SelfAttention.q.weight"][0] // heads, "d_ff": ff,
            "num_layers": len(layers), "relative_attention_num_buckets": buckets,
            "feed_forward_proj": "gated-gelu" if gated else "relu", "is_encoder_decoder": False,
            "use_cache": False, "layer_norm_epsilon": 1e-6}


def t5_from_state(sd: Mapping[str, torch.Tensor], prefix: str, dtype: torch.dtype) -> Any:
    """``T5EncoderModel`` from the keys under ``prefix`` (transformers' layout)."""
    from transformers import T5Config, T5EncoderModel

    cfg = t5_config(sd, prefix)
    log.info("T5 encoder: %d layers, width %d, %d heads", cfg["num_layers"], cfg["d_model"], cfg["num_heads"])

    def state(model: Any) -> dict[str, torch.Tensor]:
        out = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        embed = out.get("shared.weight", out.get("encoder.embed_tokens.weight"))
        wanted = set(model.state_dict())
        for key in ("shared.weight", "encoder.embed_tokens.weight"):
            if key in wanted:
                out[key] = embed
            else:
                out.pop(key, None)
        return out

    model = build_module("T5 text encoder", lambda: T5EncoderModel(T5Config(**cfg)), state, dtype)
    model.encoder.embed_tokens = model.shared  # one embedding, as the tied model has
    if dtype == torch.float16:
        for name, module in model.named_modules():
            if name.endswith("DenseReluDense.wo"):
                module.to(torch.float32)  # T5's feed-forward output overflows fp16
    return model


def load_text_encoder_file(path: Path, dtype: torch.dtype, kind: str = "auto") -> tuple[Any, str]:
    """(transformers module, kind) of a CLIP-L, CLIP-G or T5 encoder file; kind in ``KINDS``."""
    from .dit_single_file import read_specs, read_tensors

    if kind not in ("auto", *KINDS):
        raise ModelLoadError(f"unknown text encoder kind {kind!r} ({', '.join(KINDS)})")
    try:
        specs = read_specs(path)
        found, prefix, open_clip = detect_text_encoder({k: s.shape for k, s in specs.items()}, kind)
        if kind != "auto" and found != kind:
            raise ModelLoadError(f"this is a {found} text encoder file, not {kind}")
        stored = sorted({s.dtype for s in specs.values()})
        log.info("%s: %s text encoder (stored as %s)", path.name, found, "/".join(stored))
        sd = read_tensors(path)
        if found == "t5":
            return t5_from_state(sd, prefix, dtype), found
        return clip_from_state(sd, prefix, found, dtype, open_clip), found
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from exc


# --- tokenizers -----------------------------------------------------------------------------
def clip_tokenizer_for(kind: str, folder: Path | None = None) -> Any:
    """CLIP-L's tokenizer (pads with end-of-text) or CLIP-G's (pads with '!'), offline."""
    return load_tokenizer(folder, "<|endoftext|>" if kind == "clip_l" else "!")


def t5_tokenizer_folders(model_file: Path | None, model_roots: Sequence[Path]) -> list[Path]:
    """Where a T5 tokenizer is looked for, in order."""
    found: list[Path] = []
    if model_file is not None:
        found += [model_file.parent / f"{model_file.stem}_tokenizer", model_file.parent / "t5_tokenizer"]
    found += [root / T5_TOKENIZER_HOME for root in model_roots]
    return list(dict.fromkeys(found))


def t5_tokenizer(folders: Sequence[Path]) -> Any:
    """A T5 tokenizer from the first folder holding ``tokenizer.json`` (or ``spiece.model``)."""
    from transformers import T5TokenizerFast

    spiece_ok = importlib.util.find_spec("sentencepiece") is not None
    for folder in folders:
        if (folder / "tokenizer.json").is_file() or (spiece_ok and (folder / "spiece.model").is_file()):
            try:
                return T5TokenizerFast.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError, RuntimeError) as exc:
                raise ModelLoadError(f"cannot read the T5 tokenizer in {folder}: {exc}") from exc
    spiece = [f / "spiece.model" for f in folders if (f / "spiece.model").is_file()]
    hint = (f" ({spiece[0]} needs `pip install sentencepiece`; tokenizer.json does not)" if spiece else "")
    where = next((f for f in folders if f.parts[-2:] == T5_TOKENIZER_HOME.parts), T5_TOKENIZER_HOME)
    raise ModelLoadError(
        f"no T5 tokenizer found{hint}: put tokenizer.json from a T5 v1.1 tokenizer (the tokenizer_3/ folder "
        f"of an SD3 diffusers model, or tokenizer_2/ of Flux) at {where / 'tokenizer.json'} (looked in: "
        + ", ".join(str(f) for f in folders) + ")")
