"""T2I-Adapters: the loaded model, its feature maps, and loading from local files.

A T2I-Adapter turns a hint image into one feature map per UNet level, computed once per run
(they do not depend on the latents or the timestep) and added inside the UNet's down blocks
through ``down_intrablock_additional_residuals``, scaled by the strength — exactly what
diffusers' ``StableDiffusionAdapterPipeline`` / ``StableDiffusionXLAdapterPipeline`` do.
It is applied like a ControlNet (``apply_controlnet`` appends a ``ControlEntry``); the entry's
window is diffusers' ``adapter_conditioning_factor`` when it is ``0 … factor``.

Files: a diffusers ``T2IAdapter`` folder (``config.json`` ``_class_name: T2IAdapter``, or an
``adapter/`` subfolder), or a single ``.safetensors`` in diffusers' key layout (``adapter.conv_in``,
``adapter.body.N.resnets.M.block1`` …, the ``adapter.`` prefix optional). A single file's config
comes from its shapes; the pixel-unshuffle factor follows the convention (16 for the SDXL
adapters, 8 otherwise), as the shapes only tell ``in_channels × factor²``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from .controlnet import ControlNet
from .infer_config import ids_after
from .loading import ModelLoadError, read_json

log = logging.getLogger(__name__)

KIND = "t2i_adapter"


class DiffusionT2IAdapter(ControlNet):
    """A diffusers ``T2IAdapter`` (full, full XL or light) and where it was loaded from."""

    kind = KIND

    def __init__(self, model: Any, name: str = "") -> None:
        self.model, self.name = model, name
        cfg = model.config
        self.adapter_type = str(cfg.adapter_type)
        self.sdxl = self.adapter_type == "full_adapter_xl"
        self.conditioning_channels = int(cfg.in_channels)
        self.downscale = int(cfg.downscale_factor)
        channels = [int(c) for c in cfg.channels]
        self.state_channels = channels + [channels[-1]] if self.adapter_type == "light_adapter" else channels

    def check_unet(self, unet: Any) -> None:
        """Raise ValueError when this adapter's feature maps do not fit ``unet``'s down blocks."""
        theirs = unet.config
        unet_sdxl = getattr(theirs, "addition_embed_type", None) == "text_time"
        if self.sdxl != unet_sdxl:
            raise ValueError(f"the T2I-Adapter {self.name!r} is {'an SDXL' if self.sdxl else 'an SD 1.x/2.x'} "
                             f"adapter but the model is {'SDXL' if unet_sdxl else 'SD 1.x/2.x'}")
        levels = [int(c) for c in theirs.block_out_channels]
        want = (levels + levels[-1:])[:len(self.state_channels)]
        if len(self.state_channels) > len(levels) + 1 or self.state_channels != want:
            raise ValueError(f"the T2I-Adapter {self.name!r} gives feature maps of {self.state_channels} channels "
                             f"but this model's levels have {levels}; use an adapter made for this model's family")

    def states(self, hint: torch.Tensor) -> list[torch.Tensor]:
        """The adapter's feature maps for ``hint`` (B, C, H, W) on the adapter's device, as float32."""
        h, w = hint.shape[-2:]
        if h % self.downscale or w % self.downscale:
            raise ValueError(f"the T2I-Adapter {self.name!r} needs an image size divisible by {self.downscale} "
                             f"pixels, got {w}×{h}; pick a width and height that are multiples of {self.downscale}")
        p = next(self.model.parameters())
        with torch.no_grad():
            out = self.model(hint.to(p.device, p.dtype))
        return [s.float() for s in out]


def load_adapter_folder(folder: Path, dtype: torch.dtype, name: str) -> DiffusionT2IAdapter:
    """A ``T2IAdapter`` from a diffusers folder (or its ``adapter/`` subfolder), local files only."""
    from diffusers import T2IAdapter

    sub = folder / "adapter" if (folder / "adapter" / "config.json").is_file() else folder
    try:
        model = T2IAdapter.from_pretrained(sub, local_files_only=True, torch_dtype=dtype).eval()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the T2I-Adapter from {sub}: {exc}") from exc
    return DiffusionT2IAdapter(model, name)


def folder_is_adapter(folder: Path) -> bool:
    """Whether a model folder holds a diffusers ``T2IAdapter`` (its config's class name)."""
    sub = folder / "adapter" if (folder / "adapter" / "config.json").is_file() else folder
    return (sub / "config.json").is_file() and read_json(sub / "config.json").get("_class_name") == "T2IAdapter"


def is_adapter_state(sd: Mapping[str, torch.Tensor]) -> bool:
    """Whether a state dict is a T2I-Adapter's (diffusers' layout, or TencentARC's original one)."""
    keys = [k[len("adapter."):] if k.startswith("adapter.") else k for k in sd]
    return any(k.startswith("body.") for k in keys) and not any(
        k.startswith(("input_blocks.", "control_model.", "down_blocks.", "controlnet_")) for k in keys)


def infer_adapter_config(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``T2IAdapter`` config from a diffusers-layout state dict without the ``adapter.`` prefix."""
    shape = {k: tuple(v.shape) for k, v in sd.items()}
    if any(re.match(r"body\.\d+\.(block1|body\.)", k) for k in shape):
        raise ModelLoadError("a T2I-Adapter in TencentARC's original key layout (body.N.block1); convert it to "
                             "diffusers' layout (diffusers' scripts/convert_original_t2i_adapter.py) or use a "
                             "diffusers T2IAdapter folder")
    blocks = ids_after(shape, "body.")
    if not blocks or blocks != list(range(len(blocks))):
        raise ModelLoadError(f"unrecognised T2I-Adapter layout: body blocks numbered {blocks[:8]}")
    light = "conv_in.weight" not in shape
    res = ids_after(shape, "body.0.resnets.")
    if light:
        if "body.0.in_conv.weight" not in shape or "body.0.out_conv.weight" not in shape:
            raise ModelLoadError("unrecognised T2I-Adapter layout: no conv_in and no light-adapter in_conv/out_conv")
        unshuffled = shape["body.0.in_conv.weight"][1]
        channels = [shape[f"body.{i}.out_conv.weight"][0] for i in blocks[:-1]]
    else:
        unshuffled = shape["conv_in.weight"][1]
        channels = [shape[f"body.{i}.resnets.0.block1.weight"][0] for i in blocks]
    if not res:
        raise ModelLoadError("unrecognised T2I-Adapter layout: the first block has no resnets")
    factor, cin = next(((f, c) for f in (8, 16) for c in (3, 1) if c * f * f == unshuffled), (0, 0))
    if not factor:
        raise ModelLoadError(f"unrecognised T2I-Adapter layout: {unshuffled} input channels after the pixel "
                             "unshuffle are not 1 or 3 channels × 8² or 16²; load it as a diffusers folder")
    kind = "light_adapter" if light else ("full_adapter_xl" if factor == 16 else "full_adapter")
    return {"in_channels": cin, "channels": channels, "num_res_blocks": len(res), "downscale_factor": factor,
            "adapter_type": kind}


def load_adapter_state_dict(sd: Mapping[str, torch.Tensor], dtype: torch.dtype, name: str) -> DiffusionT2IAdapter:
    """A ``T2IAdapter`` built from a single file's tensors (diffusers' key layout)."""
    from diffusers import T2IAdapter

    from .single_file import build_module

    flat = {k[len("adapter."):] if k.startswith("adapter.") else k: v for k, v in sd.items()}
    cfg = infer_adapter_config(flat)
    log.info("T2I-Adapter single file: %s, channels %s, %s resnets per block, ×%s unshuffle of %s channels",
             cfg["adapter_type"], cfg["channels"], cfg["num_res_blocks"], cfg["downscale_factor"], cfg["in_channels"])
    state = {"adapter." + k: v for k, v in flat.items()}
    return DiffusionT2IAdapter(build_module("T2I-Adapter", lambda: T2IAdapter(**cfg), lambda m: state, dtype), name)
