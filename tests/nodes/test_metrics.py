"""Metric nodes: FID, LPIPS-style distance, SSIM and PSNR on small real images."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import skimage.data
import skimage.metrics
import torch
import torch.nn.functional as F

import loom_nodes.features  # noqa: F401 - registers the nodes
import loom_nodes.metrics  # noqa: F401 - registers the nodes
from loom import Executor, NodeError, Registry, Settings, node
from loom.types import Image
from loom_nodes._lib import image_metrics as im
from loom_nodes._lib.imageutil import from_numpy

SOURCES = ("astronaut", "coffee", "chelsea", "rocket")


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    r = max(1, int(3 * sigma))
    g = torch.exp(-(torch.arange(-r, r + 1).float() ** 2) / (2 * sigma * sigma))
    g = (g / g.sum()).to(x)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@node(id="test_metrics_images")
def images(count: int = 6, size: int = 48, noise: float = 0.0, blur: float = 0.0, seed: int = 0,
           offset: int = 0) -> Image:
    """Crops of scikit-image photos, optionally noisy or blurred (test helper)."""
    out = []
    for k in range(count):
        src = from_numpy(getattr(skimage.data, SOURCES[(k + offset) % 4])())
        src = F.interpolate(src, scale_factor=0.25, mode="bilinear", antialias=True)
        y, x = (17 * (k + offset)) % (src.shape[2] - size), (29 * (k + offset)) % (src.shape[3] - size)
        out.append(src[:, :, y:y + size, x:x + size])
    batch = _blur(torch.cat(out), blur)
    if noise:
        batch = batch + noise * torch.randn(batch.shape, generator=torch.Generator().manual_seed(seed))
    return batch.clamp(0, 1)


@pytest.fixture(scope="module")
def ex(tmp_path_factory: pytest.TempPathFactory) -> Executor:
    reg = Registry()
    reg.add_module("loom_nodes.features")
    reg.add_module("loom_nodes.metrics")
    reg.add(images)
    return Executor(reg, settings=Settings(home=tmp_path_factory.mktemp("home")))


def _metric(ex: Executor, metric: str, a: dict[str, Any], b: dict[str, Any],
            **inputs: Any) -> tuple[float, dict[str, Any]]:
    wf: dict[str, Any] = {"nodes": {
        "a": {"type": "test_metrics_images", "inputs": a},
        "b": {"type": "test_metrics_images", "inputs": b},
        "m": {"type": metric, "inputs": {"a": {"node": "a", "output": "image"},
                                         "b": {"node": "b", "output": "image"}, **inputs}}}}
    if metric in ("fid", "lpips_distance"):
        wf["nodes"]["f"] = {"type": "load_feature_extractor", "inputs": {}}
        wf["nodes"]["m"]["inputs"]["extractor"] = {"node": "f", "output": "feature_extractor"}
    result = ex.run(wf)
    (value,) = result.outputs["m"].values()
    return value, result.ui["m"]


def test_fid_of_a_batch_with_itself_is_zero_and_grows_with_noise(ex: Executor) -> None:
    four = {"count": 4}
    same, ui = _metric(ex, "fid", four, four)
    assert ui["values"] == {"FID (EfficientNet-Lite0)": same}
    assert any("biased" in t for t in ui["text"])
    values = [_metric(ex, "fid", {}, {"noise": s, "seed": 1}, resize=False)[0] for s in (0.05, 0.15, 0.4)]
    noisy, _ = _metric(ex, "fid", four, {**four, "noise": 0.05, "seed": 1})
    assert abs(same) < 1e-3 * noisy, (same, noisy)
    assert values[0] < values[1] < values[2], values


def test_frechet_distance_closed_forms() -> None:
    assert im.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) \
        == pytest.approx(4.0 + 4.0 + 9.0 - 2.0 * 6.0)
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    expect = 1.0 + 4.0 + 9.0 + 4.0 + 4.0 + 1.0 - 2.0 * (2.0 + 4.0 + 3.0)
    assert im.frechet_distance(np.zeros(3), s1, np.zeros(3), s2) == pytest.approx(expect)
    feats = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    mu, sig = im.feature_stats(feats)
    assert im.frechet_distance(mu, sig, mu, sig) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError):
        im.feature_stats(feats[:1])
    few_a, few_b = feats[:5], feats[5:11] + 0.5  # fewer samples than dimensions: the SVD route
    full = im.frechet_distance(*im.feature_stats(few_a), *im.feature_stats(few_b))
    assert im.fid_from_features(few_a, few_b) == pytest.approx(full, rel=1e-4)
    assert im.fid_from_features(feats, feats + 1.0) == pytest.approx(8.0, rel=1e-6)


def test_lpips_zero_for_identical_and_monotone_in_blur(ex: Executor) -> None:
    zero, ui = _metric(ex, "lpips_distance", {"count": 3}, {"count": 3})
    assert zero == 0.0 and "LPIPS-style (EfficientNet-Lite0)" in ui["values"]
    d = [_metric(ex, "lpips_distance", {"count": 3}, {"count": 3, "blur": s})[0] for s in (0.5, 1.0, 2.0, 4.0)]
    assert 0 < d[0] < d[1] < d[2] < d[3], d
    one_vs_many, _ = _metric(ex, "lpips_distance", {"count": 1}, {"count": 3})
    assert one_vs_many > 0


def test_ssim_and_psnr_match_scikit_image(ex: Executor) -> None:
    a = images(count=2, size=48)
    b = images(count=2, size=48, noise=0.1, seed=3)
    ours = im.ssim(a, b)
    for i in range(2):
        ref = skimage.metrics.structural_similarity(
            a[i].permute(1, 2, 0).numpy().astype(np.float64), b[i].permute(1, 2, 0).numpy().astype(np.float64),
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1)
        assert float(ours[i]) == pytest.approx(ref, abs=1e-5)
        ref_p = skimage.metrics.peak_signal_noise_ratio(a[i].numpy(), b[i].numpy(), data_range=1.0)
        assert float(im.psnr(a[i:i + 1], b[i:i + 1])[0]) == pytest.approx(ref_p, abs=1e-3)
    one, ui = _metric(ex, "ssim", {}, {})
    assert one == pytest.approx(1.0) and ui["values"] == {"SSIM": one}
    noisy = [_metric(ex, "ssim", {}, {"noise": s})[0] for s in (0.02, 0.1)]
    assert 1.0 > noisy[0] > noisy[1]
    same, ui = _metric(ex, "psnr", {}, {})
    assert same == im.PSNR_CAP and ui["values"] == {"PSNR (dB)": im.PSNR_CAP}
    p = [_metric(ex, "psnr", {}, {"noise": s})[0] for s in (0.02, 0.1)]
    assert p[0] > p[1] > 10


@pytest.mark.parametrize("metric,a,b,inputs,expect", [
    ("ssim", {"size": 48}, {"size": 32}, {}, "a is 48x48 but b is 32x32"),
    ("psnr", {"count": 2}, {"count": 3}, {}, "a has 2 images and b has 3"),
    ("psnr", {"count": 0}, {"count": 3}, {}, "empty"),
    ("ssim", {"size": 8}, {"size": 8}, {}, "at least 11x11"),
    ("fid", {"count": 1}, {"count": 4}, {}, "at least 2 images"),
    ("lpips_distance", {}, {}, {"layers": "stage2, fc7"}, "unknown layer(s) 'fc7'"),
    ("fid", {}, {}, {"layer": "pool9"}, "unknown layer(s) 'pool9'"),
])
def test_bad_inputs_give_clear_errors(ex: Executor, metric: str, a: dict[str, Any], b: dict[str, Any],
                                      inputs: dict[str, Any], expect: str) -> None:
    with pytest.raises(NodeError) as err:
        _metric(ex, metric, a, b, **inputs)
    assert expect in str(err.value)
