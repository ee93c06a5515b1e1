"""Text encoders of the transformer families, equal to their diffusers pipelines' ``encode_prompt``.

- ``SD3TextEncoder(clip_l, clip_g, t5)``: both CLIPs' penultimate states (77 tokens) joined
  along the width and zero-padded to T5's width, then T5's states (256 tokens, no mask)
  appended along the tokens; pooled = CLIP-L's and CLIP-G's projected outputs joined. Without
  T5, zeros stand in for its tokens (as StableDiffusion3Pipeline without text_encoder_3).
- ``FluxTextEncoder(clip_l, t5)``: T5's states (512 tokens, no mask); pooled = CLIP-L's pooler
  output.
- ``PixArtTextEncoder(t5)``: T5's states (300 tokens) with their attention mask, which the
  transformer gets too; the prompt is lower-cased and stripped (PixArtSigmaPipeline with
  ``clean_caption=False``).

Parts are built from (tokenizer, module) pairs: ``ClipPart`` (components.py) and ``T5Part``.
(word:1.3) weighting scales token states as for SD; unweighted prompts are tokenized exactly
as the pipelines do.
"""
from __future__ import annotations

import abc

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from loom.types import Conditioning, TextEncoder

from ..patches import applied
from .components import ClipPart, Patchable
from .prompt import apply_weights, is_unweighted, parse_weights, plain_text

SD3_T5_TOKENS = 256
FLUX_T5_TOKENS = 512
PIXART_T5_TOKENS = 300
CLIP_TOKENS = 77


@dataclass
class T5Part:
    """A T5 encoder (``T5EncoderModel``) and its tokenizer."""

    tokenizer: Any
    model: Any


def clip_length(tok: Any) -> int:
    """The CLIP tokenizer's max length (77 unless it says otherwise)."""
    n = int(getattr(tok, "model_max_length", CLIP_TOKENS) or CLIP_TOKENS)
    return CLIP_TOKENS if n > 4096 else n


def tokenize(tok: Any, segments: list[tuple[str, float]], max_length: int, clip: bool,
             text: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, attention mask, weights), each (1, max_length): padded to and truncated at ``max_length``.

    Unweighted prompts go through the tokenizer as the pipelines call it; weighted ones are
    tokenized per segment and get the tokenizer's special tokens (CLIP: start and end; T5: end).
    """
    if is_unweighted(segments):
        enc = tok(plain_text(segments) if text is None else text, padding="max_length", max_length=max_length,
                  truncation=True, return_tensors="pt")
        ids, mask = enc.input_ids, enc.attention_mask
        return ids, mask, torch.ones(ids.shape, dtype=torch.float32)
    ids: list[int] = []
    weights: list[float] = []
    for piece, w in segments:
        got = tok(piece, add_special_tokens=False)["input_ids"] if piece else []
        ids += got
        weights += [w] * len(got)
    room = max_length - (2 if clip else 1)
    ids, weights = ids[:room], weights[:room]
    if clip:
        ids, weights = [tok.bos_token_id] + ids + [tok.eos_token_id], [1.0] + weights + [1.0]
    else:
        ids, weights = ids + [tok.eos_token_id], weights + [1.0]
    n = max_length - len(ids)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return (torch.tensor([ids + [pad] * n]), torch.tensor([[1] * len(ids) + [0] * n]),
            torch.tensor([weights + [1.0] * n]))


def clip_encode(part: ClipPart, segments: list[tuple[str, float]], device: torch.device,
                penultimate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(token states (1, 77, D), pooled (1, P)) of one CLIP: penultimate layer (SD3) or last (Flux).

    Pooled is the projected output for ``CLIPTextModelWithProjection``, else the pooler output.
    """
    ids, _, w = tokenize(part.tokenizer, segments, clip_length(part.tokenizer), clip=True)
    out = part.model(ids.to(device), output_hidden_states=penultimate)
    states = out.hidden_states[-2] if penultimate else out.last_hidden_state
    pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
    return apply_weights(states.float(), w.to(states.device)).cpu(), pooled.float().cpu()


