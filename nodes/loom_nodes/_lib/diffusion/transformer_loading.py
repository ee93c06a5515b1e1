"""Loading diffusers folders whose denoiser is a transformer (``transformer/``): SD3, Flux, PixArt-Σ,
and Loom's own shapes-dit (an SD3-architecture model conditioned on MiniLM, named in loom.json).

Text encoders follow the folder's pipeline: SD3 ``text_encoder`` (CLIP-L), ``text_encoder_2``
(CLIP-G), ``text_encoder_3`` (T5, optional); Flux ``text_encoder`` (CLIP-L) and
``text_encoder_2`` (T5); PixArt-Σ ``text_encoder`` (T5). Each ``text_encoder*`` has its
``tokenizer*`` beside it. Everything is read with ``local_files_only``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from .components import ClipPart, register_preview
from .loading import (Loaded, ModelLoadError, load_clip_model, load_minilm, load_tokenizer, load_vae_folder,
                      loom_info, read_json)
from .transformer import TransformerDenoiser, arch_of
from .transformer_text import FluxTextEncoder, PixArtTextEncoder, SD3TextEncoder, T5Part

log = logging.getLogger(__name__)

TRANSFORMER_CLASSES = {"SD3Transformer2DModel": "sd3", "FluxTransformer2DModel": "flux",
                       "PixArtTransformer2DModel": "pixart"}

# The schedulers the models' pipelines ship (used when a folder or file comes without one).
SCHEDULERS: dict[str, dict[str, Any]] = {
    "sd3": {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0},
    "flux": {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0,
             "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15,
             "base_image_seq_len": 256, "max_image_seq_len": 4096},
    "pixart": {"_class_name": "DPMSolverMultistepScheduler", "num_train_timesteps": 1000,
               "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear", "prediction_type": "epsilon",
               "algorithm_type": "dpmsolver++", "solver_order": 2, "lower_order_final": True,
               "timestep_spacing": "linspace", "steps_offset": 0},
}


def scheduler_config_for(arch: str) -> dict[str, Any]:
    """The scheduler config of ``arch``'s diffusers pipeline (a copy)."""
    return dict(SCHEDULERS[arch])


def is_transformer_folder(folder: Path) -> bool:
    """Whether a diffusers folder's denoiser is a transformer (``transformer/config.json``)."""
    return (folder / "transformer" / "config.json").is_file()


def load_transformer(folder: Path, dtype: torch.dtype) -> Any:
    """The diffusers transformer class its config names (SD3, Flux or PixArt), loaded from ``folder``."""
    import diffusers

    cls_name = str(read_json(folder / "config.json").get("_class_name", ""))
    if cls_name not in TRANSFORMER_CLASSES:
        raise ModelLoadError(f"{folder}/config.json names {cls_name or 'no class'}; Loom runs "
                             f"{', '.join(TRANSFORMER_CLASSES)}")
    try:
        return getattr(diffusers, cls_name).from_pretrained(folder, local_files_only=True, torch_dtype=dtype).eval()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the transformer from {folder}: {exc}") from exc


def load_t5_tokenizer(folder: Path) -> Any:
    """The T5 tokenizer in ``folder`` (tokenizer.json or spiece.model); a clear error when missing."""
    from transformers import AutoTokenizer

    if not any((folder / f).is_file() for f in ("tokenizer.json", "spiece.model")):
        raise ModelLoadError(f"the T5 text encoder needs its tokenizer: put tokenizer.json (or spiece.model) "
                             f"with tokenizer_config.json from the model's tokenizer folder into {folder}")
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"cannot read the T5 tokenizer in {folder}: {exc}") from exc


def load_t5_model(folder: Path, dtype: torch.dtype) -> Any:
    """``T5EncoderModel`` from a transformers folder."""
    from transformers import T5EncoderModel

    try:
        return T5EncoderModel.from_pretrained(folder, local_files_only=True, dtype=dtype).eval()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the T5 encoder from {folder}: {exc}") from exc


def encoder_kind(folder: Path) -> str:
    """"clip" or "t5" from a text encoder folder's config."""
    cfg = read_json(folder / "config.json")
    arch = " ".join(cfg.get("architectures") or []) + " " + str(cfg.get("model_type", ""))
    if "T5" in arch or "t5" in arch:
        return "t5"
    if "CLIP" in arch or "clip" in arch:
        return "clip"
    raise ModelLoadError(f"{folder}/config.json is neither a CLIP nor a T5 text encoder")


