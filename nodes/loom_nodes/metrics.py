"""Image metrics as output nodes: FID and an LPIPS-style distance on a feature extractor, SSIM, PSNR.

Each node returns its value and shows it on the canvas, labelled with what measured it
("FID (EfficientNet-Lite0)"): published FID uses Inception-v3, which is only used when its
weights are in models/features/.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from loom import Context, Input, UserInputError, node
from loom.types import FeatureExtractor, Image

from ._lib import image_metrics as im
from .features import Features, features_of, rgb

CHUNK = 32  # images per feature-extractor call


class FIDValue(NamedTuple):
    fid: float


class LPIPSValue(NamedTuple):
    distance: float


class SSIMValue(NamedTuple):
    ssim: float


class PSNRValue(NamedTuple):
    psnr: float


def _image(value: torch.Tensor) -> torch.Tensor:
    return value.float()


def pair(a: object, b: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Two image batches of one size, paired image by image (a batch of 1 pairs with every image)."""
    ta, tb = _image(a), _image(b)
    if ta.shape[-2:] != tb.shape[-2:]:
        raise UserInputError(f"a is {ta.shape[-1]}x{ta.shape[-2]} but b is {tb.shape[-1]}x{tb.shape[-2]}: "
                             "resize one of them first (resize_image)", input="b")
    na, nb = ta.shape[0], tb.shape[0]
    if na != nb and 1 not in (na, nb):
        raise UserInputError(f"a has {na} images and b has {nb}: give equal batches, or one image "
                             "to compare with every image of the other", input="b")
    if ta.shape[1] != tb.shape[1] or ta.shape[1] == 4:
        ta, tb = rgb(ta), rgb(tb)
    n = max(na, nb)
    return ta.expand(n, -1, -1, -1), tb.expand(n, -1, -1, -1)


def _per_pair_text(values: torch.Tensor, name: str) -> list[str]:
    if values.numel() == 1:
        return []
    shown = ", ".join(im.fmt(float(v)) for v in values[:16])
    more = f" … ({values.numel()} pairs)" if values.numel() > 16 else ""
    return [f"{name} per pair: {shown}{more}"]


def pooled_features(ctx: Context, f: Features, images: torch.Tensor, layer: str,
                    resize: bool) -> torch.Tensor:
    """(N, D) features of ``layer`` (spatial maps are averaged), in chunks of CHUNK images."""
    size = f.net.fid_input_size
    rows = []
    for i in range(0, images.shape[0], CHUNK):
        x = images[i:i + CHUNK]
        if resize and size and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(rgb(x), size=(size, size), mode="bilinear", align_corners=False)
        out = f.extract(ctx, x, [layer])[layer]
        rows.append((out.mean(dim=(2, 3)) if out.ndim == 4 else out.flatten(1)).double().cpu())
        ctx.check_interrupted()
    return torch.cat(rows)


@node(category="metrics", output=True)
def fid(ctx: Context, a: Image, b: Image, extractor: FeatureExtractor,
        layer: str = Input("pooled", help="layer whose (averaged) activations are compared"),
        resize: bool = Input(True, help="resize to the network's input size (Inception 299, others 224)")
        ) -> FIDValue:
    """Fréchet distance between two image batches on a feature extractor's pooled features."""
    f = features_of(extractor)
    ta, tb = _image(a), _image(b)
    for name, t in (("a", ta), ("b", tb)):
        if t.shape[0] < 2:
            raise UserInputError(f"{name} has {t.shape[0]} image(s): FID compares distributions and "
                                 "needs at least 2 images per batch (hundreds for a stable value)", input=name)
    (name,) = f.layers(layer, ("pooled",), "layer")
    fa = pooled_features(ctx, f, ta, name, resize)
    fb = pooled_features(ctx, f, tb, name, resize)
    value = im.fid_from_features(fa, fb)
    label = f"FID ({f.label})" if name == "pooled" else f"FID ({f.label}, {name})"
    text = [f"{label}: {im.fmt(value)} — {ta.shape[0]} vs {tb.shape[0]} images, {fa.shape[1]} features"]
    if min(ta.shape[0], tb.shape[0]) < fa.shape[1]:
        text.append(f"fewer images than features ({fa.shape[1]}): the value is biased; compare only "
                    "FIDs computed with the same batch sizes")
    ctx.show(values={label: value}, text=text)
    return FIDValue(value)


@node(category="metrics", output=True)
def lpips_distance(ctx: Context, a: Image, b: Image, extractor: FeatureExtractor,
                   layers: str = Input("default", help="comma-separated layers; default = the net's")
                   ) -> LPIPSValue:
    """Perceptual distance: unit-normalized feature differences summed over layers (0 = identical)."""
    f = features_of(extractor)
    ta, tb = pair(a, b)
    names = f.layers(layers, f.net.lpips_layers, "layers")
    dists = []
    for i in range(0, ta.shape[0], CHUNK):
        fa = f.extract(ctx, ta[i:i + CHUNK], names)
        fb = f.extract(ctx, tb[i:i + CHUNK], names)
        dists.append(im.lpips_style(fa, fb, names).cpu())
        ctx.check_interrupted()
    d = torch.cat(dists)
    value = float(d.mean())
    label = f"LPIPS-style ({f.label})"
    ctx.show(values={label: value}, text=[f"{label}: {im.fmt(value)}", *_per_pair_text(d, "distance")])
    return LPIPSValue(value)


@node(category="metrics", output=True)
def ssim(ctx: Context, a: Image, b: Image) -> SSIMValue:
    """Structural similarity of two images (1 = identical), averaged over the batch."""
    ta, tb = pair(a, b)
    try:
        s = im.ssim(ta, tb)
    except ValueError as exc:
        raise UserInputError(str(exc), input="a") from exc
    value = float(s.mean())
    ctx.show(values={"SSIM": value}, text=[f"SSIM: {im.fmt(value)}", *_per_pair_text(s, "SSIM")])
    return SSIMValue(value)


@node(category="metrics", output=True)
def psnr(ctx: Context, a: Image, b: Image) -> PSNRValue:
    """Peak signal-to-noise ratio in dB (identical images show 100 dB), averaged over the batch."""
    ta, tb = pair(a, b)
    p = im.psnr(ta, tb)
    value = float(p.mean())
    ctx.show(values={"PSNR (dB)": value}, text=[f"PSNR: {im.fmt(value)} dB", *_per_pair_text(p, "PSNR")])
    return PSNRValue(value)
