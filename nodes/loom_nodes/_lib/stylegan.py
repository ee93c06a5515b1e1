"""A StyleGAN2-style generator: mapping network, modulated/demodulated convs, noise inputs.

This is Loom's own compact implementation (equalized learning rate, skip-connected toRGB
outputs, bilinear upsampling instead of the FIR filters of the paper). It is not
state-dict compatible with NVIDIA's pickles (those are pickles, which Loom never loads).
``w_avg`` is a buffer of the mapping network — the running mean of w that training keeps —
used by the truncation trick ``w = w_avg + psi * (w - w_avg)``.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

NOISE_MODES = ("const", "random", "none")


def _check_size(image_size: int) -> int:
    """Number of resolutions from 4x4 up to ``image_size`` (a power of two >= 4)."""
    if not isinstance(image_size, int) or image_size < 4 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 4, got {image_size!r}")
    return int(math.log2(image_size)) - 1


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate (weights scaled at run time)."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul, self.activation = lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Affine map, then leaky ReLU (gain sqrt 2) when ``activation``."""
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(x, 0.2) * math.sqrt(2.0) if self.activation else x


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    """z (+ optional class embedding) → w through an MLP; keeps the running mean ``w_avg``."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int = 8, num_classes: int = 0,
                 lr_mul: float = 0.01, w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes = z_dim, w_dim, num_classes
        self.w_avg_beta = w_avg_beta
        self.embed = EqualLinear(num_classes, z_dim) if num_classes > 0 else None
        dims = [z_dim * (2 if num_classes > 0 else 1)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, activation=True)
                                    for a, b in zip(dims[:-1], dims[1:]))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                update_w_avg: bool = False) -> torch.Tensor:
        """w (B, w_dim) for z (B, z_dim) and class indices (B,) when class-conditional."""
        x = _normalize_2nd_moment(z)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            onehot = F.one_hot(labels.long(), self.num_classes).to(z.dtype)
            x = torch.cat([x, _normalize_2nd_moment(self.embed(onehot))], dim=1)
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        return x


class ModulatedConv2d(nn.Module):
    """Conv whose weights are scaled per sample by a style from w, then (optionally) demodulated."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate, self.upsample, self.padding = demodulate, upsample, kernel_size // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x (B, in, H, W), w (B, w_dim) → (B, out, H', W'), H' = 2H when upsampling."""
        b, cin, h, wd = x.shape
        styles = self.affine(w)                                            # (B, in)
        weight = self.weight[None] * self.scale * styles[:, None, :, None, None]
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            h, wd = h * 2, wd * 2
        cout = weight.shape[1]
        out = F.conv2d(x.reshape(1, b * cin, h, wd), weight.reshape(b * cout, cin, *weight.shape[3:]),
                       padding=self.padding, groups=b)
        return out.reshape(b, cout, h, wd)


