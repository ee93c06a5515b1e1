"""Mask math on torch tensors: Image (B, C, H, W) and Mask (B, 1, H, W), values in [0, 1].

No Loom imports: the nodes in ``loom_nodes.masks`` check their inputs and call these.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .filters import dilate, erode, gaussian_blur

LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709 luminance weights


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luminance of an RGB(A) image (Rec. 709 weights); a grey image as it is."""
    if image.shape[1] < 3:
        return image[:, :1].clone()
    w = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image[:, :3] * w).sum(dim=1, keepdim=True).clamp(0, 1)


def color_distance(image: torch.Tensor, rgb: tuple[float, float, float]) -> torch.Tensor:
    """(B, 1, H, W) largest per-channel difference between each pixel and the colour."""
    rgb_image = image[:, :3] if image.shape[1] >= 3 else image[:, :1].expand(-1, 3, -1, -1)
    target = torch.tensor(rgb, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (rgb_image - target).abs().amax(dim=1, keepdim=True)


def grow(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilate by a disk of ``radius`` pixels; a negative radius erodes (shrinks) instead."""
    if radius > 0:
        return dilate(mask, radius)
    if radius < 0:
        return erode(mask, -radius)
    return mask


def feather(mask: torch.Tensor, radius: float) -> torch.Tensor:
    """Soften edges with a Gaussian whose 3-sigma reach is ``radius`` pixels."""
    if radius <= 0:
        return mask
    return gaussian_blur(mask, radius / 3.0).clamp(0, 1)


def combine(a: torch.Tensor, b: torch.Tensor, op: str) -> torch.Tensor:
    """Pixel-wise ``add``, ``subtract`` (a - b), ``multiply``, ``max`` or ``min``, in [0, 1]."""
    if op == "add":
        return (a + b).clamp(0, 1)
    if op == "subtract":
        return (a - b).clamp(0, 1)
    if op == "multiply":
        return a * b
    if op == "max":
        return torch.maximum(a, b)
    if op == "min":
        return torch.minimum(a, b)
    raise ValueError(f"unknown operation {op!r}")


def bounds(mask: torch.Tensor, above: float = 0.0) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) of the pixels above ``above`` in any image of the batch, or None."""
    hit = (mask > above).any(dim=0)[0]
    rows = torch.nonzero(hit.any(dim=1)).flatten()
    cols = torch.nonzero(hit.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return x0, y0, x1 - x0, y1 - y0


def _grow_span(start: int, size: int, want: int, limit: int) -> tuple[int, int]:
    """Widen [start, start+size) to ``want`` (clamped to ``limit``) around its centre, inside [0, limit)."""
    want = min(want, limit)
    extra = want - size
    start = start - extra // 2
    start = max(0, min(start, limit - want))
    return start, want


def pad_box(box: tuple[int, int, int, int], padding: int, multiple: int,
            width: int, height: int) -> tuple[int, int, int, int]:
    """The box grown by ``padding`` on each side and up to a multiple of ``multiple``, kept in the image."""
    x, y, w, h = box
    x0, y0 = max(0, x - padding), max(0, y - padding)
    x1, y1 = min(width, x + w + padding), min(height, y + h + padding)
    w, h = x1 - x0, y1 - y0
    if multiple > 1:
        x0, w = _grow_span(x0, w, -(-w // multiple) * multiple, width)
        y0, h = _grow_span(y0, h, -(-h // multiple) * multiple, height)
    return x0, y0, w, h


def match_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey → RGB(A) by repeating, RGBA → RGB by dropping alpha, RGB → RGBA with alpha 1."""
    c = image.shape[1]
    if c == channels:
        return image
    if c == 1:
        out = image.expand(-1, min(channels, 3), -1, -1)
    else:
        out = image[:, :3]
    if channels == 4:
        out = torch.cat([out, torch.ones_like(image[:, :1])], dim=1)
    elif channels == 1:
        out = luminance(out)
    return out


def composite(destination: torch.Tensor, source: torch.Tensor, mask: torch.Tensor,
              x: int, y: int) -> torch.Tensor:
    """``source`` pasted at (x, y) into ``destination``, weighted by ``mask`` (source-sized).

    Batches must already broadcast and channels match; the source must fit inside. Pixels
    where the mask is 0 keep the destination's exact values.
    """
    h, w = source.shape[2], source.shape[3]
    batch = max(destination.shape[0], source.shape[0], mask.shape[0])
    out = destination.expand(batch, -1, -1, -1).clone()
    region = out[:, :, y:y + h, x:x + w]
    m = mask.to(out.dtype)
    out[:, :, y:y + h, x:x + w] = region * (1 - m) + source.to(out.dtype) * m
    return out


def outpaint_pad(image: torch.Tensor, left: int, top: int, right: int, bottom: int,
                 feathering: int, fill: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Image padded on each side and a mask: 1 over the new area, fading into the old edges.

    ``fill``: ``gray`` (0.5), ``black``, ``white``, ``edge`` (repeat the border pixels).
    Inside the original image the mask falls from 1 at a padded side to 0 at ``feathering``
    pixels from it (quadratically), so the sampler may blend the seam.
    """
    b, c, h, w = image.shape
    pads = (left, right, top, bottom)
    if fill == "edge":
        padded = F.pad(image, pads, mode="replicate")
    else:
        value = {"gray": 0.5, "black": 0.0, "white": 1.0}[fill]
        padded = F.pad(image, pads, value=value)
    mask = torch.ones(b, 1, h + top + bottom, w + left + right, dtype=image.dtype, device=image.device)
    inner = torch.zeros(1, 1, h, w, dtype=image.dtype, device=image.device)
    if feathering > 0:
        ys = torch.arange(h, dtype=image.dtype, device=image.device).view(h, 1)
        xs = torch.arange(w, dtype=image.dtype, device=image.device).view(1, w)
        big = float(h + w)
        dist = torch.full((h, w), big, dtype=image.dtype, device=image.device)
        for pad, d in ((left, xs), (right, w - 1 - xs), (top, ys), (bottom, h - 1 - ys)):
            if pad > 0:
                dist = torch.minimum(dist, d.expand(h, w))
        inner[0, 0] = ((feathering - dist).clamp(min=0) / feathering) ** 2
    mask[:, :, top:top + h, left:left + w] = inner
    return padded, mask
