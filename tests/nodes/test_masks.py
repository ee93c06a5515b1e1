"""Mask and compositing nodes (loom_nodes.masks) and the morphology/blur they stand on."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from loom import Executor, NodeError, Registry, Settings, UserInputError
from loom_nodes._lib.filters import dilate, disk_half_widths, erode

REG = Registry.default(Settings())
F = {s.id: s.fn for s in REG}
L = lambda n, o="image": {"node": n, "output": o}  # noqa: E731


def square(size: int = 64, x0: int = 20, y0: int = 24, side: int = 16, batch: int = 1) -> torch.Tensor:
    m = torch.zeros(batch, 1, size, size)
    m[:, :, y0:y0 + side, x0:x0 + side] = 1.0
    return m


def disk_footprint(r: int) -> np.ndarray:
    fp = np.zeros((2 * r + 1, 2 * r + 1), dtype=bool)
    for row, half in enumerate(disk_half_widths(r)):
        fp[row, r - half:r + half + 1] = True
    return fp


# --- morphology -------------------------------------------------------------------------------
@pytest.mark.parametrize("r", [1, 2, 5, 9])
def test_dilation_and_erosion_match_scipy_with_a_disk(r):
    torch.manual_seed(r)
    x = torch.rand(2, 1, 33, 41)
    fp = disk_footprint(r)
    want_d = np.stack([ndi.grey_dilation(x[b, 0].numpy(), footprint=fp, mode="constant", cval=-np.inf)
                       for b in range(2)])
    want_e = np.stack([ndi.grey_erosion(x[b, 0].numpy(), footprint=fp, mode="constant", cval=np.inf)
                       for b in range(2)])
    assert np.array_equal(dilate(x, r)[:, 0].numpy(), want_d)
    assert np.array_equal(erode(x, r)[:, 0].numpy(), want_e)


@pytest.mark.parametrize("r", [1, 3, 7])
def test_grow_then_shrink_a_square_gives_the_square_back(r):
    m = square()
    grown = F["grow_mask"](m, radius=r)
    assert grown.sum() > m.sum()
    assert torch.equal(grown[:, :, 24:40, 20 - r:20], torch.ones(1, 1, 16, r))  # r pixels out on each side
    assert grown[0, 0, 24, 20 - r - 1] == 0
    assert torch.equal(F["grow_mask"](grown, radius=-r), m)
    shrunk = F["grow_mask"](m, radius=-r)
    assert shrunk.sum() == (16 - 2 * r) ** 2
    opened = F["grow_mask"](shrunk, radius=r)      # shrink then grow: only the corners round off
    assert torch.all(opened <= m) and torch.equal(opened[:, :, 32, 20:36], torch.ones(1, 1, 16))


def test_grow_a_dot_makes_a_disk_and_soft_masks_keep_their_levels():
    dot = torch.zeros(1, 1, 41, 41)
    dot[0, 0, 20, 20] = 0.6
    disk = F["grow_mask"](dot, radius=10)
    assert torch.equal(disk.unique(), torch.tensor([0.0, 0.6]))
    area = int((disk > 0).sum())
    assert abs(area - np.pi * 10 ** 2) < 0.06 * np.pi * 10 ** 2
    assert disk[0, 0, 20, 30] > 0 and disk[0, 0, 30, 30] == 0      # round, not square
    full = torch.ones(1, 1, 16, 16)
    assert torch.equal(F["grow_mask"](full, radius=-4), full)      # the border does not eat in
    assert torch.equal(F["grow_mask"](dot, radius=0), dot)


def test_feather_stays_in_range_and_blurs_only_near_the_edge():
    m = square(96, 30, 30, 36)
    radius = 6.0
    out = F["feather_mask"](m, radius=radius)
    assert out.min() >= 0 and out.max() <= 1
    # farther than the radius from the edge (in x or y: the blur is separable) nothing changes
    near = torch.nn.functional.max_pool2d(m, 15, 1, 7)
    inside = -torch.nn.functional.max_pool2d(-m, 15, 1, 7) > 0.5
    outside = near < 0.5
    assert torch.allclose(out[inside], torch.ones_like(out[inside]), atol=1e-6)
    assert float(out[outside].abs().max()) < 1e-6
    edge = out[0, 0, 48, 27:34]
    assert torch.all(edge[1:] > edge[:-1]) and 0.3 < float(out[0, 0, 48, 30]) < 0.7
    assert abs(float(out.sum()) - float(m.sum())) < 1e-2 * float(m.sum())   # a blur keeps the mass
    assert torch.equal(F["feather_mask"](m, radius=0.0), m)


# --- sources, edits, combining ---------------------------------------------------------------
def test_mask_sources():
    assert torch.equal(F["solid_mask"](value=0.25, width=5, height=3, batch=2), torch.full((2, 1, 3, 5), 0.25))
    img = torch.zeros(1, 3, 4, 4)
    img[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    img[0, :, 1, 1] = torch.tensor([250 / 255, 5 / 255, 0.0])
    exact = F["mask_from_color"](img, red=255, green=0, blue=0, tolerance=0)
    near = F["mask_from_color"](img, red=255, green=0, blue=0, tolerance=5)
    assert int(exact.sum()) == 1 and exact[0, 0, 0, 0] == 1
    assert int(near.sum()) == 2 and near[0, 0, 1, 1] == 1
    assert int(F["mask_from_color"](img, red=255, green=0, blue=0, tolerance=4).sum()) == 1
    rgba = torch.rand(2, 4, 8, 8)
    assert torch.equal(F["mask_from_alpha"](rgba, invert=False), 1 - rgba[:, 3:])
    assert torch.equal(F["mask_from_alpha"](rgba, invert=True), rgba[:, 3:])
    with pytest.raises(UserInputError) as err:
        F["mask_from_alpha"](torch.rand(1, 3, 4, 4), invert=False)
    assert err.value.input == "image"
    from skimage.color import rgb2gray
    rgb = torch.rand(1, 3, 6, 7)
    want = rgb2gray(rgb[0].permute(1, 2, 0).numpy())
    got = F["mask_from_luminance"](rgb)[0, 0]
    assert np.allclose(got.numpy(), want, atol=1e-3)       # scikit-image rounds the Rec. 709 weights
    assert torch.allclose(got, 0.2126 * rgb[0, 0] + 0.7152 * rgb[0, 1] + 0.0722 * rgb[0, 2], atol=1e-6)


def test_threshold_invert_combine():
    m = torch.tensor([[[[0.0, 0.3, 0.5, 0.9]]]])
    assert F["threshold_mask"](m, level=0.5).flatten().tolist() == [0, 0, 1, 1]
    assert torch.equal(F["invert_mask"](m), 1 - m)
    a, b = torch.tensor([[[[0.2, 0.8]]]]), torch.tensor([[[[0.5, 0.5]]]])
    got = {op: F["combine_masks"](a, b, operation=op).flatten().tolist()
           for op in ("add", "subtract", "multiply", "max", "min")}
    assert got["add"] == pytest.approx([0.7, 1.0]) and got["subtract"] == pytest.approx([0.0, 0.3])
    assert got["multiply"] == pytest.approx([0.1, 0.4])
    assert got["max"] == pytest.approx([0.5, 0.8]) and got["min"] == pytest.approx([0.2, 0.5])
    small = torch.ones(1, 1, 4, 4)
    assert F["combine_masks"](torch.zeros(3, 1, 8, 8), small, operation="max").shape == (3, 1, 8, 8)
    with pytest.raises(UserInputError) as err:
        F["combine_masks"](torch.zeros(3, 1, 8, 8), torch.zeros(2, 1, 8, 8), operation="max")
    assert err.value.input == "b" and "batch" in str(err.value)


# --- crop, composite, outpaint ---------------------------------------------------------------
def test_crop_by_mask_box_padding_multiple_and_clamping():
    img = torch.rand(2, 3, 100, 120)
    m = torch.zeros(1, 1, 100, 120)
    m[0, 0, 40:50, 60:65] = 1.0
    out = F["crop_by_mask"](img, m, padding=0, multiple=1)
    assert (out.x, out.y, out.width, out.height) == (60, 40, 5, 10)
    assert torch.equal(out.image, img[:, :, 40:50, 60:65]) and torch.equal(out.mask, m[:, :, 40:50, 60:65])
    out = F["crop_by_mask"](img, m, padding=4, multiple=8)
    assert out.width % 8 == 0 and out.height % 8 == 0
    assert out.x <= 56 and out.x + out.width >= 69 and out.y <= 36 and out.y + out.height >= 54
    corner = torch.zeros(1, 1, 100, 120)
    corner[0, 0, 0:3, 117:120] = 1.0
    out = F["crop_by_mask"](img, corner, padding=10, multiple=8)
    assert out.x + out.width <= 120 and out.y == 0 and out.width % 8 == 0 and out.height % 8 == 0
    assert out.image.shape[2:] == (out.height, out.width)
    with pytest.raises(UserInputError) as err:
        F["crop_by_mask"](img, torch.zeros(1, 1, 100, 120), padding=0, multiple=1)
    assert err.value.input == "mask"
    with pytest.raises(UserInputError) as err:
        F["crop_by_mask"](img, torch.zeros(1, 1, 50, 120), padding=0, multiple=1)
    assert err.value.input == "mask" and "must match" in str(err.value)


def test_composite_leaves_pixels_outside_the_mask_bit_identical():
    torch.manual_seed(0)
    dest = torch.rand(2, 3, 64, 80)
    src = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1.0
    mask[:, :, 8:24, 4:8] = 0.5
    out = F["composite_images"](dest, src, x=40, y=16, mask=mask)
    keep = torch.ones(1, 1, 64, 80, dtype=torch.bool)
    keep[:, :, 16:48, 40:72] = mask[:, :, :, :] == 0
    keep = keep.expand_as(dest)
    assert torch.equal(out[keep], dest[keep])
    assert torch.equal(out[:, :, 24:40, 48:64], src[:, :, 8:24, 8:24])
    assert torch.allclose(out[:, :, 24:40, 44:48], 0.5 * dest[:, :, 24:40, 44:48] + 0.5 * src[:, :, 8:24, 4:8])
    assert torch.equal(dest, dest.clone())  # the input is not written to
    whole = F["composite_images"](dest, src, x=0, y=0, mask=None)
    assert torch.equal(whole[:, :, :32, :32], src) and torch.equal(whole[:, :, 32:], dest[:, :, 32:])
    big_mask = torch.zeros(1, 1, 64, 80)                  # destination-sized masks are cut at the box
    big_mask[:, :, 16:48, 40:72] = mask
    assert torch.equal(F["composite_images"](dest, src, x=40, y=16, mask=big_mask), out)


def test_crop_then_composite_round_trip_and_errors():
    img = torch.rand(1, 3, 90, 70)
    m = torch.zeros(1, 1, 90, 70)
    m[0, 0, 30:50, 20:40] = 1.0
    c = F["crop_by_mask"](img, m, padding=8, multiple=8)
    edited = 1.0 - c.image
    back = F["composite_images"](img, edited, x=c.x, y=c.y, mask=c.mask)
    assert torch.equal(back[m.expand_as(img) == 0], img[m.expand_as(img) == 0])
    assert torch.equal(back[:, :, 30:50, 20:40], 1.0 - img[:, :, 30:50, 20:40])
    grey = F["composite_images"](img, torch.zeros(1, 1, 10, 10), x=0, y=0, mask=None)
    assert torch.equal(grey[:, :, :10, :10], torch.zeros(1, 3, 10, 10))
    cases = [(dict(x=65, y=0, mask=None), "source"),
             (dict(x=0, y=0, mask=torch.ones(1, 1, 5, 5)), "mask"),
             (dict(x=0, y=0, mask=torch.ones(3, 1, 20, 20)), "mask")]
    for kwargs, name in cases:
        with pytest.raises(UserInputError) as err:
            F["composite_images"](torch.rand(2, 3, 90, 70), torch.rand(1, 3, 20, 20), **kwargs)
        assert err.value.input == name, kwargs


def test_pad_for_outpaint_sizes_mask_and_feathering():
    img = torch.rand(1, 3, 40, 50)
    out = F["pad_for_outpaint"](img, left=8, top=0, right=16, bottom=24, feathering=10, fill="gray")
    assert out.image.shape == (1, 3, 64, 74) and out.mask.shape == (1, 1, 64, 74)
    assert torch.equal(out.image[:, :, 0:40, 8:58], img)
    assert torch.all(out.image[:, :, :, :8] == 0.5) and torch.all(out.image[:, :, 40:] == 0.5)
    m = out.mask[0, 0]
    assert torch.all(m[:, :8] == 1) and torch.all(m[:, 58:] == 1) and torch.all(m[40:] == 1)
    assert m[0, 8] == 1.0 and 0 < m[20, 10] < 1 and m[20, 18] == 0 and m[20, 33] == 0
    assert m[0, 33] == 0  # the top was not padded: no fade there
    assert float(m[20, 9]) > float(m[20, 12]) > float(m[20, 15])
    edge = F["pad_for_outpaint"](img, left=0, top=4, right=0, bottom=0, feathering=0, fill="edge")
    assert torch.equal(edge.image[:, :, :4], img[:, :, :1].expand(-1, -1, 4, -1))
    assert torch.equal(edge.mask[0, 0, 4:], torch.zeros(40, 50))
    with pytest.raises(UserInputError):
        F["pad_for_outpaint"](img, left=0, top=0, right=0, bottom=0, feathering=0, fill="gray")


def test_inpaint_paste_back_through_the_executor(tmp_path):
    ex = Executor(REG, settings=Settings(home=tmp_path))
    wf = {"nodes": {
        "img": {"type": "sample_image", "inputs": {"name": "camera"}},
        "m": {"type": "mask_from_luminance", "inputs": {"image": L("img")}},
        "t": {"type": "threshold_mask", "inputs": {"mask": L("m", "mask"), "level": 0.9}},
        "g": {"type": "grow_mask", "inputs": {"mask": L("t", "mask"), "radius": 3}},
        "c": {"type": "crop_by_mask", "inputs": {"image": L("img"), "mask": L("g", "mask")}},
        "inv": {"type": "invert_image", "inputs": {"image": L("c")}},
        "p": {"type": "composite_images", "inputs": {"destination": L("img"), "source": L("inv"),
                                                     "x": L("c", "x"), "y": L("c", "y"),
                                                     "mask": L("c", "mask")}},
        "s": {"type": "save_image", "inputs": {"images": L("p"), "prefix": "paste"}}}}
    result = ex.run(wf)
    assert "s" in result.executed
    bad = {**wf["nodes"], "p": {**wf["nodes"]["p"], "inputs": {**wf["nodes"]["p"]["inputs"], "x": 10_000}}}
    with pytest.raises(NodeError) as err:
        ex.run({"nodes": bad})
    assert err.value.node == "p" and "source" in err.value.message