class StyledLayer(nn.Module):
    """Modulated 3x3 conv + per-pixel noise (learned strength) + bias + leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, upsample=upsample)
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.resolution = resolution

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """``noise`` is (B, 1, R, R) or None (no noise)."""
        x = self.conv(x, w)
        if noise is not None:
            x = x + noise * self.noise_strength
        return F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * math.sqrt(2.0)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation."""

    def __init__(self, in_channels: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Image-space contribution of this resolution."""
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisNetwork(nn.Module):
    """Learned 4x4 constant → styled layers up to ``image_size`` with skip toRGB outputs."""

    def __init__(self, w_dim: int, image_size: int, channels: int = 3, channel_base: int = 16384,
                 channel_max: int = 512) -> None:
        super().__init__()
        n = _check_size(image_size)
        self.resolutions = [4 * 2 ** i for i in range(n)]
        width = {r: min(channel_base // r, channel_max) for r in self.resolutions}
        if min(width.values()) < 1:
            raise ValueError(f"channel_base {channel_base} is too small for image_size {image_size}")
        self.const = nn.Parameter(torch.randn(width[4], 4, 4))
        self.layers = nn.ModuleList()
        self.torgb = nn.ModuleList()
        prev = width[4]
        for r in self.resolutions:
            if r > 4:
                self.layers.append(StyledLayer(prev, width[r], w_dim, r, upsample=True))
            self.layers.append(StyledLayer(width[r] if r > 4 else prev, width[r], w_dim, r))
            self.torgb.append(ToRGB(width[r], channels, w_dim))
            prev = width[r]
        self.num_ws = len(self.layers) + 1

    def noise_shapes(self) -> list[int]:
        """Side length of the noise map of every styled layer, in order."""
        return [layer.resolution for layer in self.layers]

    def make_noise(self, batch: int, mode: str = "const",
                   generator: torch.Generator | None = None) -> list[torch.Tensor | None]:
        """Noise maps (B, 1, R, R) per layer: the stored constants, fresh draws (CPU), or None."""
        if mode not in NOISE_MODES:
            raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode!r}")
        if mode == "none":
            return [None] * len(self.layers)
        if mode == "const":
            return [layer.noise_const.detach().cpu().expand(batch, 1, -1, -1).clone()
                    for layer in self.layers]
        return [torch.randn(batch, 1, r, r, generator=generator) for r in self.noise_shapes()]

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """ws (B, w_dim) or (B, num_ws, w_dim) → image (B, channels, S, S), roughly in [-1, 1]."""
        if ws.ndim == 2:
            ws = ws[:, None].expand(-1, self.num_ws, -1)
        b = ws.shape[0]
        if noise is None:
            noise = self.make_noise(b, "const")
        x = self.const[None].expand(b, -1, -1, -1)
        img: torch.Tensor | None = None
        li = 0
        for ri, r in enumerate(self.resolutions):
            for _ in range(1 if r == 4 else 2):
                n = noise[li]
                x = self.layers[li](x, ws[:, li], None if n is None else n.to(x))
                li += 1
            y = self.torgb[ri](x, ws[:, li])
            img = y if img is None else F.interpolate(img, scale_factor=2, mode="bilinear",
                                                      align_corners=False) + y
        assert img is not None
        return img


class StyleGANGenerator(nn.Module):
    """Mapping + synthesis; ``forward(z, labels, psi)`` gives images in about [-1, 1]."""

    arch = "stylegan2"

    def __init__(self, z_dim: int = 512, w_dim: int = 512, image_size: int = 256, channels: int = 3,
                 mapping_layers: int = 8, channel_base: int = 16384, channel_max: int = 512,
                 num_classes: int = 0, mapping_lr_mul: float = 0.01,
                 class_names: list[str] | None = None) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.image_size, self.channels = z_dim, w_dim, image_size, channels
        self.mapping_layers, self.channel_base, self.channel_max = mapping_layers, channel_base, channel_max
        self.num_classes, self.mapping_lr_mul = num_classes, mapping_lr_mul
        self.class_names = list(class_names) if class_names else None
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, num_classes, mapping_lr_mul)
        self.synthesis = SynthesisNetwork(w_dim, image_size, channels, channel_base, channel_max)

    @property
    def w_avg(self) -> torch.Tensor:
        """The running mean of w (truncation centre)."""
        return self.mapping.w_avg

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        """w_avg + psi (w - w_avg); psi = 1 leaves w unchanged, psi = 0 gives w_avg."""
        if psi == 1.0:
            return w
        return self.w_avg.to(w).lerp(w, psi) if psi != 0.0 else self.w_avg.to(w).expand_as(w).clone()

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, psi: float = 1.0,
                noise: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Images (B, channels, S, S) from z (B, z_dim)."""
        return self.synthesis(self.truncate(self.mapping(z, labels), psi), noise)

    @torch.no_grad()
    def estimate_w_avg(self, samples: int = 4096, seed: int = 0) -> torch.Tensor:
        """Set ``w_avg`` to the mean w of ``samples`` random z (for files saved without it)."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(samples, self.z_dim, generator=g).to(self.w_avg.device)
        labels = None
        if self.num_classes:
            labels = torch.randint(self.num_classes, (samples,), generator=g).to(z.device)
        w = self.mapping(z, labels).mean(0)
        self.mapping.w_avg.copy_(w)
        return w

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments plus the architecture tag."""
        return {"arch": self.arch, "z_dim": self.z_dim, "w_dim": self.w_dim,
                "image_size": self.image_size, "channels": self.channels,
                "mapping_layers": self.mapping_layers, "channel_base": self.channel_base,
                "channel_max": self.channel_max, "num_classes": self.num_classes,
                "mapping_lr_mul": self.mapping_lr_mul, "class_names": self.class_names}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "StyleGANGenerator":
        """Build from ``config()`` output (unknown keys such as training notes are ignored)."""
        if cfg.get("arch", cls.arch) != cls.arch:
            raise ValueError(f"not a {cls.arch} config: {cfg.get('arch')!r}")
        keys = ("z_dim", "w_dim", "image_size", "channels", "mapping_layers", "channel_base",
                "channel_max", "num_classes", "mapping_lr_mul", "class_names")
        return cls(**{k: cfg[k] for k in keys if k in cfg})
