"""Upscale models: load an ESRGAN / Real-ESRGAN (RRDBNet) or SwinIR network and upscale images with it, in tiles.

Files go in ``models/upscale_models/`` as ``.safetensors`` or as ``.pth``/``.pt`` read with
``torch.load(weights_only=True)`` (plain tensors only, no pickled code). The architecture,
scale (×1, ×2, ×4, ×8), channels and block count are read from the state dict; original
ESRGAN ("old", ``model.N``) and BasicSR/Real-ESRGAN ("new", ``conv_first``/``body``) key
layouts both load. A SwinIR is recognised by its transformer layers (``layers.N.residual_group``)
and its embedding width, depths, heads, window and upsampler are read the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union, cast

import torch
import torch.nn.functional as F
from torch import nn

from loom import Context, Input, UserInputError, file_fingerprint, node
from loom.types import Image, ModelFile

from ._lib.masks import luminance
from ._lib.upscale import NotRRDB, NotSwinIR, RRDBNet, SwinIR, build, is_swinir, layout, run_tiled, unwrap
from ._lib.upscale.swinir import build as build_swinir


class UpscaleModel:
    """A super-resolution network (ESRGAN family, SwinIR) that enlarges images by a fixed scale."""


class LoadedUpscaler(UpscaleModel):
    """A loaded network plus what the upscale node needs: scale, channels, input multiple."""

    def __init__(self, module: Union[RRDBNet, SwinIR], arch: str, label: str) -> None:
        self.module, self.arch, self.label = module, arch, label
        self.scale: int = module.cfg.scale
        self.in_channels: int = module.cfg.in_ch
        self.out_channels: int = module.cfg.out_ch
        self.multiple: int = module.cfg.multiple  # tiles start at (and sides are padded to) multiples of this

    def __repr__(self) -> str:
        return f"LoadedUpscaler({self.label}: {self.arch} ×{self.scale}, {self.module.cfg})"


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file, or of a .pth/.pt/.ckpt/.bin read weights-only."""
    if path.is_dir():
        raise UserInputError(f"{path.name} is a folder; an upscale model is one .safetensors or "
                             ".pth file in models/upscale_models/", input="name")
    try:
        if path.suffix in (".safetensors", ".sft"):
            from safetensors.torch import load_file
            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        raise UserInputError(f"cannot read {path.name} as weights ({type(exc).__name__}: {exc}); "
                             "only .safetensors and weights-only .pth files load", input="name") from exc
    if not isinstance(state, dict):
        raise UserInputError(f"{path.name} holds a {type(state).__name__}, not a state dict", input="name")
    return unwrap(state)


def read_upscaler(path: Path) -> LoadedUpscaler:
    """Build the network a file's state dict describes (RRDBNet in any of its key layouts, or SwinIR)."""
    state = read_state(path)
    if is_swinir(state):
        try:
            swin = build_swinir(state)
        except NotSwinIR as exc:
            raise UserInputError(f"{path.name}: {exc}", input="name") from None
        return LoadedUpscaler(swin, "SwinIR", path.name)
    kind = layout(state)
    try:
        module = build(state)
    except NotRRDB as exc:
        raise UserInputError(f"{path.name}: {exc}. Supported: ESRGAN and Real-ESRGAN (RRDBNet) and SwinIR "
                             "models (not HAT, DAT or the compact SRVGG ones)",
                             input="name") from None
    arch = {"old": "ESRGAN", "mid": "ESRGAN"}.get(kind, "Real-ESRGAN" if module.cfg.unshuffle > 1 else "RRDBNet")
    return LoadedUpscaler(module, arch, path.name)


def _load_fp(name: Path) -> str:
    return file_fingerprint(name)


@node(category="upscale", fingerprint=_load_fp)
def load_upscale_model(ctx: Context, name: ModelFile["upscale_models"]) -> UpscaleModel:  # type: ignore[valid-type]
    """Load an ESRGAN / Real-ESRGAN or SwinIR upscale model from models/upscale_models/."""

    def loader() -> nn.Module:
        upscaler = read_upscaler(name)
        upscaler.module.loom_upscaler = upscaler  # the module is what the manager moves between devices
        return upscaler.module

    version = file_fingerprint(name)
    module = ctx.models.load(f"upscale:{version}", loader, label=f"upscaler {name.name}",
                             source=str(name), version=version)
    upscaler = cast(LoadedUpscaler, module.loom_upscaler)
    ctx.log.info("loaded %r", upscaler)
    return upscaler


def _to_model_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 1:
        return luminance(image)
    rgb = image[:, :3] if image.shape[1] >= 3 else image[:, :1].expand(-1, 3, -1, -1)
    if channels != 3:
        raise UserInputError(f"the model takes {channels} channels; only 1 and 3 are supported", input="model")
    return rgb


@node(category="upscale")
def upscale_with_model(ctx: Context, model: UpscaleModel, image: Image,
                       tile: int = Input(512, ge=32, le=4096, step=32,
                                         help="input pixels per tile side; smaller uses less memory"),
                       overlap: int = Input(64, ge=0, le=1024, step=8,
                                            help="input pixels shared by neighbouring tiles; "
                                                 "a quarter is context, half is blended")) -> Image:
    """Upscale images with an upscale model, tile by tile with blended seams."""
    upscaler = cast(LoadedUpscaler, model)
    if overlap * 2 > tile:
        raise UserInputError(f"overlap {overlap} is more than half the tile ({tile}); lower it",
                             input="overlap")
    alpha = image[:, 3:4] if image.shape[1] == 4 else None
    x = _to_model_channels(image.float(), upscaler.in_channels)
    module, dev = upscaler.module, ctx.device

    def net(part: torch.Tensor) -> torch.Tensor:
        ctx.check_interrupted()
        return module(part.to(dev, torch.float32)).to("cpu", torch.float32)

    def on_tile(done: int, total: int) -> None:
        ctx.progress(done, total)

    with ctx.models.use(module):
        out = run_tiled(net, x.cpu(), upscaler.scale, upscaler.out_channels, tile, overlap,
                        upscaler.multiple, on_tile)
    out = out.clamp_(0, 1)
    if alpha is not None and out.shape[1] == 3:
        big = F.interpolate(alpha.float().cpu(), size=out.shape[2:], mode="bicubic",
                            align_corners=False).clamp(0, 1)
        out = torch.cat([out, big], dim=1)
    return out
