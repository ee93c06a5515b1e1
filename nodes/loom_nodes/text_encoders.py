"""Prompt encoding: text → Conditioning, with (word:1.3) weighting, long-prompt chunking and
textual-inversion embeddings; CLIP skip; SDXL's size / crop / aesthetic-score conditioning."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

from loom import Context, Input, Settings, UserInputError, node
from loom.types import Conditioning, TextEncoder

from ._lib.diffusion import embeddings
from ._lib.diffusion.components import ClipTextEncoder
from ._lib.diffusion.conds import map_parts
from ._lib.diffusion.sdxl import DEFAULT_AESTHETIC, SDXL_KEY, SizeConditioning

MAX_CLIP_SKIP = 24


def _embedding_fingerprint(*, text: str = "", settings: Settings, **_: Any) -> str:
    """The embedding files the prompt names (path, size, mtime): an edited file encodes again."""
    return embeddings.fingerprint(settings, text)


@node(category="conditioning", fingerprint=_embedding_fingerprint)
def text_encode(ctx: Context, encoder: TextEncoder,
                text: str = Input("", multiline=True,
                                  help="(word:1.3) weights a word, (word) ×1.1, [word] ÷1.1; "
                                       "embedding:name uses models/embeddings/name.safetensors (or .pt); "
                                       "CLIP prompts longer than 75 tokens are encoded in chunks"),
                ) -> Conditioning:
    """Encode a prompt into conditioning for a denoiser (textual inversions as embedding:name)."""
    encode = getattr(encoder, "encode", None)
    if encode is None:
        raise UserInputError(f"{type(encoder).__name__} cannot encode text", input="encoder")
    names = embeddings.references(text)
    if not names:
        return encode(text, ctx.models, ctx.device)
    if not isinstance(encoder, ClipTextEncoder):
        raise UserInputError(f"the prompt names textual-inversion embeddings ({', '.join(names)}) but a "
                             f"{type(encoder).__name__} cannot use them: they need a CLIP text encoder",
                             input="text")
    return encoder.encode(text, ctx.models, ctx.device, embeddings=embeddings.load(ctx.settings, names))


def _depth(encoder: ClipTextEncoder) -> int:
    """How far ``clip_skip`` may go: down to the token embeddings of the shallowest CLIP."""
    return min(int(p.model.config.num_hidden_layers) + (1 if p.layer == "last" else 0) for p in encoder.parts)


@node(category="conditioning")
def clip_set_last_layer(encoder: TextEncoder,
                        clip_skip: int = Input(1, ge=0, le=MAX_CLIP_SKIP,
                                               help="0 or 1: the model's own layer (SD 1.x: the last, SDXL: the "
                                                    "penultimate); 2: one layer earlier (A1111's CLIP skip 2, "
                                                    "ComfyUI's stop_at_clip_layer −2 on SD 1.x) …"),
                        ) -> TextEncoder:
    """Encode prompts with an earlier CLIP layer (CLIP skip); composes with load_lora in either order.

    The output shares the encoder's modules (and LoRA patches); only the layer changes. clip_skip k
    equals diffusers' ``clip_skip = k − 1``: for SD 1.x/2.x the hidden states k layers from the end
    with the final layer norm, for SDXL k − 1 layers below its penultimate layer.
    """
    clip_skip = max(int(clip_skip), 1)
    if clip_skip == getattr(encoder, "clip_skip", 1):
        return encoder
    if not isinstance(encoder, ClipTextEncoder):
        raise UserInputError(f"CLIP skip needs a CLIP text encoder, not a {type(encoder).__name__} "
                             f"({getattr(encoder, 'name', '')})", input="encoder")
    depth = _depth(encoder)
    if clip_skip > depth:
        raise UserInputError(f"clip_skip {clip_skip} is deeper than this text encoder ({depth} at most)",
                             input="clip_skip")
    out = copy.copy(encoder)
    out.clip_skip = clip_skip
    return out


@node(category="conditioning")
def sdxl_conditioning(conditioning: Conditioning,
                      original_width: int = Input(0, ge=0, le=16384, step=8,
                                                  help="the training image's size before cropping; 0: the latent's"),
                      original_height: int = Input(0, ge=0, le=16384, step=8, help="0: the latent's"),
                      crop_left: int = Input(0, ge=0, le=16384, step=8, help="crop offset; 0 = centred, uncropped"),
                      crop_top: int = Input(0, ge=0, le=16384, step=8, help="crop offset"),
                      target_width: int = Input(0, ge=0, le=16384, step=8, help="0: the latent's size"),
                      target_height: int = Input(0, ge=0, le=16384, step=8, help="0: the latent's size"),
                      aesthetic_score: float = Input(DEFAULT_AESTHETIC, ge=0.0, le=10.0, step=0.1,
                                                     help="refiner models only (diffusers' negative: 2.5)"),
                      ) -> Conditioning:
    """Set SDXL's size and crop conditioning (and a refiner's aesthetic score) on a conditioning.

    diffusers' ``original_size``, ``crops_coords_top_left`` and ``target_size`` (heights first
    there). Each side carries its own: diffusers gives the negative the positive's values, so
    put this node on both to match it. Models other than SDXL ignore it.
    """
    def size(w: int, h: int, what: str) -> tuple[int, int] | None:
        if (w == 0) != (h == 0):
            raise UserInputError(f"{what}_width {w} and {what}_height {h}: give both, or 0 for both "
                                 "(the latent's size)", input=f"{what}_width")
        return (int(h), int(w)) if w else None

    value = SizeConditioning(size(original_width, original_height, "original"), (int(crop_top), int(crop_left)),
                             size(target_width, target_height, "target"), float(aesthetic_score))
    return map_parts(conditioning, lambda c: dataclasses.replace(c, extras={**c.extras, SDXL_KEY: value}))
