"""Running an image-to-image function tile by tile with feathered overlaps (VAE tiling)."""
from __future__ import annotations

from typing import Callable

import torch


def _starts(n: int, tile: int, stride: int) -> list[int]:
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile + 1, stride))
    if starts[-1] + tile < n:
        starts.append(n - tile)
    return starts


def _ramp(n: int, r: int) -> torch.Tensor:
    w = torch.ones(n)
    r = min(r, n // 2)
    if r > 0:
        edge = torch.linspace(1.0 / (r + 1), 1.0, r)
        w[:r] = edge
        w[n - r:] = edge.flip(0)
    return w


def tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int,
          scale: float) -> torch.Tensor:
    """``fn`` applied to overlapping ``tile``×``tile`` crops of ``x`` (B, C, H, W), blended.

    ``scale`` is the output/input size ratio of ``fn`` (8 for a VAE decoder, 1/8 for an
    encoder). ``tile <= 0`` or an input that fits in one tile calls ``fn`` once.
    """
    _, _, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(x)
    overlap = max(0, min(overlap, tile // 2))
    stride = tile - overlap
    out: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    for y0 in _starts(h, tile, stride):
        for x0 in _starts(w, tile, stride):
            part = fn(x[..., y0:y0 + tile, x0:x0 + tile])
            oy, ox = int(round(y0 * scale)), int(round(x0 * scale))
            ph, pw = part.shape[-2:]
            if out is None:
                out = torch.zeros(part.shape[0], part.shape[1], int(round(h * scale)),
                                  int(round(w * scale)), dtype=torch.float32, device=part.device)
                weight = torch.zeros(1, 1, out.shape[2], out.shape[3], device=part.device)
            r = int(round(overlap * scale))
            m = (_ramp(ph, r)[:, None] * _ramp(pw, r)[None, :]).to(part.device)
            out[..., oy:oy + ph, ox:ox + pw] += part.float() * m
            weight[..., oy:oy + ph, ox:ox + pw] += m  # type: ignore[index]
    assert out is not None and weight is not None
    return out / weight.clamp(min=1e-6)
