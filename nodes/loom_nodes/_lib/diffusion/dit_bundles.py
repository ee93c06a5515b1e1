"""Loom's denoiser, text-encoder and VAE wrappers built from transformer-family single files.

What the loader nodes (``loom_nodes.dit_loaders``) and ``load_checkpoint`` call: each function
reads files with ``dit_single_file`` / ``dit_encoders_file`` and wraps the diffusers and
transformers modules in ``TransformerDenoiser``, the family's text encoder and ``DiffusionVAE``.
On the CPU everything computes in float32, elsewhere in the run's dtype.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch

from loom import UserInputError
from loom.types import Conditioning, TextEncoder

from . import dit_configs as cfgs
from .components import ClipPart, DiffusionVAE
from .dit_encoders_file import clip_tokenizer_for, load_text_encoder_file, t5_tokenizer, t5_tokenizer_folders
from .dit_single_file import MARKERS, PREFIXES, load_checkpoint_parts, load_transformer_file, load_vae16_file, \
    read_specs
from .loading import Loaded, ModelLoadError
from .transformer import TransformerDenoiser
from .transformer_text import FluxTextEncoder, PixArtTextEncoder, SD3TextEncoder, T5Part

log = logging.getLogger(__name__)


def work_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """float32 on the CPU, else the run's dtype."""
    return torch.float32 if device.type == "cpu" else dtype


def is_dit_checkpoint(path: Path) -> bool:
    """Whether a ``.safetensors`` file holds an SD3/Flux/PixArt transformer (from its header only).

    Other formats answer False without being read (a pickle has no header to peek at).
    """
    if path.suffix.lower() not in (".safetensors", ".sft"):
        return False
    try:
        keys = set(read_specs(path))
    except ModelLoadError:
        return False
    return any(p + marker in keys for _, _, marker in MARKERS for p in PREFIXES)


def transformer_denoiser(path: Path, device: torch.device, dtype: torch.dtype, name: str,
                         storage: str = "default") -> TransformerDenoiser:
    """The denoiser of a transformer-only file, with its family's published scheduler config."""
    module, family = load_transformer_file(path, work_dtype(device, dtype), storage)
    return TransformerDenoiser(module, cfgs.scheduler_for(family, module.config), family, name)


def text_encoder_module(path: Path, dtype: torch.dtype, kind: str) -> Any:
    module, _ = load_text_encoder_file(path, dtype, kind)
    return module


def t5_part(path: Path, dtype: torch.dtype, roots: Sequence[Path], module: Any = None) -> T5Part:
    tok = t5_tokenizer(t5_tokenizer_folders(path, roots))
    return T5Part(tok, module if module is not None else text_encoder_module(path, dtype, "t5"))


def sd3_text_encoder(clip_l: Path, clip_g: Path, t5: Path | None, device: torch.device, dtype: torch.dtype,
                     name: str, roots: Sequence[Path]) -> SD3TextEncoder:
    """CLIP-L + CLIP-G (+ T5) from three files, as StableDiffusion3Pipeline encodes prompts."""
    work = work_dtype(device, dtype)
    t5_enc = t5_part(t5, work, roots) if t5 is not None else None
    return SD3TextEncoder(ClipPart(clip_tokenizer_for("clip_l"), text_encoder_module(clip_l, work, "clip_l")),
                          ClipPart(clip_tokenizer_for("clip_g"), text_encoder_module(clip_g, work, "clip_g")),
                          t5_enc, name)


def flux_text_encoder(clip_l: Path, t5: Path, device: torch.device, dtype: torch.dtype, name: str,
                      roots: Sequence[Path]) -> FluxTextEncoder:
    """CLIP-L (pooled) + T5 from two files, as FluxPipeline encodes prompts."""
    work = work_dtype(device, dtype)
    t5_enc = t5_part(t5, work, roots)
    clip = ClipPart(clip_tokenizer_for("clip_l"), text_encoder_module(clip_l, work, "clip_l"))
    return FluxTextEncoder(clip, t5_enc, name)


