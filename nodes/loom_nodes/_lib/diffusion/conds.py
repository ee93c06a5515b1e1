"""Conditionings made of several parts, each with an optional area, mask and strength.

A combined conditioning is one ``Conditioning`` whose ``extras["parts"]`` holds its parts (its
own embeds are the first part's, so code that knows no parts still sees a valid prompt).
A part's ``extras`` may hold ``area`` (x, y, width, height in pixels), ``mask`` (B, 1, H, W,
any resolution, 1 = here) and ``strength``. The sampler predicts with every part and averages
the predictions per latent cell, weighted by strength × area × mask; a cell no part covers
takes the negative's prediction (the guided result is then the negative's there).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from loom.types import Conditioning

REGION_KEYS = ("area", "mask", "strength")


def parts(cond: Conditioning) -> tuple[Conditioning, ...]:
    """The parts of a conditioning (itself when it was not combined)."""
    inner = cond.extras.get("parts")
    return tuple(inner) if inner else (cond,)


def combined(items: list[Conditioning]) -> Conditioning:
    """One conditioning holding ``items``' parts, in order."""
    flat = [p for c in items for p in parts(c)]
    if len(flat) == 1:
        return flat[0]
    first = flat[0]
    return replace(first, extras={**first.extras, "parts": tuple(flat)})


def map_parts(cond: Conditioning, fn: Any) -> Conditioning:
    """Apply ``fn`` to every part of ``cond``; the result keeps the parts' order."""
    return combined([fn(p) for p in parts(cond)])


def has_region(cond: Conditioning) -> bool:
    """Whether a part carries an area, a mask or a strength."""
    return any(k in cond.extras for k in REGION_KEYS)


def pad_all(embeds: list[torch.Tensor]) -> list[torch.Tensor]:
    """Token states (B, T, D) repeated to one common length (the lcm): attention is unchanged."""
    n = math.lcm(*(e.shape[1] for e in embeds))
    return [e if e.shape[1] == n else e.repeat(1, n // e.shape[1], 1) for e in embeds]


def weight_map(cond: Conditioning, batch: int, size: tuple[int, int], down: int) -> torch.Tensor:
    """(B or 1, 1, h, w) weight of one part over a latent of ``size`` cells: strength × area × mask."""
    h, w = size
    out = torch.full((1, 1, h, w), float(cond.extras.get("strength", 1.0)))
    area = cond.extras.get("area")
    if area is not None:
        x, y, aw, ah = (int(v) for v in area)
        box = torch.zeros(1, 1, h, w)
        box[..., y // down:(y + ah + down - 1) // down, x // down:(x + aw + down - 1) // down] = 1
        out = out * box
    mask = cond.extras.get("mask")
    if mask is not None:
        m = mask.float()
        m = m.unsqueeze(1) if m.ndim == 3 else m[:, :1]
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
        if m.shape[0] not in (1, batch):
            raise ValueError(f"a conditioning mask has batch {m.shape[0]} but the latent has {batch}")
        out = out * m
    return out


def mix(preds: list[torch.Tensor], weights: torch.Tensor | None, fallback: torch.Tensor | None) -> torch.Tensor:
    """Average of the parts' predictions per cell, weighted; ``fallback`` where no part weighs.

    One part without weights is returned as it is (the plain CFG path, bit for bit).
    """
    if weights is None:
        if len(preds) == 1:
            return preds[0]
        return torch.stack(preds).mean(0)
    w = weights.to(preds[0].device, preds[0].dtype)
    num = sum(w[i] * p for i, p in enumerate(preds))
    den = w.sum(0)
    avg = num / den.clamp_min(1e-8)
    alt = fallback if fallback is not None else torch.stack(preds).mean(0)
    return torch.where(den > 0, avg, alt)


def expand_batch(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Conditioning tensor ``t`` (batch 1 or ``batch``) for a batch of ``batch`` latents."""
    if t.shape[0] == batch:
        return t
    if t.shape[0] != 1:
        raise ValueError(f"conditioning batch {t.shape[0]} does not match latent batch {batch}")
    return t.expand(batch, *t.shape[1:])
