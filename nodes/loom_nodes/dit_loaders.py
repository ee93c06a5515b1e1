"""Loaders for transformer models from the single files users have: SD3/3.5, Flux, PixArt-Σ.

The transformer goes in models/diffusion_models, the text encoders (CLIP-L, CLIP-G, T5-XXL) in
models/text_encoders, the 16-channel VAE in models/vae; all-in-one SD3 checkpoints load with
``load_checkpoint``. Families, layouts and storage dtypes are detected from the tensors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, TypeVar

from loom import Context, Input, UserInputError, file_fingerprint, node
from loom.types import VAE, Denoiser, ModelFile, TextEncoder

from ._lib.diffusion import dit_bundles as bundles
from ._lib.diffusion.components import ClipPart
from ._lib.diffusion.dit_encoders_file import clip_tokenizer_for
from ._lib.diffusion.loading import ModelLoadError
from ._lib.diffusion.transformer_text import FluxTextEncoder, PixArtTextEncoder, SD3TextEncoder

T = TypeVar("T")
Storage = Literal["default", "fp8_e4m3fn", "fp8_e5m2"]


def _fp(**inputs: Any) -> str:
    """Fingerprint of every file input (path + size + mtime) plus the other options."""
    return "|".join(file_fingerprint(v) if isinstance(v, Path) else repr(v) for _, v in sorted(inputs.items()))


def _guard(input_name: str, load: Callable[[], T]) -> T:
    """``load()``, with a model-loading error reported against ``input_name``."""
    try:
        return load()
    except ModelLoadError as exc:
        raise UserInputError(str(exc), input=input_name) from exc


def _managed(ctx: Context, paths: list[Path], options: dict[str, Any], load: Callable[[], Any], label: str) -> Any:
    """Load once per file versions and options through the model manager (an edited file reloads)."""
    source = "|".join(str(p) for p in paths)
    version = "|".join(file_fingerprint(p) for p in paths)
    key = f"{source}#{version}|{sorted(options.items())!r}"
    return ctx.models.load(key, load, label, source=source, version=version)


@node(category="loaders", fingerprint=_fp)
def load_diffusion_transformer(ctx: Context, model: ModelFile["diffusion_models"],
                               weight_dtype: Storage = Input(
                                   "default", help="default: the run's dtype (fp8 files are cast on load); "
                                                   "fp8_*: keep the weights in fp8 (half the memory of bf16), "
                                                   "each layer cast up for its forward")) -> Denoiser:
    """Load an SD3/3.5, Flux (dev/schnell) or PixArt-Σ transformer file; the family is detected.

    Original layouts (Stability's, Black Forest Labs', PixArt's) and diffusers' are read, stored
    as fp32, bf16, fp16 or fp8. Pair it with the family's text encoders and its VAE.
    """
    path = Path(model)

    def load() -> Any:
        return _guard("model", lambda: bundles.transformer_denoiser(path, ctx.device, ctx.dtype, path.name,
                                                                    weight_dtype))

    return _managed(ctx, [path], {"storage": weight_dtype}, load, f"{path.name} · transformer")


def _clip(ctx: Context, path: Path, kind: str, input_name: str) -> ClipPart:
    work = bundles.work_dtype(ctx.device, ctx.dtype)
    return _guard(input_name, lambda: ClipPart(clip_tokenizer_for(kind), bundles.text_encoder_module(path, work, kind)))


def _t5(ctx: Context, path: Path) -> Any:
    work = bundles.work_dtype(ctx.device, ctx.dtype)
    return _guard("t5", lambda: bundles.t5_part(path, work, ctx.settings.model_roots))


@node(category="loaders", fingerprint=_fp)
def load_sd3_text_encoders(ctx: Context, clip_l: ModelFile["text_encoders"], clip_g: ModelFile["text_encoders"],
                           t5: ModelFile["text_encoders"]) -> TextEncoder:
    """Load SD3/3.5's three text encoders (CLIP-L, CLIP-G, T5-XXL) from separate files.

    T5 may be stored in fp16, bf16 or fp8; its tokenizer is read from models/tokenizers/t5/.
    """
    paths = [Path(clip_l), Path(clip_g), Path(t5)]

    def load() -> SD3TextEncoder:
        return SD3TextEncoder(_clip(ctx, paths[0], "clip_l", "clip_l"), _clip(ctx, paths[1], "clip_g", "clip_g"),
                              _t5(ctx, paths[2]), "SD3 text encoders")

    return _managed(ctx, paths, {}, load, "SD3 text encoders · " + " + ".join(p.name for p in paths))


@node(category="loaders", fingerprint=_fp)
def load_flux_text_encoders(ctx: Context, clip_l: ModelFile["text_encoders"],
                            t5: ModelFile["text_encoders"]) -> TextEncoder:
    """Load Flux's two text encoders (CLIP-L for the pooled vector, T5-XXL for the tokens)."""
    paths = [Path(clip_l), Path(t5)]

    def load() -> FluxTextEncoder:
        return FluxTextEncoder(_clip(ctx, paths[0], "clip_l", "clip_l"), _t5(ctx, paths[1]), "Flux text encoders")

    return _managed(ctx, paths, {}, load, "Flux text encoders · " + " + ".join(p.name for p in paths))


@node(category="loaders", fingerprint=_fp)
def load_pixart_text_encoder(ctx: Context, t5: ModelFile["text_encoders"]) -> TextEncoder:
    """Load PixArt-Σ's text encoder (T5-XXL, 300 tokens with their attention mask)."""
    path = Path(t5)
    return _managed(ctx, [path], {}, lambda: PixArtTextEncoder(_t5(ctx, path), "PixArt text encoder"),
                    f"{path.name} · PixArt text encoder")


@node(category="loaders", fingerprint=_fp)
def load_dit_vae(ctx: Context, vae: ModelFile["vae"],
                 latent_space: Literal["auto", "sd3", "flux"] = Input(
                     "auto", help="whose latent scaling: auto reads the name (flux…, ae.safetensors → flux; "
                                  "else sd3)")) -> VAE:
    """Load the 16-channel VAE of SD3/3.5 or Flux (e.g. ae.safetensors) from a single file."""
    path = Path(vae)
    return _managed(ctx, [path], {"latent_space": latent_space},
                    lambda: _guard("vae", lambda: bundles.vae16(path, ctx.device, ctx.dtype, path.name, latent_space)),
                    f"{path.name} · VAE")
