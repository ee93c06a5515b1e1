"""LoRAs for transformer denoisers (Flux, SD3) and their text encoders: targets and key conversion.

The diffusers/PEFT layout (``transformer.<module>.lora_A.weight`` / ``lora_B.weight``) names the
diffusers modules directly and needs no conversion. Flux LoRAs in the kohya / sd-scripts layout
(``lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight`` and the like, BFL's block names,
fused q/k/v) are converted with diffusers' own converter
(``diffusers.loaders.lora_conversion_utils._convert_kohya_flux_lora_to_diffusers``, the one
``FluxPipeline.load_lora_weights`` uses), which splits fused layers and folds ``alpha/rank``
into the weights. diffusers 0.42 has no converter for kohya SD3 files, so those are not read.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from .lora import LoraError, Target

log = logging.getLogger(__name__)

Tensors = dict[str, torch.Tensor]


def _is_kohya(keys: list[str]) -> bool:
    return any(k.endswith(".lora_down.weight") and k.startswith(("lora_unet_", "lora_transformer_"))
               for k in keys)


def convert_flux(tensors: Tensors, name: str) -> Tensors:
    """A Flux LoRA's tensors in the diffusers layout (kohya/BFL names converted; others unchanged)."""
    keys = list(tensors)
    if not _is_kohya(keys):
        return tensors
    from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers

    try:
        out = _convert_kohya_flux_lora_to_diffusers(dict(tensors))  # it pops from the dict it gets
    except Exception as exc:  # noqa: BLE001 - diffusers raises ValueError/KeyError/AssertionError
        raise LoraError(f"{name}: not a Flux LoRA in the kohya layout diffusers can convert ({exc})") from exc
    log.info("%s: converted %d kohya Flux keys to %d diffusers keys", name, len(keys), len(out))
    return dict(out)


def refuse_kohya_sd3(tensors: Tensors, name: str) -> Tensors:
    """SD3 LoRAs in the diffusers layout pass; kohya ones (SGM names, no converter) are refused."""
    if any(k.startswith("lora_unet_") for k in tensors):
        raise LoraError(f"{name}: a kohya SD3 LoRA (lora_unet_… keys with SGM block names) is not supported; "
                        "use one in the diffusers layout (transformer.<module>.lora_A.weight)")
    return tensors


def converter_for(denoiser: Any) -> Callable[[Tensors, str], Tensors] | None:
    """The key converter a LoRA for ``denoiser`` goes through before matching (None: none)."""
    arch = getattr(denoiser, "arch", None)
    return convert_flux if arch == "flux" else refuse_kohya_sd3 if arch == "sd3" else None


def stored_in_fp8(module: torch.nn.Module) -> bool:
    """Whether the module keeps weights in an 8-bit float (layerwise casting: fp8 storage)."""
    return any(p.dtype.is_floating_point and p.dtype.itemsize == 1 for p in module.parameters())


def transformer_target(denoiser: Any) -> Target:
    """The LoRA target of a ``TransformerDenoiser``: its diffusers transformer module."""
    return Target("transformer", denoiser.module, ("lora_transformer_",), ("transformer.",))


def transformer_encoder_targets(encoder: Any) -> list[Target] | None:
    """LoRA targets of an SD3 / Flux / PixArt text encoder, named as in the diffusers pipelines
    (SD3: text_encoder = CLIP-L, text_encoder_2 = CLIP-G, text_encoder_3 = T5; Flux: CLIP-L and
    T5 = text_encoder_2; PixArt: T5 = text_encoder); None for another kind of encoder."""
    from .diffusion.transformer_text import FluxTextEncoder, PixArtTextEncoder, SD3TextEncoder

    if isinstance(encoder, SD3TextEncoder):
        parts = [("text_encoder", encoder.clip_l.model), ("text_encoder_2", encoder.clip_g.model)]
        if encoder.t5 is not None:
            parts.append(("text_encoder_3", encoder.t5.model))
    elif isinstance(encoder, FluxTextEncoder):
        parts = [("text_encoder", encoder.clip_l.model), ("text_encoder_2", encoder.t5.model)]
    elif isinstance(encoder, PixArtTextEncoder):
        parts = [("text_encoder", encoder.t5.model)]
    else:
        return None
    return [Target(label, model, (), ()) for label, model in parts]
