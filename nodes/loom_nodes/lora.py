"""LoRA / LyCORIS loading and model merging, without ever modifying the loaded base models.

``load_lora`` returns new denoiser / text-encoder wrappers that share the base modules and carry
the LoRA as patches (applied by forward hooks while the model runs: see ``_lib/patches.py``);
unlinking the node gives back the untouched base model. ``merge_models`` and
``merge_text_encoders`` build a new module from the inputs' weights (their patches included).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any, Literal, NamedTuple, Optional, cast

import torch

from loom import Context, Input, UserInputError, file_fingerprint, node
from loom.types import Conditioning, Denoiser, ModelFile, TextEncoder

from ._lib.diffusion.components import ClipTextEncoder, DiffusionDenoiser, MiniLMTextEncoder
from ._lib.diffusion.transformer import TransformerDenoiser
from ._lib.lora import LoraError, Target, match, read_lora
from ._lib.lora_transformers import converter_for, stored_in_fp8, transformer_encoder_targets, transformer_target
from ._lib.patches import Patch, effective_state, rebuild

log = logging.getLogger(__name__)


class LoraModels(NamedTuple):
    denoiser: Denoiser
    text_encoder: TextEncoder


class NoTextEncoder(TextEncoder):
    """What ``load_lora`` outputs as its text encoder when none was linked into it."""

    name = "none"

    def encode(self, prompt: str, manager: Any, device: torch.device) -> Conditioning:
        """Always an error: there is no text encoder to encode with."""
        raise UserInputError("this text encoder comes from a load_lora node without a text_encoder "
                             "input: link the model's text encoder into load_lora", input="encoder")


def _lora_fingerprint(lora: Path, **_: Any) -> str:
    """The LoRA file's path, size and modification time (an edited file runs the node again)."""
    return file_fingerprint(lora)


def _denoiser_targets(denoiser: Any) -> list[Target]:
    if isinstance(denoiser, TransformerDenoiser):
        if stored_in_fp8(denoiser.module):
            raise UserInputError(f"{denoiser.name or 'this transformer'} keeps its weights in fp8, which LoRAs do "
                                 "not support yet: load it with weight_dtype 'default'", input="denoiser")
        return [transformer_target(denoiser)]
    if not isinstance(denoiser, DiffusionDenoiser):
        raise UserInputError(f"a LoRA cannot be applied to a {type(denoiser).__name__}", input="denoiser")
    return [Target("unet", denoiser.unet, ("lora_unet_",), ("unet.",))]


def _encoder_targets(encoder: Any) -> list[Target]:
    if encoder is None or isinstance(encoder, NoTextEncoder):
        return []
    if isinstance(encoder, ClipTextEncoder):
        labels = ("text_encoder", "text_encoder_2")
        return [Target(labels[i], p.model, (), ()) for i, p in enumerate(encoder.parts[:2])]
    if isinstance(encoder, MiniLMTextEncoder):
        return [Target("text_encoder", encoder.minilm.model, (), ())]
    targets = transformer_encoder_targets(encoder)
    if targets is not None:
        return targets
    raise UserInputError(f"a LoRA cannot be applied to a {type(encoder).__name__}", input="text_encoder")


@node(category="loaders", fingerprint=_lora_fingerprint)
def load_lora(ctx: Context, denoiser: Denoiser, lora: ModelFile["loras"],  # type: ignore[valid-type]
              strength_model: float = Input(1.0, ge=-4.0, le=4.0, step=0.05,
                                            help="how strongly the LoRA changes the denoiser; 0 = not at all"),
              strength_clip: float = Input(1.0, ge=-4.0, le=4.0, step=0.05,
                                           help="how strongly it changes the text encoder(s)"),
              text_encoder: Optional[TextEncoder] = None) -> LoraModels:
    """Apply a LoRA / LyCORIS (kohya, diffusers or PEFT keys) to a denoiser and its text encoder.

    UNet models (SD 1.x/2.x, SDXL) and transformer models (Flux, SD3; Flux kohya files are
    converted with diffusers' converter) take LoRAs. The outputs are new models sharing the
    loaded weights: the base model is never changed, so removing this node gives the original
    back. Chain several to stack LoRAs.
    """
    path = Path(lora)
    try:
        data = read_lora(path, converter_for(denoiser))
        unet_targets = _denoiser_targets(denoiser)
        te_targets = _encoder_targets(text_encoder)
        found = match(data, unet_targets + te_targets)
    except LoraError as exc:
        raise UserInputError(str(exc), input="lora") from exc
    den_labels = ("unet", "transformer")
    unet_p = [Patch(t.root, n, d, float(strength_model)) for t, n, d in found.layers if t.label in den_labels]
    te_p = [Patch(t.root, n, d, float(strength_clip)) for t, n, d in found.layers if t.label not in den_labels]
    for label, count in found.absent.items():
        log.warning("%s: %d layers for the %s are ignored: none is linked", data.name, count, label)
    log.info("%s: %d denoiser layers (strength %g), %d text-encoder layers (strength %g)",
             data.name, len(unet_p), strength_model, len(te_p), strength_clip)
    den_out: Denoiser = denoiser
    if unet_p and strength_model != 0:
        den_out = cast(DiffusionDenoiser, denoiser).with_patches(tuple(unet_p))  # or a TransformerDenoiser
    if text_encoder is None:
        te_out: TextEncoder = NoTextEncoder()
    elif te_p and strength_clip != 0:
        te_out = text_encoder.with_patches(tuple(te_p))  # type: ignore[attr-defined]
    else:
        te_out = text_encoder
    return LoraModels(den_out, te_out)


