"""ControlNet nodes: load a ControlNet, attach it with a hint image to a conditioning.

The control travels inside the ``Conditioning`` (``extras["control"]``, a tuple: chained
``apply_controlnet`` nodes stack, their residuals summed), so ``sample`` and every other
sampler that takes a conditioning honour it without another input. ``load_controlnet`` also
loads T2I-Adapters, which ``apply_controlnet`` attaches the same way (their feature maps are
added inside the UNet's down blocks, see ``_lib/diffusion/t2i_adapter.py``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple, Optional

import torch

from loom import Context, Input, UserInputError, node
from loom.types import Conditioning, Image, Mask, ModelFile

from ._lib.diffusion.controlnet import ControlEntry, ControlNet, attach_all
from ._lib.diffusion.controlnet_loading import load_controlnet_path
from ._lib.diffusion.loading import ModelLoadError
from .diffusion_loaders import _fp, _load, _source

log = logging.getLogger(__name__)

__all__ = ["ControlNet", "apply_controlnet", "apply_controlnet_advanced", "load_controlnet"]


@node(category="loaders", fingerprint=_fp, title="Load ControlNet")
def load_controlnet(ctx: Context, name: ModelFile["controlnet"]) -> ControlNet:
    """Load a ControlNet or a T2I-Adapter: a diffusers folder or a single file, local files only.

    ControlNet single files may be in the original or diffusers' key layout, T2I-Adapter files
    in diffusers' layout; the kind is read from the folder's config or the file's keys.
    """
    path = Path(name)

    def load() -> Any:
        try:
            return load_controlnet_path(path, ctx.device, ctx.dtype, path.name)
        except ModelLoadError as exc:
            raise UserInputError(str(exc), input="name") from exc

    return _load(ctx, _source(path), "|controlnet", load, f"{path.name} · ControlNet")


def _entry(control_net: ControlNet, image: torch.Tensor, strength: float, start_percent: float,
           end_percent: float, mask: Optional[torch.Tensor]) -> ControlEntry:
    if end_percent < start_percent:
        raise UserInputError(f"end_percent {end_percent} is before start_percent {start_percent}: the "
                             "ControlNet would never be used", input="end_percent")
    if mask is not None and mask.shape[0] not in (1, image.shape[0]) and image.shape[0] != 1:
        raise UserInputError(f"mask has {mask.shape[0]} images but image has {image.shape[0]}", input="mask")
    return ControlEntry(control_net, image.float().cpu(), float(strength),
                        float(start_percent), float(end_percent),
                        mask.float().cpu() if mask is not None else None)


_STRENGTH = Input(1.0, ge=0.0, le=10.0, step=0.01, help="scale of the ControlNet's residuals "
                  "(a T2I-Adapter's feature maps); 0 = off")
_START = Input(0.0, ge=0.0, le=1.0, step=0.01, help="fraction of the steps before the ControlNet starts")
_END = Input(1.0, ge=0.0, le=1.0, step=0.01, help="fraction of the steps after which it stops")


@node(category="conditioning/controlnet", title="Apply ControlNet")
def apply_controlnet(conditioning: Conditioning, control_net: ControlNet, image: Image,
                     strength: float = _STRENGTH, start_percent: float = _START, end_percent: float = _END,
                     mask: Optional[Mask] = None) -> Conditioning:
    """Steer sampling with a ControlNet or T2I-Adapter and a hint image (edges, depth…); chain nodes to stack them.

    The hint is resized to the latent's pixel size and used for both halves of classifier-free
    guidance unless the negative has controls of its own (``apply_controlnet_advanced``).
    ``mask`` (for inpainting ControlNets): its pixels above 0.5 are marked -1 in the hint.
    """
    return attach_all(conditioning, _entry(control_net, image, strength, start_percent, end_percent, mask))


class ControlledPair(NamedTuple):
    positive: Conditioning
    negative: Conditioning


@node(category="conditioning/controlnet", title="Apply ControlNet (positive + negative)")
def apply_controlnet_advanced(positive: Conditioning, negative: Conditioning, control_net: ControlNet,
                              image: Image, strength: float = _STRENGTH, start_percent: float = _START,
                              end_percent: float = _END, mask: Optional[Mask] = None) -> ControlledPair:
    """Apply a ControlNet to a positive and a negative conditioning (each half of the guidance gets it).

    Equal to ``apply_controlnet`` on the positive alone when the negative has no other
    controls; use it when the two sides should differ (e.g. a second ControlNet only on the
    positive after this one on both).
    """
    entry = _entry(control_net, image, strength, start_percent, end_percent, mask)
    return ControlledPair(attach_all(positive, entry), attach_all(negative, entry))
