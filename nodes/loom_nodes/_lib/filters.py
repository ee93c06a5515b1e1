"""Separable Gaussian blur and grey-level morphology with a disk, on (B, C, H, W) tensors.

Pure torch, so they run on whatever device the tensor lives on. The disk dilation is exact
(a flat disk footprint of radius ``r``) and costs O(r) cheap tensor ops per image: each row
of the disk is a horizontal max over a window, read from a sparse table of running maxima
(O(log r) levels), so a radius of 64 on a 1024² mask takes a fraction of a second.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float, dtype: torch.dtype = torch.float32,
                    device: torch.device | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian of standard deviation ``sigma``, truncated at 3 sigma."""
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur every channel of (B, C, H, W) with a Gaussian; edges are replicated, not darkened."""
    if sigma <= 0:
        return x
    k = gaussian_kernel(sigma, x.dtype, x.device)
    r = (k.numel() - 1) // 2
    b, c, h, w = x.shape
    y = x.reshape(b * c, 1, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


def disk_half_widths(radius: int) -> list[int]:
    """For rows dy = -radius..radius, the half width of the disk x² + y² <= radius² (rounded)."""
    return [int(math.floor(math.sqrt(radius * radius - dy * dy) + 0.5)) for dy in range(-radius, radius + 1)]


def dilate(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey dilation of (B, C, H, W) by a flat disk: the max over every pixel within ``radius``.

    Outside the image counts as nothing (-inf), so dilation never pulls values in from the
    border and erosion (``erode``) never eats a mask from the border inwards.
    """
    if radius <= 0:
        return x
    r = int(radius)
    h, w = x.shape[2], x.shape[3]
    xp = F.pad(x, (r, r, r, r), value=float("-inf"))
    levels = [xp]  # levels[j][..., i] = max of xp[..., i : i + 2**j]
    while (1 << len(levels)) <= 2 * r + 1:
        prev, step = levels[-1], 1 << (len(levels) - 1)
        levels.append(torch.maximum(prev[..., :-step], prev[..., step:]))
    out = None
    for dy, half in zip(range(-r, r + 1), disk_half_widths(r)):
        j = (2 * half + 1).bit_length() - 1
        span, table = 1 << j, levels[j]
        rows = slice(r + dy, r + dy + h)
        left = table[:, :, rows, r - half: r - half + w]
        right = table[:, :, rows, r + half - span + 1: r + half - span + 1 + w]
        row_max = torch.maximum(left, right)
        out = row_max if out is None else torch.maximum(out, row_max)
    assert out is not None
    return out


def erode(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey erosion by a flat disk (the min within ``radius``); the outside does not count."""
    return -dilate(-x, radius)