# --- merging ---------------------------------------------------------------------------
MergeMode = Literal["weighted_sum", "add_difference"]


def _merge_module(roots: list[torch.nn.Module], patches: list[tuple[Patch, ...]], mode: str, t: float,
                  what: str) -> torch.nn.Module:
    """weighted_sum: a·(1−t) + b·t; add_difference: a + (b − c)·t, parameter by parameter."""
    states = [effective_state(r, p) for r, p in zip(roots, patches)]
    a = states[0]
    for name, other in zip(("b", "c"), states[1:]):
        missing = sorted(set(a) ^ set(other))
        bad = [k for k in a if k in other and other[k].shape != a[k].shape]
        if missing or bad:
            k = (missing or bad)[0]
            detail = (f"{k!r} is in only one of them" if missing else
                      f"{k!r} is {tuple(a[k].shape)} in a but {tuple(other[k].shape)} in {name}")
            raise UserInputError(f"{what} {name} has another architecture than {what} a: {detail}", input=name)
    merged: dict[str, torch.Tensor] = {}
    for k, va in a.items():
        if not va.is_floating_point():
            merged[k] = va
            continue
        fa, fb = va.float(), states[1][k].float()
        if mode == "weighted_sum":
            out = fa * (1.0 - t) + fb * t
        else:
            out = fa + (fb - states[2][k].float()) * t
        merged[k] = out.to(va.dtype)
    return rebuild(roots[0], merged)


def _check_mode(mode: str, c: Any) -> None:
    if mode == "add_difference" and c is None:
        raise UserInputError("add_difference needs a third model c (a + (b − c)·t)", input="c")


@node(category="loaders")
def merge_models(a: Denoiser, b: Denoiser, mode: MergeMode = "weighted_sum",  # type: ignore[valid-type]
                 t: float = Input(0.5, ge=-1.0, le=2.0, step=0.01,
                                  help="weighted_sum: a·(1−t) + b·t; add_difference: a + (b − c)·t"),
                 c: Optional[Denoiser] = None) -> Denoiser:
    """Merge two denoisers of one architecture (weighted sum, or add the difference b − c to a).

    LoRAs applied to the inputs are merged in; the inputs themselves are not changed.
    """
    _check_mode(mode, c)
    dens: list[DiffusionDenoiser] = []
    for name, d in zip("abc", [a, b] + ([c] if mode == "add_difference" else [])):
        if not isinstance(d, DiffusionDenoiser):
            raise UserInputError(f"cannot merge a {type(d).__name__}", input=name)
        dens.append(d)
    if dens[1].family != dens[0].family:
        raise UserInputError(f"b works in the {dens[1].family!r} latent space, a in {dens[0].family!r}",
                             input="b")
    unet = _merge_module([d.unet for d in dens], [d.patches for d in dens], mode, float(t), "denoiser")
    out = copy.copy(dens[0])
    out.unet, out.patches = unet, ()
    out.name = f"merge of {dens[0].name or 'a'} and {dens[1].name or 'b'}"
    return out


def _encoder_modules(enc: Any, name: str) -> list[torch.nn.Module]:
    if isinstance(enc, ClipTextEncoder):
        return [p.model for p in enc.parts]
    if isinstance(enc, MiniLMTextEncoder):
        return [enc.minilm.model]
    raise UserInputError(f"cannot merge a {type(enc).__name__}", input=name)


@node(category="loaders")
def merge_text_encoders(a: TextEncoder, b: TextEncoder, mode: MergeMode = "weighted_sum",  # type: ignore[valid-type]
                        t: float = Input(0.5, ge=-1.0, le=2.0, step=0.01,
                                         help="weighted_sum: a·(1−t) + b·t; add_difference: a + (b − c)·t"),
                        c: Optional[TextEncoder] = None) -> TextEncoder:
    """Merge two text encoders of one architecture (weighted sum, or add the difference b − c to a).

    The tokenizers are a's; LoRAs applied to the inputs are merged in.
    """
    _check_mode(mode, c)
    encs = [a, b] + ([c] if mode == "add_difference" else [])
    mods = [_encoder_modules(e, n) for e, n in zip(encs, "abc")]
    for name, (e, m) in zip("bc", list(zip(encs, mods))[1:]):
        if type(e) is not type(a) or len(m) != len(mods[0]):
            raise UserInputError(f"text encoder {name} ({type(e).__name__}, {len(m)} models) is not of "
                                 f"a's kind ({type(a).__name__}, {len(mods[0])} models)", input=name)
    patches = [getattr(e, "patches", ()) for e in encs]
    merged = [_merge_module([m[i] for m in mods], patches, mode, float(t), "text encoder")
              for i in range(len(mods[0]))]
    out = copy.copy(a)
    out.patches = ()  # type: ignore[attr-defined]
    if isinstance(out, ClipTextEncoder):
        out.parts = [dataclasses.replace(p, model=m) for p, m in zip(out.parts, merged)]
    else:
        out.minilm = copy.copy(out.minilm)  # type: ignore[attr-defined]
        out.minilm.model = merged[0]  # type: ignore[attr-defined]
    out.name = f"merge of {getattr(a, 'name', 'a')} and {getattr(b, 'name', 'b')}"  # type: ignore[attr-defined]
    return out
