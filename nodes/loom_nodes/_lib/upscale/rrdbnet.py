"""RRDBNet, the generator of ESRGAN and Real-ESRGAN, and reading its state dicts.

The network: a 3×3 conv, ``num_block`` residual-in-residual dense blocks (three 5-conv dense
blocks each, residuals scaled by 0.2), a trunk conv added back to the first features, then
``n_up`` rounds of (nearest ×2, conv, LeakyReLU), a conv, LeakyReLU and the output conv.
Real-ESRGAN's ×2 and ×1 models pixel-unshuffle the input by 2 or 4 first (so the body runs at
a lower resolution) and keep two ×2 rounds: scale = 2**n_up / unshuffle.

Three key layouts are read, all into the BasicSR ("new") names this module uses:

* BasicSR / Real-ESRGAN: ``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_upI``,
  ``conv_hr``, ``conv_last`` (often wrapped in ``params_ema`` or ``params``).
* the ESRGAN repo's later names: ``RRDB_trunk.N.RDBK.convJ``, ``trunk_conv``, ``upconvI``, ``HRconv``.
* original ESRGAN ("old"): ``model.0`` (first conv), ``model.1.sub.N.RDBK.convJ.0``,
  ``model.1.sub.<num_block>`` (trunk conv), then the remaining convs ``model.<i>`` in order —
  the upsampling convs, then the HR conv and the last conv.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3×3 convs; the output is scaled by 0.2 and added to the input."""

    def __init__(self, num_feat: int, num_grow: int) -> None:
        super().__init__()
        for i in range(5):
            cout = num_feat if i == 4 else num_grow
            setattr(self, f"conv{i + 1}", _conv(num_feat + i * num_grow, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            conv = getattr(self, f"conv{i}")
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Three dense blocks in a residual, scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


@dataclass(frozen=True)
class RRDBConfig:
    """What a state dict says about the network."""

    in_ch: int = 3
    out_ch: int = 3
    num_feat: int = 64
    num_block: int = 23
    num_grow: int = 32
    n_up: int = 2
    unshuffle: int = 1

    @property
    def scale(self) -> int:
        """Output pixels per input pixel along each side."""
        return (1 << self.n_up) // self.unshuffle

    @property
    def multiple(self) -> int:
        """Input sides must be divisible by this (the pixel-unshuffle factor)."""
        return self.unshuffle


class RRDBNet(nn.Module):
    """ESRGAN / Real-ESRGAN generator; input and output in [0, 1]."""

    def __init__(self, cfg: RRDBConfig) -> None:
        super().__init__()
        if cfg.unshuffle not in (1, 2, 4) or (1 << cfg.n_up) % cfg.unshuffle:
            raise ValueError(f"unsupported combination: {cfg.n_up} upsampling convs with "
                             f"pixel-unshuffle {cfg.unshuffle}")
        self.cfg = cfg
        self.scale = cfg.scale
        self.conv_first = _conv(cfg.in_ch * cfg.unshuffle ** 2, cfg.num_feat)
        self.body = nn.Sequential(*[RRDB(cfg.num_feat, cfg.num_grow) for _ in range(cfg.num_block)])
        self.conv_body = _conv(cfg.num_feat, cfg.num_feat)
        for i in range(cfg.n_up):
            setattr(self, f"conv_up{i + 1}", _conv(cfg.num_feat, cfg.num_feat))
        self.conv_hr = _conv(cfg.num_feat, cfg.num_feat)
        self.conv_last = _conv(cfg.num_feat, cfg.out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.cfg.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(self.cfg.n_up):
            up = F.interpolate(feat, scale_factor=2.0, mode="nearest")
            feat = F.leaky_relu(getattr(self, f"conv_up{i + 1}")(up), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


_OLD_BLOCK = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)")
_OLD_TRUNK = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)")
_OLD_TOP = re.compile(r"model\.(\d+)\.(weight|bias)")
_MID_BLOCK = re.compile(r"RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)")
_MID_NAMES = {"trunk_conv": "conv_body", "HRconv": "conv_hr", "upconv1": "conv_up1",
              "upconv2": "conv_up2", "upconv3": "conv_up3"}


class NotRRDB(ValueError):
    """The state dict is not an RRDBNet this module can build."""


def unwrap(state: dict[str, object]) -> dict[str, torch.Tensor]:
    """The tensors of a training checkpoint (``params_ema`` preferred over ``params``)."""
    for key in ("params_ema", "params", "state_dict"):
        inner = state.get(key)
        if isinstance(inner, dict):
            state = inner
            break
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def layout(state: dict[str, torch.Tensor]) -> str:
    """``new`` (BasicSR), ``mid`` (RRDB_trunk names), ``old`` (model.N) or ``unknown``."""
    if "conv_first.weight" in state:
        return "mid" if any(k.startswith("RRDB_trunk.") for k in state) else "new"
    if "model.0.weight" in state and any(_OLD_BLOCK.fullmatch(k) for k in state):
        return "old"
    return "unknown"


def _from_old(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    blocks = [int(m.group(1)) for k in state if (m := _OLD_BLOCK.fullmatch(k))]
    num_block = max(blocks) + 1
    top: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if m := _OLD_BLOCK.fullmatch(key):
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = value
        elif (m := _OLD_TRUNK.fullmatch(key)) and int(m.group(1)) == num_block:
            out[f"conv_body.{m.group(2)}"] = value
        elif (m := _OLD_TOP.fullmatch(key)) and m.group(1) != "1":
            top.setdefault(int(m.group(1)), {})[m.group(2)] = value
        else:
            raise NotRRDB(f"unexpected key {key!r} for an ESRGAN (old layout) model")
    order = sorted(top)
    if len(order) < 3 or order[0] != 0:
        raise NotRRDB("an ESRGAN (old layout) model needs model.0 and at least two convs after the body")
    names = ["conv_first"] + [f"conv_up{i + 1}" for i in range(len(order) - 3)] + ["conv_hr", "conv_last"]
    for name, index in zip(names, order):
        for kind, value in top[index].items():
            out[f"{name}.{kind}"] = value
    return out


def _from_mid(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if m := _MID_BLOCK.fullmatch(key):
            key = f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"
        else:
            head, _, kind = key.rpartition(".")
            key = f"{_MID_NAMES.get(head, head)}.{kind}"
        out[key] = value
    return out


def to_new_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any supported layout → BasicSR names; raises ``NotRRDB`` for anything else."""
    kind = layout(state)
    if any("conv1x1" in k for k in state):
        raise NotRRDB("ESRGAN+ models (with conv1x1 layers) are not supported")
    if kind == "old":
        return _from_old(state)
    if kind == "mid":
        return _from_mid(state)
    if kind == "new":
        return dict(state)
    sample = ", ".join(list(state)[:4])
    raise NotRRDB(f"not an ESRGAN / Real-ESRGAN (RRDBNet) state dict (keys start: {sample})")


def detect(state: dict[str, torch.Tensor]) -> RRDBConfig:
    """The configuration of a BasicSR-named state dict: channels, blocks, widths, scale."""
    try:
        first, last = state["conv_first.weight"], state["conv_last.weight"]
        grow = state["body.0.rdb1.conv1.weight"].shape[0]
    except KeyError as exc:
        raise NotRRDB(f"state dict has no {exc.args[0]!r}") from None
    num_block = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
    n_up = sum(1 for k in state if re.fullmatch(r"conv_up\d+\.weight", k))
    out_ch, packed = int(last.shape[0]), int(first.shape[1])
    unshuffle = 1
    for factor in (4, 2):
        if packed == out_ch * factor * factor:
            unshuffle = factor
            break
    cfg = RRDBConfig(in_ch=packed // unshuffle ** 2, out_ch=out_ch, num_feat=int(first.shape[0]),
                     num_block=num_block, num_grow=int(grow), n_up=n_up, unshuffle=unshuffle)
    if (1 << n_up) < unshuffle:
        raise NotRRDB(f"{n_up} upsampling convs after a pixel-unshuffle by {unshuffle} would shrink the image")
    return cfg


def build(state: dict[str, torch.Tensor]) -> RRDBNet:
    """An RRDBNet in eval mode with the weights of ``state`` (any supported layout)."""
    named = to_new_layout(unwrap(state))
    net = RRDBNet(detect(named))
    try:
        missing, unexpected = net.load_state_dict(named, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise NotRRDB(f"weights do not fit the detected RRDBNet {net.cfg}: {exc}") from None
    if missing or unexpected:
        raise NotRRDB(f"weights do not fit the detected RRDBNet {net.cfg} (missing: {missing[:4]}, "
                      f"unexpected: {unexpected[:4]})")
    return net.eval().requires_grad_(False)
