"""Nodes for transformer denoisers (SD3/3.5, Flux, PixArt-Σ, shapes-dit): Flux's distilled
guidance and the flow models' timestep shift. Loading, text encoding and sampling go through
the same nodes as for UNets (load_diffusers_model, text_encode, sample)."""
from __future__ import annotations

import copy
import dataclasses
from typing import Literal

from loom import Input, UserInputError, node
from loom.types import Conditioning, Denoiser

from ._lib.diffusion.conds import map_parts
from ._lib.diffusion.transformer import FLUX_DEFAULT_GUIDANCE, FLUX_GUIDANCE_KEY, TransformerDenoiser


@node(category="conditioning")
def flux_guidance(conditioning: Conditioning,
                  guidance: float = Input(FLUX_DEFAULT_GUIDANCE, ge=0.0, le=100.0, step=0.1,
                                          help="Flux dev's distilled guidance (FluxPipeline's guidance_scale); "
                                               "models without guidance embeddings (schnell) ignore it"),
                  ) -> Conditioning:
    """Set Flux's distilled guidance on a conditioning (default 3.5); use cfg 1 on sample with Flux.

    Flux dev was trained to take the guidance strength as an input instead of running a second,
    negative pass: this value goes to the model, while sample's cfg 1 skips the negative prompt.
    Other models ignore it.
    """
    value = float(guidance)
    return map_parts(conditioning, lambda c: dataclasses.replace(c, extras={**c.extras, FLUX_GUIDANCE_KEY: value}))


@node(category="sampling")
def model_sampling_flow(denoiser: Denoiser,
                        mode: Literal["fixed", "dynamic"] = Input(
                            "fixed", help="fixed: one shift for every size (SD3); dynamic: a shift that grows "
                                          "with the image's token count (Flux)"),
                        shift: float = Input(3.0, ge=0.01, le=100.0, step=0.01,
                                             help="fixed mode: σ' = shift·σ / (1 + (shift − 1)·σ); SD3 uses "
                                                  "3.0, 1 = no shift; higher spends more steps at high noise"),
                        base_shift: float = Input(0.5, ge=0.0, le=10.0, step=0.01,
                                                  help="dynamic mode: log-shift at 256 image tokens"),
                        max_shift: float = Input(1.15, ge=0.0, le=10.0, step=0.01,
                                                 help="dynamic mode: log-shift at 4096 image tokens"),
                        ) -> Denoiser:
    """Override a flow-matching model's timestep shift (its scheduler config's shift / dynamic shift).

    The model's own setting is used when this node is left out. The result shares the model's
    weights; only the schedule the flow schedulers build from it changes.
    """
    if not isinstance(denoiser, TransformerDenoiser) or not denoiser.flow:
        raise UserInputError(f"{getattr(denoiser, 'name', '') or type(denoiser).__name__} is not a flow-matching "
                             "model (SD3, Flux, shapes-dit); the shift applies to flow models only", input="denoiser")
    cfg = dict(denoiser.scheduler_config)
    if mode == "fixed":
        cfg.update(shift=float(shift), use_dynamic_shifting=False)
    else:
        cfg.update(use_dynamic_shifting=True, base_shift=float(base_shift), max_shift=float(max_shift))
        cfg.setdefault("base_image_seq_len", 256)
        cfg.setdefault("max_image_seq_len", 4096)
    out = copy.copy(denoiser)
    out.scheduler_config = cfg
    return out
