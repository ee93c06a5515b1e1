"""Conditioning arithmetic: combine (average the predictions), concat, average, zero out, and
regional prompting with an area or a mask.

Conditionings are frozen: every node returns a new one. Combined parts live in
``extras["parts"]``; area, mask and strength in each part's ``extras`` (see
``_lib/diffusion/conds.py``), read by ``sample`` and ``sample_advanced``.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import torch

from loom import Input, UserInputError, node
from loom.types import Conditioning, Mask

from ._lib.diffusion import conds

log = logging.getLogger(__name__)


def _same_width(a: Conditioning, b: Conditioning, name: str) -> None:
    if a.embeds.shape[-1] != b.embeds.shape[-1]:
        raise UserInputError(f"{name} has {b.embeds.shape[-1]}-dim token states, the other conditioning "
                             f"{a.embeds.shape[-1]} (they come from different text encoders)", input=name)


@node(category="conditioning")
def conditioning_combine(a: Conditioning, b: Conditioning) -> Conditioning:
    """Use both prompts: the sampler predicts with each and averages the predictions."""
    _same_width(a, b, "b")
    return conds.combined([a, b])


@node(category="conditioning")
def conditioning_concat(to: Conditioning, source: Conditioning) -> Conditioning:
    """Append source's tokens to every part of to (one longer prompt; to's pooled output is kept)."""
    _same_width(to, source, "source")
    extra = conds.parts(source)[0]

    def cat(part: Conditioning) -> Conditioning:
        e = extra.embeds.to(part.embeds.dtype)
        if e.shape[0] != part.embeds.shape[0]:
            e = e[:1].expand(part.embeds.shape[0], -1, -1)
        mask = None
        if part.mask is not None or extra.mask is not None:
            m1 = part.mask if part.mask is not None else torch.ones(part.embeds.shape[:2], dtype=torch.long)
            m2 = extra.mask if extra.mask is not None else torch.ones(extra.embeds.shape[:2], dtype=torch.long)
            mask = torch.cat([m1, m2[:1].expand(m1.shape[0], -1).to(m1.dtype)], dim=1)
        return replace(part, embeds=torch.cat([part.embeds, e], dim=1), mask=mask,
                       text=part.text + extra.text)
    return conds.map_parts(to, cat)


@node(category="conditioning")
def conditioning_average(to: Conditioning, source: Conditioning,
                         to_weight: float = Input(0.5, ge=0.0, le=1.0, step=0.01,
                                                  help="1 gives to, 0 gives source")) -> Conditioning:
    """Interpolate token states (and pooled outputs) of every part of to towards source's."""
    _same_width(to, source, "source")
    other = conds.parts(source)[0]

    def avg(part: Conditioning) -> Conditioning:
        a, b = conds.pad_all([part.embeds.float(), other.embeds.float()])
        if b.shape[0] != a.shape[0]:
            b = b[:1].expand_as(a)
        pooled = part.pooled
        if pooled is not None and other.pooled is not None:
            pooled = pooled.float() * to_weight + other.pooled.float().expand_as(pooled) * (1 - to_weight)
        mask = part.mask if a.shape[1] == part.embeds.shape[1] else None
        return replace(part, embeds=a * to_weight + b * (1 - to_weight), pooled=pooled, mask=mask)
    return conds.map_parts(to, avg)


@node(category="conditioning")
def conditioning_zero_out(conditioning: Conditioning) -> Conditioning:
    """Zero token states and pooled output (SDXL's usual empty negative)."""
    def zero(part: Conditioning) -> Conditioning:
        pooled = torch.zeros_like(part.pooled) if part.pooled is not None else None
        return replace(part, embeds=torch.zeros_like(part.embeds), pooled=pooled)
    return conds.map_parts(conditioning, zero)


@node(category="conditioning/regions")
def set_area(conditioning: Conditioning,
             x: int = Input(0, ge=0, le=16384, step=8, help="left edge in pixels"),
             y: int = Input(0, ge=0, le=16384, step=8, help="top edge in pixels"),
             width: int = Input(512, ge=8, le=16384, step=8, help="width in pixels"),
             height: int = Input(512, ge=8, le=16384, step=8, help="height in pixels"),
             strength: float = Input(1.0, ge=0.0, le=10.0, step=0.01,
                                     help="weight against other combined prompts in the box")) -> Conditioning:
    """Limit a prompt to a pixel box (regional prompting: combine it with a prompt for the whole image)."""
    def limit(part: Conditioning) -> Conditioning:
        return replace(part, extras={**part.extras, "area": (x, y, width, height), "strength": float(strength)})
    return conds.map_parts(conditioning, limit)


@node(category="conditioning/regions")
def set_mask(conditioning: Conditioning, mask: Mask,
             strength: float = Input(1.0, ge=0.0, le=10.0, step=0.01,
                                     help="weight against other combined prompts under the mask")) -> Conditioning:
    """Limit a prompt to where a mask is 1 (soft masks weigh it in between)."""
    m = mask.float().clone()
    if m.ndim != 4:
        raise UserInputError(f"mask must be (B, 1, H, W), got shape {tuple(mask.shape)}", input="mask")

    def limit(part: Conditioning) -> Conditioning:
        return replace(part, extras={**part.extras, "mask": m, "strength": float(strength)})
    return conds.map_parts(conditioning, limit)
