"""Image metrics as pure functions: Fréchet distance, an LPIPS-style distance, SSIM, PSNR."""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

log = logging.getLogger(__name__)

PSNR_CAP = 100.0  # dB reported for identical images (the true value is infinite)


def feature_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) in float64 of features (N, D), N >= 2."""
    x = features.detach().double().cpu().numpy()
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D), got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½), the square root by ``scipy.linalg.sqrtm``.

    When the product is singular (fewer samples than dimensions) ``eps`` is added to
    the diagonals; a tiny imaginary part from rounding is dropped.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature statistics differ in shape: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        log.info("singular product of covariances: adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(covmean.imag))
        if imag > 1e-3 * max(1.0, float(np.abs(covmean.real).max())):
            log.warning("sqrtm has a large imaginary part (%g): the FID is approximate", imag)
        covmean = covmean.real
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def fid_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between two sets of feature vectors (N, D), each N >= 2.

    With fewer samples than dimensions the covariances have low rank and
    tr (Σa Σb)^½ equals the nuclear norm of Ca Cbᵀ (C = centred features / √(N−1)):
    the same value, exact, from an N×N SVD instead of a D×D ``sqrtm``. Otherwise the
    statistics go through ``frechet_distance``.
    """
    a = features_a.detach().double().cpu().numpy()
    b = features_b.detach().double().cpu().numpy()
    for x in (a, b):
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"need at least 2 feature vectors (N, D), got shape {x.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    if max(a.shape[0], b.shape[0]) >= a.shape[1]:
        return frechet_distance(*feature_stats(features_a), *feature_stats(features_b))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca = (a - mu_a) / np.sqrt(a.shape[0] - 1)
    cb = (b - mu_b) / np.sqrt(b.shape[0] - 1)
    nuclear = float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + (ca * ca).sum() + (cb * cb).sum() - 2.0 * nuclear)
    return max(value, 0.0)


def unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Scale every position's channel vector to unit length (LPIPS' normalization)."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + eps)


def lpips_style(feats_a: dict[str, torch.Tensor], feats_b: dict[str, torch.Tensor],
                layers: list[str]) -> torch.Tensor:
    """Per-image distance (B,): Σ_layers mean_space Σ_channels (n(a) − n(b))², n = unit_normalize.

    This is LPIPS with every learned channel weight equal to 1 (no calibration data offline).
    """
    total = None
    for n in layers:
        a, b = feats_a[n], feats_b[n]
        d = (unit_normalize(a) - unit_normalize(b)).square().sum(dim=1)
        d = d.mean(dim=tuple(range(1, d.ndim))) if d.ndim > 1 else d
        total = d if total is None else total + d
    if total is None:
        raise ValueError("need at least one layer")
    return total


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalized 1-D Gaussian (size,)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x.square() / (2 * sigma * sigma))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, size: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Per-image SSIM (B,) of (B, C, H, W) images: Gaussian window, channels averaged.

    Matches ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``: local statistics over the positions the whole window fits.
    """
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if min(a.shape[-2:]) < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size} pixels, got "
                         f"{a.shape[-1]}x{a.shape[-2]}")
    c = a.shape[1]
    g = gaussian_window(size, sigma).to(a.device)
    x, y = a.double(), b.double()
    kh = g.view(1, 1, 1, size).expand(c, 1, 1, size)
    kv = g.view(1, 1, size, 1).expand(c, 1, size, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kh, groups=c), kv, groups=c)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).float()


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB (B,); identical images give ``PSNR_CAP``."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    mse = (a.double() - b.double()).square().mean(dim=(1, 2, 3))
    out = torch.full_like(mse, PSNR_CAP)
    nz = mse > 0
    out[nz] = 10.0 * torch.log10(data_range ** 2 / mse[nz])
    return out.clamp(max=PSNR_CAP).float()


def fmt(value: float) -> str:
    """A metric value for display: 4 significant digits."""
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return f"{value:.4g}"