def pixart_text_encoder(t5: Path, device: torch.device, dtype: torch.dtype, name: str,
                        roots: Sequence[Path]) -> PixArtTextEncoder:
    """T5 from one file, as PixArtSigmaPipeline encodes prompts (with the attention mask)."""
    return PixArtTextEncoder(t5_part(t5, work_dtype(device, dtype), roots), name)


def vae_family(path: Path, latent_space: str) -> str:
    """"sd3" or "flux" for a 16-channel VAE file; ``auto`` guesses from the name (flux / ae → flux)."""
    if latent_space != "auto":
        return latent_space
    stem = path.stem.lower()
    return "flux" if "flux" in stem or stem == "ae" or stem.startswith("ae.") else "sd3"


def vae16(path: Path, device: torch.device, dtype: torch.dtype, name: str, latent_space: str = "auto") -> DiffusionVAE:
    """The 16-channel VAE of SD3 or Flux from an LDM-layout file (``ae.safetensors`` …)."""
    family = vae_family(path, latent_space)
    try:
        module = load_vae16_file(path, work_dtype(device, dtype), family)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path.name} is not a loadable SD3/Flux VAE: {exc}") from exc
    return DiffusionVAE(module, name)


class MissingTextEncoder(TextEncoder):
    """Stands for the text encoders a checkpoint does not include; encoding names the loader to use."""

    def __init__(self, name: str, family: str) -> None:
        self.name, self.family = name, family
        self.modules: list[torch.nn.Module] = []

    def encode(self, prompt: str, manager: Any, device: torch.device) -> Conditioning:
        """Always a UserInputError saying which loader gives this model's text encoders."""
        loader = {"sd3": "load_sd3_text_encoders", "flux": "load_flux_text_encoders"}.get(
            self.family, "load_pixart_text_encoder")
        raise UserInputError(f"{self.name} holds no text encoders: load them from models/text_encoders with "
                             f"{loader} and connect its encoder here", input="encoder")


def load_dit_checkpoint_file(path: Path, device: torch.device, dtype: torch.dtype, name: str,
                             roots: Sequence[Path], storage: str = "default") -> Loaded:
    """Denoiser + text encoder + VAE of an SD3/3.5 (or Flux/PixArt) single file, for ``load_checkpoint``.

    All-in-one files (SD3 with CLIP-L, CLIP-G and optionally T5; Flux with CLIP-L and T5) give
    every part; a file without text encoders gives a stand-in whose encoding names the
    text-encoder loader to use; a file without a VAE is an error naming the VAE loader.
    """
    work = work_dtype(device, dtype)
    parts = load_checkpoint_parts(path, work, storage)
    det = parts.detected
    if parts.vae is None:
        raise ModelLoadError(f"{path.name} holds a {det.variant} transformer but no VAE: load it with "
                             "load_diffusion_transformer (models/diffusion_models) and the VAE with load_dit_vae")
    vae = DiffusionVAE(parts.vae, name)
    den = TransformerDenoiser(parts.transformer, parts.scheduler_config, det.family, name,
                              latent_family=vae.family, latent_channels=vae.latent_channels)
    te: Any
    if det.family == "sd3" and parts.clip_l is not None and parts.clip_g is not None:
        t5 = t5_part(path, work, roots, parts.t5) if parts.t5 is not None else None
        te = SD3TextEncoder(ClipPart(clip_tokenizer_for("clip_l"), parts.clip_l),
                            ClipPart(clip_tokenizer_for("clip_g"), parts.clip_g), t5, name,
                            t5_width=int(det.config["joint_attention_dim"]))
        if t5 is None:
            log.info("%s: no T5 in the file; zeros stand in for its tokens (as SD3 without text_encoder_3)", name)
    elif det.family == "flux" and parts.clip_l is not None and parts.t5 is not None:
        te = FluxTextEncoder(ClipPart(clip_tokenizer_for("clip_l"), parts.clip_l),
                             t5_part(path, work, roots, parts.t5), name)
    else:
        te = MissingTextEncoder(name, det.family)
    return Loaded(den, te, vae)