def t5_encode(part: T5Part, segments: list[tuple[str, float]], max_length: int, device: torch.device,
              use_mask: bool, text: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(token states (1, max_length, D), attention mask (1, max_length)) of T5.

    ``use_mask``: pass the attention mask to T5 (PixArt) or not (SD3, Flux).
    """
    ids, mask, w = tokenize(part.tokenizer, segments, max_length, clip=False, text=text)
    out = part.model(ids.to(device), attention_mask=mask.to(device) if use_mask else None)
    states = out[0] if isinstance(out, tuple) else out.last_hidden_state
    return apply_weights(states.float(), w.to(states.device)).cpu(), mask.cpu()


class _Encoder(Patchable, TextEncoder, metaclass=abc.ABCMeta):
    """Shared parts of the transformer-family encoders: each family gives its modules and ``_encode``."""

    family = ""
    name = ""

    @property
    @abc.abstractmethod
    def modules(self) -> list[torch.nn.Module]:
        """The torch modules (for the model manager)."""

    def encode(self, prompt: str, manager: Any, device: torch.device) -> Conditioning:
        """Prompt (with optional weighting syntax) → Conditioning on the CPU."""
        segments = parse_weights(prompt)
        with manager.use(*self.modules), applied(self.patches):
            embeds, pooled, mask = self._encode(segments, device)
        return Conditioning(embeds=embeds, pooled=pooled, mask=mask, family=self.family,
                            text=(plain_text(segments),))

    @abc.abstractmethod
    def _encode(self, segments: list[tuple[str, float]], device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(token states, pooled vector or None, attention mask or None) on the CPU."""


class SD3TextEncoder(_Encoder):
    """SD3/3.5: CLIP-L + CLIP-G (pooled) + T5-XXL, as StableDiffusion3Pipeline encodes prompts.

    ``t5`` None: zeros of ``t5_width`` stand in for T5's tokens.
    """

    family = "sd3"

    def __init__(self, clip_l: ClipPart, clip_g: ClipPart, t5: T5Part | None, name: str = "", *,
                 max_length: int = SD3_T5_TOKENS, t5_width: int = 4096) -> None:
        self.clip_l, self.clip_g, self.t5, self.name = clip_l, clip_g, t5, name
        self.max_length, self.t5_width = int(max_length), int(t5_width)

    @property
    def modules(self) -> list[torch.nn.Module]:
        """The torch modules (for the model manager)."""
        return [self.clip_l.model, self.clip_g.model] + ([self.t5.model] if self.t5 is not None else [])

    def _encode(self, segments: list[tuple[str, float]], device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        h1, p1 = clip_encode(self.clip_l, segments, device, penultimate=True)
        h2, p2 = clip_encode(self.clip_g, segments, device, penultimate=True)
        clip = torch.cat([h1, h2], dim=-1)
        if self.t5 is not None:
            t5, _ = t5_encode(self.t5, segments, self.max_length, device, use_mask=False)
        else:
            t5 = torch.zeros(1, self.max_length, self.t5_width)
        clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return torch.cat([clip, t5], dim=-2), torch.cat([p1, p2], dim=-1), None


class FluxTextEncoder(_Encoder):
    """Flux: T5-XXL token states + CLIP-L's pooled output, as FluxPipeline encodes prompts."""

    family = "flux"

    def __init__(self, clip_l: ClipPart, t5: T5Part, name: str = "", *, max_length: int = FLUX_T5_TOKENS) -> None:
        self.clip_l, self.t5, self.name, self.max_length = clip_l, t5, name, int(max_length)

    @property
    def modules(self) -> list[torch.nn.Module]:
        """The torch modules (for the model manager)."""
        return [self.clip_l.model, self.t5.model]

    def _encode(self, segments: list[tuple[str, float]], device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        _, pooled = clip_encode(self.clip_l, segments, device, penultimate=False)
        states, _ = t5_encode(self.t5, segments, self.max_length, device, use_mask=False)
        return states, pooled, None


class PixArtTextEncoder(_Encoder):
    """PixArt-Σ: T5 token states with their attention mask (300 tokens), as PixArtSigmaPipeline."""

    family = "pixart"

    def __init__(self, t5: T5Part, name: str = "", *, max_length: int = PIXART_T5_TOKENS) -> None:
        self.t5, self.name, self.max_length = t5, name, int(max_length)

    @property
    def modules(self) -> list[torch.nn.Module]:
        """The torch modules (for the model manager)."""
        return [self.t5.model]

    def _encode(self, segments: list[tuple[str, float]], device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        segments = [(t.lower(), w) for t, w in segments]
        text = plain_text(segments).strip()
        states, mask = t5_encode(self.t5, segments, self.max_length, device, use_mask=True, text=text)
        return states, None, mask