def _parts(folder: Path, dtype: torch.dtype) -> list[tuple[str, Any]]:
    """[(kind, part)] for text_encoder, text_encoder_2, text_encoder_3 in order (those present)."""
    out: list[tuple[str, Any]] = []
    for i, suffix in enumerate(("", "_2", "_3")):
        te = folder / f"text_encoder{suffix}"
        if not (te / "config.json").is_file():
            continue
        tok_dir = folder / f"tokenizer{suffix}"
        kind = encoder_kind(te)
        if kind == "t5":
            out.append((kind, T5Part(load_t5_tokenizer(tok_dir), load_t5_model(te, dtype))))
        else:
            tok = load_tokenizer(tok_dir, "!" if i == 1 else "<|endoftext|>")
            out.append((kind, ClipPart(tok, load_clip_model(te, dtype))))
    return out


def text_encoder_for(folder: Path, arch: str, config: Any, dtype: torch.dtype, device: torch.device,
                     name: str, info: dict[str, Any]) -> Any:
    """The text encoder of a transformer folder, per its architecture (or loom.json's minilm).

    ``config``: the transformer's config (for SD3's T5 width when the folder has no T5).
    """
    if info.get("text_encoder") == "minilm":
        return load_minilm(device)
    parts = _parts(folder, dtype)
    clips = [p for k, p in parts if k == "clip"]
    t5s = [p for k, p in parts if k == "t5"]
    if arch == "sd3":
        if len(clips) < 2:
            raise ModelLoadError(f"{name}: SD3 needs text_encoder (CLIP-L) and text_encoder_2 (CLIP-G); found "
                                 f"{len(clips)} CLIP encoder(s)")
        if not t5s:
            log.info("%s has no T5 encoder (text_encoder_3); its tokens are zeros", name)
        return SD3TextEncoder(clips[0], clips[1], t5s[0] if t5s else None, name,
                              t5_width=int(_get(config, "joint_attention_dim", 4096)))
    if arch == "flux":
        if not clips or not t5s:
            raise ModelLoadError(f"{name}: Flux needs text_encoder (CLIP-L) and text_encoder_2 (T5)")
        return FluxTextEncoder(clips[0], t5s[0], name)
    if not t5s:
        raise ModelLoadError(f"{name}: PixArt needs text_encoder (T5) with its tokenizer")
    return PixArtTextEncoder(t5s[0], name)


def _get(config: Any, key: str, default: Any) -> Any:
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def text_encoder_of_folder(folder: Path, device: torch.device, dtype: torch.dtype, name: str) -> Any:
    """Only the text encoder(s) of a transformer folder (for ``load_text_encoder``), per its config."""
    config = read_json(folder / "transformer" / "config.json")
    arch = TRANSFORMER_CLASSES.get(str(config.get("_class_name", "")))
    if arch is None:
        raise ModelLoadError(f"{name}: transformer/config.json names {config.get('_class_name')!r}, not one of "
                             f"{', '.join(TRANSFORMER_CLASSES)}")
    work = torch.float32 if device.type == "cpu" else dtype
    return text_encoder_for(folder, arch, config, work, device, name, loom_info(folder))


def load_transformer_diffusers(folder: Path, device: torch.device, dtype: torch.dtype, name: str) -> Loaded:
    """Transformer + text encoder(s) + VAE of a diffusers folder (``local_files_only``)."""
    info = loom_info(folder)
    if not (folder / "vae" / "config.json").is_file():
        raise ModelLoadError(f"{name} has no vae/config.json (a diffusers transformer model needs vae/)")
    work = torch.float32 if device.type == "cpu" else dtype
    vae = load_vae_folder(folder / "vae", work, name)
    module = load_transformer(folder / "transformer", work)
    arch = arch_of(module)
    sched = read_json(folder / "scheduler" / "scheduler_config.json") or scheduler_config_for(arch)
    den = TransformerDenoiser(module, sched, arch, name, latent_family=vae.family, downscale=vae.downscale)
    if den.latent_channels != vae.latent_channels:
        raise ModelLoadError(f"{name}: the transformer takes {den.latent_channels}-channel latents but the VAE "
                             f"makes {vae.latent_channels}")
    te = text_encoder_for(folder, arch, module.config, work, device, name, info)
    register_preview(vae.family, info)
    return Loaded(den, te, vae)
