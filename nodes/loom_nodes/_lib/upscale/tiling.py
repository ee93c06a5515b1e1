"""Run an image-to-image network tile by tile and blend the tiles back without seams.

Tiles of ``tile`` pixels step by ``tile - overlap``; the last one on each axis is aligned to
the image's end. Where two tiles overlap, each tile's outer quarter of the overlap gets weight
0 (the tile's edge saw no context there) and the middle half is a linear ramp from one tile
to the other. So the result equals running the whole image at once wherever the network's
reach is at most ``overlap / 4`` input pixels, and stays seam-free beyond that.

Weights are products of one weight per axis, and the tiles form a grid, so normalising each
axis's weights to sum to 1 normalises the 2-D weights too: no weight canvas is kept.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def tile_starts(size: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles along one axis (all multiples of ``multiple``); one tile if it fits."""
    if size <= tile:
        return [0]
    step = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def axis_weights(starts: list[int], tile: int, size: int, scale: int) -> list[torch.Tensor]:
    """Per tile, the blend weight of each of its output pixels along this axis (sum 1 over tiles)."""
    length = min(tile, size)
    centres = (torch.arange(length * scale, dtype=torch.float64) + 0.5) / scale  # input px in the tile
    raw = []
    for i, s in enumerate(starts):
        w = torch.ones_like(centres)
        if i > 0:
            ov = starts[i - 1] + length - s
            w = w * ((centres - ov / 4) / (ov / 2)).clamp(0, 1)
        if i + 1 < len(starts):
            ov = s + length - starts[i + 1]
            w = w * ((length - centres - ov / 4) / (ov / 2)).clamp(0, 1)
        raw.append(w)
    total = torch.zeros(size * scale, dtype=torch.float64)
    for s, w in zip(starts, raw):
        total[s * scale:(s + length) * scale] += w
    if float(total.min()) <= 0:
        raise ValueError("tiles leave pixels without weight: make the overlap smaller than half the tile")
    return [(w / total[s * scale:(s + length) * scale]).float() for s, w in zip(starts, raw)]


def run_tiled(net: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, scale: int,
              out_channels: int, tile: int, overlap: int, multiple: int = 1,
              on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """``net`` (a (1, C, h, w) → (1, out_channels, h*scale, w*scale) function) over the image in tiles.

    ``multiple``: the network needs sides divisible by it (pixel-unshuffle); the image is
    padded by repeating its edge to a multiple and the result cropped back. The output is
    assembled on ``image``'s device (the CPU for big images) in float32; ``on_tile(done,
    total)`` is called after each tile (to report progress or stop).
    """
    b, _, h, w = image.shape
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if (ph, pw) != (h, w):
        image = F.pad(image, (0, pw - w, 0, ph - h), mode="replicate")
    tile = max(multiple, tile // multiple * multiple)
    ys, xs = tile_starts(ph, tile, overlap, multiple), tile_starts(pw, tile, overlap, multiple)
    wy, wx = axis_weights(ys, tile, ph, scale), axis_weights(xs, tile, pw, scale)
    th, tw = min(tile, ph), min(tile, pw)
    out = torch.zeros(b, out_channels, ph * scale, pw * scale, dtype=torch.float32, device=image.device)
    total, done = b * len(ys) * len(xs), 0
    for n in range(b):
        for y0, weight_y in zip(ys, wy):
            for x0, weight_x in zip(xs, wx):
                part = net(image[n:n + 1, :, y0:y0 + th, x0:x0 + tw])
                if tuple(part.shape) != (1, out_channels, th * scale, tw * scale):
                    raise ValueError(f"the network turned a {tw}×{th} tile into shape "
                                     f"{tuple(part.shape)}, not ×{scale} with {out_channels} channels")
                weight = (weight_y.view(-1, 1) * weight_x.view(1, -1)).to(part.device)
                region = out[n:n + 1, :, y0 * scale:(y0 + th) * scale, x0 * scale:(x0 + tw) * scale]
                region += (part.float() * weight).to(out.device)
                done += 1
                if on_tile is not None:
                    on_tile(done, total)
    return out[:, :, :h * scale, :w * scale]
