"""DCGAN-family generator and discriminator, optionally class-conditional, for power-of-two sizes >= 8.

Class conditioning in the generator is either ``"concat"`` (a class embedding appended to z, the
classic conditional DCGAN) or ``"cbn"`` (conditional BatchNorm: every BatchNorm's gain and bias
come from the class, as in SNGAN/BigGAN). The discriminator is a projection discriminator.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import spectral_norm

log = logging.getLogger(__name__)

Conditioning = Literal["concat", "cbn"]
DiscNorm = Literal["batch", "spectral", "none"]


def _levels(image_size: int) -> int:
    """Number of x2 stages between a 4x4 map and `image_size`; validates the size."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return int(math.log2(image_size)) - 2


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine; the per-channel gain and bias are looked up by class label."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Normalize x (B, C, H, W), then scale and shift by the class's gain and bias."""
        return self.bn(x) * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class DCGANGenerator(nn.Module):
    """z (+ class) -> 4x4 -> transposed-conv upsampling with BatchNorm/ReLU -> tanh image in [-1, 1]."""

    def __init__(self, z_dim: int = 128, image_size: int = 64, channels: int = 3, base_channels: int = 32,
                 num_classes: int = 0, embed_dim: int = 32, max_channels: int = 512,
                 class_names: list[str] | None = None, conditioning: Conditioning = "concat") -> None:
        super().__init__()
        if conditioning not in ("concat", "cbn"):
            raise ValueError(f"conditioning must be 'concat' or 'cbn', got {conditioning!r}")
        n = _levels(image_size)
        self.z_dim, self.image_size, self.channels = z_dim, image_size, channels
        self.base_channels, self.num_classes, self.embed_dim = base_channels, num_classes, embed_dim
        self.max_channels, self.conditioning = max_channels, conditioning
        self.class_names = list(class_names) if class_names else None
        cbn = conditioning == "cbn" and num_classes > 0
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 0 and not cbn else None

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, num_classes) if cbn else nn.BatchNorm2d(c)

        width = [min(base_channels * 2 ** (n - 1 - i), max_channels) for i in range(n)]  # at 4x4 .. size/2
        cin = z_dim + (embed_dim if self.embed is not None else 0)
        layers: list[nn.Module] = [nn.ConvTranspose2d(cin, width[0], 4, 1, 0, bias=False), norm(width[0]),
                                   nn.ReLU(True)]
        for a, b in zip(width[:-1], width[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), norm(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(width[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, channels, size, size) in [-1, 1] from z (B, z_dim) and optional class labels (B,)."""
        if self.num_classes > 0:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            labels = labels.long()
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        h = z.view(z.shape[0], -1, 1, 1)
        for layer in self.net:
            h = layer(h, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments plus the architecture tag."""
        return {"arch": "dcgan", "z_dim": self.z_dim, "image_size": self.image_size, "channels": self.channels,
                "base_channels": self.base_channels, "num_classes": self.num_classes,
                "embed_dim": self.embed_dim, "max_channels": self.max_channels, "class_names": self.class_names,
                "conditioning": self.conditioning}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "DCGANGenerator":
        """Build from `config()` output (unknown keys such as training notes are ignored)."""
        keys = ("z_dim", "image_size", "channels", "base_channels", "num_classes", "embed_dim", "max_channels",
                "class_names", "conditioning")
        if cfg.get("arch", "dcgan") != "dcgan":
            raise ValueError(f"not a dcgan config: {cfg.get('arch')!r}")
        return cls(**{k: cfg[k] for k in keys if k in cfg})


class DCGANDiscriminator(nn.Module):
    """Strided convs (BatchNorm, spectral or no norm; LeakyReLU) to 4x4, a linear logit plus a class projection."""

    def __init__(self, image_size: int = 64, channels: int = 3, base_channels: int = 32, num_classes: int = 0,
                 max_channels: int = 512, norm: DiscNorm = "spectral", minibatch_std: bool = False) -> None:
        super().__init__()
        if norm not in ("batch", "spectral", "none"):
            raise ValueError(f"norm must be 'batch', 'spectral' or 'none', got {norm!r}")
        n = _levels(image_size)
        self.image_size, self.channels, self.base_channels = image_size, channels, base_channels
        self.num_classes, self.max_channels, self.norm = num_classes, max_channels, norm
        self.minibatch_std = minibatch_std
        sn = spectral_norm if norm == "spectral" else (lambda m: m)
        width = [min(base_channels * 2 ** i, max_channels) for i in range(n)]  # at size/2 .. 4x4
        layers: list[nn.Module] = [sn(nn.Conv2d(channels, width[0], 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for a, b in zip(width[:-1], width[1:]):
            layers += [sn(nn.Conv2d(a, b, 4, 2, 1, bias=norm != "batch"))]
            layers += [nn.BatchNorm2d(b)] if norm == "batch" else []
            layers += [nn.LeakyReLU(0.2, True)]
        self.net = nn.Sequential(*layers)
        feat = width[-1] * 16 + (16 if minibatch_std else 0)  # + one stddev feature per 4x4 cell
        self.linear = sn(nn.Linear(feat, 1))
        self.embed = sn(nn.Embedding(num_classes, feat)) if num_classes > 0 else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Realness logits (B,) for images in [-1, 1]."""
        h = self.net(images)
        if self.minibatch_std:
            std = h.std(dim=0, unbiased=False).mean(dim=0) if h.shape[0] > 1 else torch.zeros_like(h[0, 0])
            h = torch.cat([h.flatten(1), std.flatten().expand(h.shape[0], -1)], dim=1)
        else:
            h = h.flatten(1)
        out = self.linear(h).squeeze(1)
        if self.embed is not None and labels is not None:
            out = out + (self.embed(labels.long()) * h).sum(1)
        return out

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments plus the architecture tag."""
        return {"arch": "dcgan_discriminator", "image_size": self.image_size, "channels": self.channels,
                "base_channels": self.base_channels, "num_classes": self.num_classes,
                "max_channels": self.max_channels, "norm": self.norm, "minibatch_std": self.minibatch_std}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "DCGANDiscriminator":
        """Build from `config()` output."""
        return cls(**{k: v for k, v in cfg.items() if k != "arch"})
