"""Socket and widget types shared by every node pack.

Socket types are plain classes: a link is allowed when the output type is a
subclass of the input type (plus the coercions in ``COERCIONS``). Runtime values
of ``Image`` and ``Mask`` sockets are ``torch.Tensor`` objects; the classes
here are the names the graph checks and the canvas shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch

__all__ = [
    "Image", "Mask", "Latent", "Conditioning", "TextEncoder", "Denoiser", "VAE",
    "Scheduler", "Generator", "FeatureExtractor", "Seed", "ModelFile", "ImageFile",
    "SEED_MAX", "COERCIONS", "type_name",
]

SEED_MAX = 2**53 - 1  # largest integer a browser's JSON keeps exactly


class Image:
    """float32 tensor, shape (B, C, H, W), values in [0, 1]."""


class Mask:
    """float32 tensor, shape (B, 1, H, W), values in [0, 1]; 1 = the area to change."""


@dataclass(frozen=True)
class Latent:
    """Latent images plus what produced them, so a foreign VAE is caught."""

    samples: torch.Tensor
    family: str = "unknown"          # the model family/space these latents live in
    downscale: int = 8               # pixels per latent cell
    noise_mask: torch.Tensor | None = None
    batch_index: tuple[int, ...] | None = None

    def with_samples(self, samples: torch.Tensor) -> "Latent":
        """A copy holding other samples (never mutates: cached values are shared)."""
        return replace(self, samples=samples)


@dataclass(frozen=True)
class Conditioning:
    """Encoded prompt: token states (B, T, D), optional pooled vector and extras."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    family: str = "unknown"
    text: tuple[str, ...] = ()


class TextEncoder:
    """Turns prompts into Conditioning."""


class Denoiser:
    """Predicts noise (or velocity) for latents at a timestep, given conditioning."""


class VAE:
    """Encodes images to latents and decodes latents to images."""


class Scheduler:
    """A configured noise scheduler (diffusers) and its step count options."""


class Generator:
    """Maps latent codes to images (GANs)."""


class FeatureExtractor:
    """A CNN with named layers whose activations are read for losses and metrics."""


class Seed(int):
    """Integer widget with 'randomize after run' in the canvas; 0..SEED_MAX."""


class ModelFile(str):
    """Combo widget of model files of one kind, e.g. ``ModelFile["checkpoints"]``.

    The node function receives the resolved absolute ``pathlib.Path``.
    """

    kind: ClassVar[str] = ""
    _cache: ClassVar[dict[str, type]] = {}

    def __class_getitem__(cls, kind: str) -> type:
        if not isinstance(kind, str) or not kind:
            raise TypeError("ModelFile[...] takes a model kind such as 'checkpoints'")
        if kind not in ModelFile._cache:
            ModelFile._cache[kind] = type(f"ModelFile[{kind}]", (ModelFile,), {"kind": kind})
        return ModelFile._cache[kind]


class ImageFile(str):
    """Combo widget of uploaded images with an upload button; the node receives a Path."""


COERCIONS: frozenset[tuple[type, type]] = frozenset({(int, float), (bool, int)})


def type_name(tp: Any) -> str:
    """The name a type has in schemas and on the canvas."""
    if tp is Any:
        return "*"
    if isinstance(tp, type) and issubclass(tp, ModelFile) and tp is not ModelFile:
        return "model_file"
    names = {int: "int", float: "float", str: "str", bool: "bool", Seed: "seed",
             ImageFile: "image_file", ModelFile: "model_file"}
    if tp in names:
        return names[tp]
    return getattr(tp, "__name__", repr(tp))
