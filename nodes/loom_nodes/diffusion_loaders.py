"""Loaders for diffusion models: diffusers folders, single-file checkpoints, VAEs, text encoders."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple

from loom import Context, Input, UserInputError, file_fingerprint, node
from loom.types import VAE, Denoiser, ModelFile, TextEncoder

from ._lib.diffusion.loading import (Loaded, ModelLoadError, load_diffusers, load_text_encoder_path,
                                     load_vae_path)
from ._lib.diffusion.dit_bundles import is_dit_checkpoint, load_dit_checkpoint_file
from ._lib.diffusion.single_file import load_checkpoint_file


class DiffusionModel(NamedTuple):
    denoiser: Denoiser
    text_encoder: TextEncoder
    vae: VAE


def _fp(**inputs: Any) -> str:
    """Fingerprint of every file input (path + size + mtime) plus the other options."""
    parts = [file_fingerprint(v) if isinstance(v, Path) else repr(v) for _, v in sorted(inputs.items())]
    return "|".join(parts)


class _Source(NamedTuple):
    """Where a model comes from: its model-manager key, and the file and version it was read from."""

    key: str      # ``<path>#<fingerprint of the file and the options>``
    path: str
    version: str  # the file's fingerprint: a newer one replaces every model read from the older


def _source(path: Path, **options: Any) -> _Source:
    """The model-manager key of ``path`` read with ``options``, and the file's version."""
    return _Source(f"{path}#{_fp(file=path, **options)}", str(path), file_fingerprint(path))


def _load(ctx: Context, src: _Source, suffix: str, loader: Callable[[], Any], label: str) -> Any:
    """``ctx.models.load`` under ``src.key + suffix``; models of an older version of the file go."""
    return ctx.models.load(src.key + suffix, loader, label, source=src.path, version=src.version)


def _bundle(ctx: Context, src: _Source, label: str, load: Callable[[], Loaded],
            input_name: str) -> DiffusionModel:
    """Load once per fingerprint; each component is listed on its own in the model manager."""
    cache: dict[str, Loaded] = {}

    def get() -> Loaded:
        if "b" not in cache:
            try:
                cache["b"] = load()
            except ModelLoadError as exc:
                raise UserInputError(str(exc), input=input_name) from exc
        return cache["b"]

    den = _load(ctx, src, "|denoiser", lambda: get().denoiser, f"{label} · denoiser")
    te = _load(ctx, src, "|text_encoder", lambda: get().text_encoder, f"{label} · text encoder")
    vae = _load(ctx, src, "|vae", lambda: get().vae, f"{label} · VAE")
    return DiffusionModel(den, te, vae)


@node(category="loaders", fingerprint=_fp)
def load_diffusers_model(ctx: Context, model: ModelFile["diffusers"]) -> DiffusionModel:
    """Load a diffusers-format model folder (UNet or transformer, text encoders and VAE), local files only.

    Folders with transformer/ load SD3/3.5, Flux and PixArt-Σ (and Loom's shapes-dit).
    """
    path = Path(model)
    return _bundle(ctx, _source(path), path.name,
                   lambda: load_diffusers(path, ctx.device, ctx.dtype, path.name), "model")


@node(category="loaders", fingerprint=_fp)
def load_checkpoint(ctx: Context, checkpoint: ModelFile["checkpoints"],
                    prediction: Literal["auto", "epsilon", "v_prediction"] = Input(
                        "auto", help="what the UNet predicts; auto: epsilon (SD 2.x 768 models: v_prediction)"),
                    ) -> DiffusionModel:
    """Load a single-file checkpoint: SD 1.x / 2.x / SDXL (configs shipped in Loom) or SD3/3.5 all-in-one.

    The family is told from the file's tensors (docs/models-transformers.md).
    """
    path = Path(checkpoint)

    def load() -> Loaded:
        if is_dit_checkpoint(path):
            return load_dit_checkpoint_file(path, ctx.device, ctx.dtype, path.name, ctx.settings.model_roots)
        return load_checkpoint_file(path, ctx.device, ctx.dtype, path.name, prediction)

    return _bundle(ctx, _source(path, prediction=prediction), path.name, load, "checkpoint")


@node(category="loaders", fingerprint=_fp)
def load_vae(ctx: Context, vae: ModelFile["vae"],
             latent_space: Literal["auto", "sd1", "sdxl"] = Input(
                 "auto", help="for single files: SD 1.x/2.x or SDXL scaling; auto guesses from the name"),
             ) -> VAE:
    """Load a VAE from a diffusers folder or an SD single file."""
    path = Path(vae)

    def load() -> Any:
        try:
            return load_vae_path(path, ctx.device, ctx.dtype, path.name, latent_space)
        except ModelLoadError as exc:
            raise UserInputError(str(exc), input="vae") from exc

    return _load(ctx, _source(path, latent_space=latent_space), "", load, f"{path.name} · VAE")


@node(category="loaders", fingerprint=_fp)
def load_text_encoder(ctx: Context, name: ModelFile["text_encoders"]) -> TextEncoder:
    """Load a text encoder: embedded/minilm (offline default), a CLIP folder or a CLIP single file.

    A diffusers folder of SD3, Flux or PixArt-Σ gives its family's encoders (CLIP + T5) without the transformer.
    """
    path = Path(name)

    def load() -> Any:
        try:
            return load_text_encoder_path(path, ctx.device, ctx.dtype, path.name)
        except ModelLoadError as exc:
            raise UserInputError(str(exc), input="name") from exc

    return _load(ctx, _source(path), "", load, f"{path.name} · text encoder")
