"""SwinIR (classical, lightweight and real-world super-resolution), and reading its state dicts.

Our own implementation of the network described in "SwinIR: Image Restoration Using Swin
Transformer" (Liang et al., 2021), with the published models' parameter names so their
weights load as they are:

* ``conv_first`` (3×3) → features of ``embed_dim`` channels;
* ``patch_embed.norm`` (LayerNorm over the flattened pixels, when present), then residual Swin
  transformer blocks ``layers.i`` (RSTB): ``residual_group.blocks.j`` — LayerNorm, multi-head
  self-attention inside ``window_size``² windows with a learned relative position bias
  (``attn.relative_position_bias_table``), every odd block on windows shifted by half a
  window (cyclic roll plus a mask so pixels that the roll brought together do not attend to
  each other), LayerNorm, a GELU MLP (``mlp.fc1``/``fc2``) —, then a conv (``conv``: one 3×3,
  or ``conv.0/2/4`` for the "3conv" variant) and the block's input added back;
* ``norm``, ``conv_after_body`` added to the shallow features;
* reconstruction: ``upsample.0`` + pixel shuffle ("pixelshuffledirect", lightweight SR),
  ``conv_before_upsample.0`` + ``upsample.{0,2,..}`` pixel shuffles + ``conv_last``
  ("pixelshuffle", classical SR), or ``conv_before_upsample.0`` + nearest ×2 rounds with
  ``conv_upN`` per doubling, ``conv_hr``, ``conv_last`` ("nearest+conv", real-world SR).

The input is shifted by the training set's mean colour and scaled by ``img_range`` (neither is
stored in the weights: every published model uses range 1 and the DIV2K mean for RGB), and
reflect-padded to a multiple of the window.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

RGB_MEAN = (0.4488, 0.4371, 0.4040)
UPSAMPLERS = ("pixelshuffledirect", "pixelshuffle", "nearest+conv")


class NotSwinIR(ValueError):
    """The state dict is not a SwinIR this module can build."""


@dataclass(frozen=True)
class SwinIRConfig:
    """What a SwinIR state dict says about the network (``img_range`` by convention)."""

    in_ch: int = 3
    embed_dim: int = 60
    depths: tuple[int, ...] = (6, 6, 6, 6)
    num_heads: tuple[int, ...] = (6, 6, 6, 6)
    window_size: int = 8
    mlp_ratio: float = 2.0
    scale: int = 2
    upsampler: str = "pixelshuffledirect"
    num_feat: int = 64
    img_range: float = 1.0
    resi_connection: str = "1conv"
    patch_norm: bool = True
    qkv_bias: bool = True

    @property
    def out_ch(self) -> int:
        """Output channels (SwinIR gives the input's)."""
        return self.in_ch

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this (the window)."""
        return self.window_size


def _partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) → (B·windows, ws·ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _merge(windows: torch.Tensor, ws: int, b: int, h: int, w: int) -> torch.Tensor:
    """The inverse of ``_partition``: (B·windows, ws·ws, C) → (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def relative_index(ws: int) -> torch.Tensor:
    """For each pair of pixels of a window, the row of the bias table for their offset."""
    ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + ws - 1
    dx = xs[:, None] - xs[None, :] + ws - 1
    return dy * (2 * ws - 1) + dx


def shift_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """(windows, ws², ws²): 0 between pixels of one region of the rolled image, −100 across."""
    label = torch.zeros(h, w)
    bands = ((0, h - ws), (h - ws, h - shift), (h - shift, h))
    cols = ((0, w - ws), (w - ws, w - shift), (w - shift, w))
    n = 0
    for y0, y1 in bands:
        for x0, x1 in cols:
            label[y0:y1, x0:x1] = n
            n += 1
    lab = _partition(label.view(1, h, w, 1), ws).squeeze(-1)
    diff = lab[:, None, :] - lab[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a relative position bias per head."""

    def __init__(self, dim: int, heads: int, ws: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads, self.ws = heads, ws
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_index(ws), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.heads, n, n) + mask.to(attn.dtype)[None, :, None]
            attn = attn.view(bw, self.heads, n, n)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class Mlp(nn.Module):
    """Linear, GELU, linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm window attention (shifted by ``shift``) and MLP, each added back."""

    def __init__(self, dim: int, heads: int, ws: int, shift: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.ws, self.shift = ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, ws, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self._masks: dict[tuple[int, int, str], torch.Tensor] = {}

    def _mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._masks:
            if len(self._masks) > 8:
                self._masks.clear()
            self._masks[key] = shift_mask(h, w, self.ws, self.shift).to(device)
        return self._masks[key]

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        mask = None
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
            mask = self._mask(h, w, x.device)
        y = _merge(self.attn(_partition(y, self.ws), mask), self.ws, b, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class BlockGroup(nn.Module):
    """The transformer blocks of one RSTB (``residual_group``), alternately unshifted and shifted."""

    def __init__(self, dim: int, depth: int, heads: int, ws: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SwinBlock(dim, heads, ws, 0 if i % 2 == 0 else ws // 2, mlp_ratio, qkv_bias)
                                    for i in range(depth))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, size)
        return x


def _resi_conv(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(dim // 4, dim // 4, 1),
                         nn.LeakyReLU(0.2), nn.Conv2d(dim // 4, dim, 3, 1, 1))


class RSTB(nn.Module):
    """Residual Swin transformer block: blocks, back to an image, a conv, the input added."""

    def __init__(self, cfg: SwinIRConfig, depth: int, heads: int) -> None:
        super().__init__()
        self.residual_group = BlockGroup(cfg.embed_dim, depth, heads, cfg.window_size, cfg.mlp_ratio, cfg.qkv_bias)
        self.conv = _resi_conv(cfg.embed_dim, cfg.resi_connection)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = self.residual_group(x, size)
        b, _, c = y.shape
        y = self.conv(y.transpose(1, 2).reshape(b, c, *size))
        return y.flatten(2).transpose(1, 2) + x


class PatchNorm(nn.Module):
    """``patch_embed``: the LayerNorm applied to the flattened features (when the model has one)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class SwinIR(nn.Module):
    """SwinIR super-resolution; input and output in [0, 1], (B, C, H, W) → (B, C, H·s, W·s)."""

    def __init__(self, cfg: SwinIRConfig) -> None:
        super().__init__()
        if cfg.upsampler not in UPSAMPLERS:
            raise ValueError(f"unknown SwinIR upsampler {cfg.upsampler!r}")
        self.cfg = cfg
        self.scale = cfg.scale
        dim, nf = cfg.embed_dim, cfg.num_feat
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if cfg.in_ch == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.conv_first = nn.Conv2d(cfg.in_ch, dim, 3, 1, 1)
        if cfg.patch_norm:
            self.patch_embed = PatchNorm(dim)
        self.layers = nn.ModuleList(RSTB(cfg, d, h) for d, h in zip(cfg.depths, cfg.num_heads))
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = _resi_conv(dim, cfg.resi_connection)
        s, out = cfg.scale, cfg.out_ch
        if cfg.upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(dim, s * s * out, 3, 1, 1), nn.PixelShuffle(s))
            return
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(dim, nf, 3, 1, 1), nn.LeakyReLU(0.01))
        if cfg.upsampler == "pixelshuffle":
            steps: list[nn.Module] = []
            if s == 3:
                steps += [nn.Conv2d(nf, 9 * nf, 3, 1, 1), nn.PixelShuffle(3)]
            else:
                for _ in range(int(math.log2(s))):
                    steps += [nn.Conv2d(nf, 4 * nf, 3, 1, 1), nn.PixelShuffle(2)]
            self.upsample = nn.Sequential(*steps)
        else:  # nearest+conv: one nearest ×2 + conv per doubling (×2, ×4, ×8)
            for i in range(int(math.log2(s))):
                setattr(self, f"conv_up{i + 1}", nn.Conv2d(nf, nf, 3, 1, 1))
            self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, out, 3, 1, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The deep features: RSTBs over the flattened shallow features, normalised."""
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        if self.cfg.patch_norm:
            t = self.patch_embed.norm(t)
        for layer in self.layers:
            t = layer(t, (h, w))
        return self.norm(t).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ws = self.cfg.window_size
        ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        x = (x - self.mean) * self.cfg.img_range
        feat = self.conv_first(x)
        feat = self.conv_after_body(self.features(feat)) + feat
        if self.cfg.upsampler == "pixelshuffledirect":
            y = self.upsample(feat)
        elif self.cfg.upsampler == "pixelshuffle":
            y = self.conv_last(self.upsample(self.conv_before_upsample(feat)))
        else:
            y = self.conv_before_upsample(feat)
            for i in range(int(math.log2(self.scale))):
                conv = getattr(self, f"conv_up{i + 1}")
                y = F.leaky_relu(conv(F.interpolate(y, scale_factor=2.0, mode="nearest")), 0.2)
            y = self.conv_last(F.leaky_relu(self.conv_hr(y), 0.2))
        y = y / self.cfg.img_range + self.mean
        return y[..., :h * self.scale, :w * self.scale]


_DERIVED = re.compile(r".*\.(attn_mask|relative_position_index)$")  # buffers the published files carry


def is_swinir(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict has SwinIR's transformer layers."""
    return any(k.startswith("layers.0.residual_group.blocks.0.") for k in state)


def detect(state: dict[str, torch.Tensor]) -> SwinIRConfig:
    """The configuration of a SwinIR state dict: channels, depths, heads, window, MLP ratio, scale."""
    shape = {k: tuple(v.shape) for k, v in state.items() if not _DERIVED.fullmatch(k)}
    if "absolute_pos_embed" in shape:
        raise NotSwinIR("SwinIR with an absolute position embedding (tied to its training size) is not supported")
    try:
        dim, cin = shape["conv_first.weight"][:2]
        layers = sorted({int(m.group(1)) for k in shape if (m := re.match(r"layers\.(\d+)\.", k))})
        depths, heads = [], []
        for i in layers:
            pattern = re.compile(rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.")
            blocks = {int(m.group(1)) for k in shape if (m := pattern.match(k))}
            depths.append(len(blocks))
            heads.append(shape[f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"][1])
        table = shape["layers.0.residual_group.blocks.0.attn.relative_position_bias_table"][0]
        hidden = shape["layers.0.residual_group.blocks.0.mlp.fc1.weight"][0]
    except KeyError as exc:
        raise NotSwinIR(f"SwinIR state dict has no {exc.args[0]!r}") from None
    ws = (math.isqrt(table) + 1) // 2
    if (2 * ws - 1) ** 2 != table or layers != list(range(len(layers))):
        raise NotSwinIR(f"unrecognised SwinIR layout: bias table of {table} rows, layers {layers[:8]}")
    num_feat = 64
    if "upsample.0.weight" in shape and "conv_before_upsample.0.weight" not in shape:
        upsampler, scale = "pixelshuffledirect", math.isqrt(shape["upsample.0.weight"][0] // cin)
    elif "conv_up1.weight" in shape:
        ups = sum(1 for k in shape if re.fullmatch(r"conv_up\d+\.weight", k))
        upsampler, scale, num_feat = "nearest+conv", 2 ** ups, shape["conv_up1.weight"][0]
    elif "conv_before_upsample.0.weight" in shape:
        num_feat = shape["conv_before_upsample.0.weight"][0]
        convs = [k for k in shape if re.fullmatch(r"upsample\.\d+\.weight", k)]
        first = shape.get("upsample.0.weight", (0,))[0]
        upsampler, scale = "pixelshuffle", 3 if first == 9 * num_feat else 2 ** len(convs)
    else:
        raise NotSwinIR("SwinIR without an upsampler (denoising / JPEG models) is not supported")
    resi = "3conv" if "conv_after_body.0.weight" in shape else "1conv"
    cfg = SwinIRConfig(in_ch=int(cin), embed_dim=int(dim), depths=tuple(depths),
                       num_heads=tuple(int(h) for h in heads), window_size=ws, mlp_ratio=hidden / dim,
                       scale=int(scale), upsampler=upsampler, num_feat=int(num_feat), resi_connection=resi,
                       patch_norm="patch_embed.norm.weight" in shape,
                       qkv_bias="layers.0.residual_group.blocks.0.attn.qkv.bias" in shape)
    if scale < 1 or dim % max(cfg.num_heads) or cin not in (1, 3):
        raise NotSwinIR(f"unrecognised SwinIR layout: {cfg}")
    return cfg


def build(state: dict[str, torch.Tensor]) -> SwinIR:
    """A SwinIR in eval mode with the weights of ``state`` (derived buffers in the file are ignored)."""
    cfg = detect(state)
    net = SwinIR(cfg)
    weights = {k: v for k, v in state.items() if not _DERIVED.fullmatch(k)}
    try:
        missing, unexpected = net.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise NotSwinIR(f"weights do not fit the detected SwinIR {cfg}: {exc}") from None
    if missing or unexpected:
        raise NotSwinIR(f"weights do not fit the detected SwinIR {cfg} (missing: {missing[:4]}, "
                        f"unexpected: {unexpected[:4]})")
    return net.eval().requires_grad_(False)
