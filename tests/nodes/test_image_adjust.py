"""Image filters, batch utilities, text nodes and save_image_as."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from PIL import Image as PILImage

from loom import Executor, NodeError, Registry, Settings, UserInputError

REG = Registry.default(Settings())
F = {s.id: s.fn for s in REG}
L = lambda n, o="image": {"node": n, "output": o}  # noqa: E731
IDENTITY = dict(brightness=0.0, contrast=1.0, saturation=1.0, gamma=1.0)


def test_blur_matches_scipy_and_keeps_alpha():
    torch.manual_seed(0)
    img = torch.rand(2, 4, 30, 40)
    out = F["blur_image"](img, sigma=2.0)
    want = np.stack([[ndi.gaussian_filter(img[b, c].numpy().astype(np.float64), 2.0, mode="nearest", truncate=3.0)
                      for c in range(3)] for b in range(2)])
    assert np.allclose(out[:, :3].numpy(), want, atol=1e-5)
    assert torch.equal(out[:, 3], img[:, 3])
    assert torch.equal(F["blur_image"](img, sigma=0.0), img)
    flat = torch.full((1, 3, 9, 9), 0.3)
    assert torch.allclose(F["blur_image"](flat, sigma=5.0), flat, atol=1e-6)   # edges are not darkened


def test_sharpen_boosts_edges_and_leaves_flat_areas():
    step = torch.zeros(1, 3, 16, 16)
    step[:, :, :, 8:] = 0.6
    step += 0.2
    out = F["sharpen_image"](step, sigma=1.0, amount=1.0, threshold=0.0)
    assert out[0, 0, 8, 7] < 0.2 and out[0, 0, 8, 8] > 0.8          # overshoot on both sides of the edge
    assert torch.allclose(out[:, :, :, :3], step[:, :, :, :3], atol=1e-6)
    assert torch.allclose(F["sharpen_image"](step, sigma=1.0, amount=0.0, threshold=0.0), step, atol=1e-6)
    assert torch.allclose(F["sharpen_image"](step, sigma=1.0, amount=2.0, threshold=0.9), step, atol=1e-6)


def test_adjust_colors():
    torch.manual_seed(1)
    img = torch.rand(1, 3, 8, 8)
    assert torch.allclose(F["adjust_colors"](img, **IDENTITY), img, atol=1e-6)
    grey = F["adjust_colors"](img, **{**IDENTITY, "saturation": 0.0})
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    assert torch.allclose(F["adjust_colors"](img, **{**IDENTITY, "contrast": 0.0}), torch.full_like(img, 0.5))
    assert torch.equal(F["adjust_colors"](img, **{**IDENTITY, "brightness": 1.0}), torch.ones_like(img))
    assert torch.allclose(F["adjust_colors"](img, **{**IDENTITY, "gamma": 2.0}), img.sqrt(), atol=1e-6)
    vivid = F["adjust_colors"](img, **{**IDENTITY, "saturation": 2.0})
    assert (vivid - grey).abs().mean() > (img - grey).abs().mean()
    rgba = torch.rand(1, 4, 4, 4)
    assert torch.equal(F["adjust_colors"](rgba, **{**IDENTITY, "brightness": 0.3})[:, 3], rgba[:, 3])


def test_batch_utilities():
    batch = torch.arange(5).float().view(5, 1, 1, 1).expand(5, 3, 2, 2) / 10
    assert F["image_from_batch"](batch, index=1, length=2)[:, 0, 0, 0].tolist() == pytest.approx([0.1, 0.2])
    assert F["image_from_batch"](batch, index=3, length=10).shape[0] == 2
    with pytest.raises(UserInputError) as err:
        F["image_from_batch"](batch, index=5, length=1)
    assert err.value.input == "index" and "0..4" in str(err.value)
    rep = F["repeat_image_batch"](batch[:2], count=3)
    assert rep[:, 0, 0, 0].tolist() == pytest.approx([0.0, 0.1] * 3)


def test_text_nodes():
    assert F["text_concat"]("a cat", "oil painting", separator=", ").text == "a cat, oil painting"
    assert F["text_concat"]("", "b", separator=", ").text == "b"
    assert F["text_format"]("{a} in {b}, {{not a field}} {c}{d}", "a fox", "snow", "!", "").text == \
        "a fox in snow, {not a field} !"
    for template, word in (("{e}", "unknown field"), ("{a", "unmatched"), ("a}", "unmatched")):
        with pytest.raises(UserInputError) as err:
            F["text_format"](template, "", "", "", "")
        assert err.value.input == "template" and word in str(err.value)


# --- save_image_as ------------------------------------------------------------------------------
@pytest.fixture
def run_save(tmp_path):
    settings = Settings(home=tmp_path)
    ex = Executor(REG, settings=settings)

    def go(**inputs):
        wf = {"nodes": {"s": {"type": "sample_image", "inputs": {"name": "coffee"}},
                        "r": {"type": "resize_image", "inputs": {"image": L("s"), "width": 48, "height": 32}},
                        "inv": {"type": "invert_image", "inputs": {"image": L("r")}},
                        "b": {"type": "image_batch", "inputs": {"a": L("r"), "b": L("inv")}},
                        "save": {"type": "save_image_as", "inputs": {"images": L("b"), **inputs}}}}
        result = ex.run(wf)
        return [settings.outputs / img["path"] for img in result.ui["save"]["images"]]
    return go


def _embedded(im: PILImage.Image, fmt: str) -> dict:
    text = im.info["comment"].decode() if fmt == "animated_gif" else im.getexif()[0x010E]
    return json.loads(text)


@pytest.mark.parametrize("fmt,files,frames", [("webp", 2, 1), ("jpeg", 2, 1), ("animated_webp", 1, 2),
                                              ("animated_gif", 1, 2)])
def test_save_image_as_formats_with_the_workflow(run_save, fmt, files, frames):
    paths = run_save(prefix="sub/clip", format=fmt, fps=4.0)
    assert len(paths) == files
    for path in paths:
        assert path.is_file() and path.parent.name == "sub"
        with PILImage.open(path) as im:
            assert im.size == (48, 32) and getattr(im, "n_frames", 1) == frames
            meta = _embedded(im, fmt)
        assert meta["loom.workflow"]["nodes"]["save"]["type"] == "save_image_as"
        assert meta["loom.run"]["node"] == "save"
    again = run_save(prefix="sub/clip", format=fmt, fps=4.0, quality=80)   # a change: the node runs again
    assert set(again).isdisjoint(paths) and all(p.is_file() for p in again + paths)  # numbering continues


def test_save_image_as_options_and_prefix_rules(run_save):
    [path] = run_save(prefix="gif", format="animated_gif", fps=5.0, embed_workflow=False)
    with PILImage.open(path) as im:
        assert "comment" not in im.info and im.info["duration"] == 200
    [first, _] = run_save(prefix="lossless", format="webp", lossless=True)
    from loom_nodes._lib.imageutil import to_pil
    want = np.asarray(to_pil(F["resize_image"](F["sample_image"]("coffee"), width=48, height=32,
                                               method="bilinear")))
    with PILImage.open(first) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), want)      # lossless: every 8-bit value kept
    for bad in ("../escape", ".", "/abs"):
        with pytest.raises(NodeError) as err:
            run_save(prefix=bad, format="webp")
        assert "prefix" in err.value.message
