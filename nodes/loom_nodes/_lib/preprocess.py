"""ControlNet hint images that need no model weights: edges, soft edges, line art, scribbles, tiles.

Every function takes an image (B, C, H, W) in [0, 1] and returns a 3-channel hint (B, 3, H, W)
in [0, 1] on the CPU, white lines on black as the ControlNet 1.1 models were trained (line art
may be asked for black on white). Canny and thinning are scikit-image's; the rest is torch.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .filters import dilate, gaussian_blur
from .masks import luminance


def _rgb(grey: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) → (B, 3, H, W) float32 in [0, 1]."""
    return grey.clamp(0, 1).expand(-1, 3, -1, -1).contiguous().float()


def canny(image: torch.Tensor, low: float, high: float, sigma: float = 1.0) -> torch.Tensor:
    """Canny edges of the luminance: 1-pixel white edges where the gradient passes the thresholds.

    ``low``/``high`` are hysteresis thresholds on the gradient magnitude of the [0, 1] image
    (after a Gaussian blur of ``sigma``); a pixel above ``high`` starts an edge, one above
    ``low`` continues it.
    """
    from skimage.feature import canny as sk_canny

    grey = luminance(image.float().cpu())[:, 0].double().numpy()
    out = np.stack([sk_canny(g, sigma=sigma, low_threshold=low, high_threshold=high) for g in grey])
    return _rgb(torch.from_numpy(out.astype(np.float32))[:, None])


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """Scale each image to a maximum of 1 (an all-zero image stays zero)."""
    peak = x.flatten(1).amax(dim=1).clamp(min=1e-8).view(-1, 1, 1, 1)
    return x / peak


def sobel(image: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
    """Soft edges: the Sobel gradient magnitude of the (optionally blurred) luminance, per image 0…1."""
    grey = gaussian_blur(luminance(image.float().cpu()), sigma)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx)
    gy = F.conv2d(padded, kx.transpose(2, 3))
    return _rgb(_normalise(torch.sqrt(gx * gx + gy * gy)))


def difference_of_gaussians(image: torch.Tensor, sigma: float = 1.0, ratio: float = 1.6) -> torch.Tensor:
    """Soft edges: |blur(σ) − blur(ratio·σ)| of the luminance, per image 0…1."""
    grey = luminance(image.float().cpu())
    return _rgb(_normalise((gaussian_blur(grey, sigma) - gaussian_blur(grey, sigma * ratio)).abs()))


def lineart(image: torch.Tensor, low: float, high: float, sigma: float = 1.0, thickness: int = 0,
            black_on_white: bool = False) -> torch.Tensor:
    """Line art from Canny edges: thinned to 1-pixel lines, optionally thickened, optionally inverted."""
    from skimage.morphology import thin

    edges = canny(image, low, high, sigma)[:, :1]
    lines = torch.from_numpy(np.stack([thin(e.numpy() > 0.5) for e in edges[:, 0]]).astype(np.float32))[:, None]
    if thickness > 0:
        lines = dilate(lines, thickness)
    return _rgb(1.0 - lines if black_on_white else lines)


def scribble(image: torch.Tensor, threshold: float = 0.5, dark_strokes: bool = True,
             thickness: int = 1) -> torch.Tensor:
    """A scribble hint: pixels darker (or, ``dark_strokes`` off, brighter) than ``threshold`` become
    white strokes on black, thickened by ``thickness`` pixels."""
    grey = luminance(image.float().cpu())
    strokes = (grey < threshold) if dark_strokes else (grey > threshold)
    return _rgb(dilate(strokes.float(), thickness))


def tile(image: torch.Tensor, factor: float = 4.0, sigma: float = 0.0) -> torch.Tensor:
    """A tile hint: the image shrunk by ``factor`` (area average) and enlarged back (bilinear), then
    blurred by ``sigma``: the colours and layout without the detail."""
    x = image.float().cpu()
    x = x[:, :3] if x.shape[1] >= 3 else x[:, :1].expand(-1, 3, -1, -1)
    h, w = x.shape[-2:]
    small = (max(1, round(h / factor)), max(1, round(w / factor)))
    x = F.interpolate(x, size=small, mode="area")
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return gaussian_blur(x, sigma).clamp(0, 1).contiguous()
