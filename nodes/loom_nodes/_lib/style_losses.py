"""Neural style transfer losses as pure functions: Gram matrices, content, style and TV losses.

Content and style losses are *relative*: each layer's squared error is divided by the
energy of its target, so a loss of 1 means "as far as the target is from zero", layers
count equally, and the same weights work for every feature network.
"""
from __future__ import annotations

import torch

EPS = 1e-8


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) activations → (B, C, C) Gram matrices averaged over positions."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / float(h * w)


def mixed_gram(grams: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Weighted average of (1, C, C) or (C, C) Gram matrices: the target of a style mixture."""
    if not grams or len(grams) != len(weights):
        raise ValueError("need one weight per Gram matrix and at least one")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("style weights must sum to more than 0")
    out = sum(g.reshape(g.shape[-2:]) * (w / total) for g, w in zip(grams, weights))
    return out  # type: ignore[return-value]


def content_loss(features: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                 layers: list[str]) -> torch.Tensor:
    """Mean over layers of ‖F − T‖² / ‖T‖² (per-element means)."""
    terms = [(features[n] - targets[n]).square().mean() / (targets[n].square().mean() + EPS)
             for n in layers]
    return torch.stack(terms).mean()


def style_loss(features: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor],
               layers: list[str]) -> torch.Tensor:
    """Mean over layers of ‖G(F) − G_target‖² / ‖G_target‖² (Gram targets broadcast over the batch)."""
    terms = []
    for n in layers:
        g, t = gram(features[n]), target_grams[n]
        terms.append((g - t).square().mean() / (t.square().mean() + EPS))
    return torch.stack(terms).mean()


def tv_loss(images: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference between neighbouring pixels (both directions)."""
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]
    return dx.square().mean() + dy.square().mean()
