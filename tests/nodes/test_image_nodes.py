"""The first nodes: sample/load/save/preview images and the image operations."""
from __future__ import annotations

import pytest
import torch
from PIL import Image as PILImage

from loom import Executor, NodeError, Registry, Settings, Workflow

L = lambda n, o="image": {"node": n, "output": o}  # noqa: E731


@pytest.fixture(scope="module")
def registry():
    return Registry.default(Settings())


@pytest.fixture
def run(registry, tmp_path):
    settings = Settings(home=tmp_path)
    ex = Executor(registry, settings=settings)

    def go(nodes):
        return ex.run({"nodes": nodes}), settings
    return go


def out_value(result, node="o"):
    return result.outputs[node]


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket", "camera", "brick", "grass", "gravel"])
def test_sample_images_are_rgb_in_unit_range(registry, name):
    fn = registry["sample_image"].fn
    img = fn(name)
    assert img.ndim == 4 and img.shape[:2] == (1, 3) and img.dtype == torch.float32
    assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.05


def test_resize_crop_invert_blend_batch(registry):
    f = {s.id: s.fn for s in registry}
    img = f["sample_image"]("chelsea")                       # 300 × 451
    r = f["resize_image"](img, width=100, height=0, method="bilinear")
    assert r.shape == (1, 3, 67, 100)
    c = f["crop_image"](r, x=10, y=5, width=50, height=40)
    assert c.shape == (1, 3, 40, 50) and torch.equal(c, r[:, :, 5:45, 10:60])
    inv = f["invert_image"](c)
    assert torch.allclose(inv + c, torch.ones_like(c))
    assert torch.allclose(f["blend_images"](c, inv, factor=0.0, mode="normal"), c)
    assert torch.allclose(f["blend_images"](c, inv, factor=1.0, mode="difference"), (c - inv).abs())
    b = f["image_batch"](c, f["sample_image"]("camera"))
    assert b.shape == (2, 3, 40, 50)


def test_crop_outside_the_image_is_a_clear_error(run):
    with pytest.raises(NodeError) as err:
        run({"s": {"type": "sample_image", "inputs": {"name": "camera"}},
             "c": {"type": "crop_image", "inputs": {"image": L("s"), "x": 480, "width": 64}},
             "p": {"type": "preview_image", "inputs": {"images": L("c")}}})
    assert err.value.node == "c" and "input 'width'" in err.value.message and "512" in err.value.message


def test_load_image_with_alpha_and_fingerprint(run, tmp_path):
    inp = tmp_path / "input"
    inp.mkdir()
    im = PILImage.new("RGBA", (8, 6), (255, 0, 0, 255))
    im.putpixel((0, 0), (0, 0, 0, 0))
    im.save(inp / "dot.png")
    nodes = {"l": {"type": "load_image", "inputs": {"image": "dot.png"}},
             "p": {"type": "preview_image", "inputs": {"images": L("l")}}}
    r1, _ = run(nodes)
    r2, _ = run(nodes)
    assert r2.executed == []
    PILImage.new("RGB", (4, 4), (0, 255, 0)).save(inp / "dot.png")  # same name, new content
    r3, settings = run(nodes)
    assert r3.executed == ["l", "p"]


def test_load_image_mask_marks_transparent_pixels(registry, tmp_path):
    im = PILImage.new("RGBA", (4, 4), (0, 0, 255, 255))
    im.putpixel((1, 2), (0, 0, 0, 0))
    p = tmp_path / "a.png"
    im.save(p)
    image, mask = registry["load_image"].fn(p)
    assert image.shape == (1, 3, 4, 4) and mask.shape == (1, 1, 4, 4)
    assert mask[0, 0, 2, 1] == 1.0 and mask.sum() == 1.0


def test_save_image_numbers_files_and_embeds_the_workflow(run):
    nodes = {"s": {"type": "sample_image", "inputs": {"name": "rocket"}},
             "r": {"type": "resize_image", "inputs": {"image": L("s"), "width": 32, "height": 32}},
             "b": {"type": "image_batch", "inputs": {"a": L("r"), "b": L("r")}},
             "o": {"type": "save_image", "inputs": {"images": L("b"), "prefix": "sub/rk"}}}
    result, settings = run(nodes)
    paths = [i["path"] for i in result.ui["o"]["images"]]
    assert paths == ["sub/rk_00001.png", "sub/rk_00002.png"]
    assert Workflow.load(settings.outputs / paths[1]).nodes["o"]["inputs"]["prefix"] == "sub/rk"


def test_save_image_refuses_a_prefix_that_leaves_the_output_folder(run):
    with pytest.raises(NodeError) as err:
        run({"s": {"type": "sample_image", "inputs": {}},
             "o": {"type": "save_image", "inputs": {"images": L("s"), "prefix": "../../etc/x"}}})
    assert "prefix" in err.value.message


def test_primitives_feed_widgets(run):
    result, _ = run({"f": {"type": "float_value", "inputs": {"value": 1.0}},
                     "w": {"type": "int_value", "inputs": {"value": 16}},
                     "s": {"type": "sample_image", "inputs": {"name": "grass"}},
                     "r": {"type": "resize_image", "inputs": {"image": L("s"), "width": L("w", "value"), "height": L("w", "value")}},
                     "i": {"type": "invert_image", "inputs": {"image": L("r")}},
                     "b": {"type": "blend_images", "inputs": {"a": L("r"), "b": L("i"), "factor": L("f", "value")}},
                     "o": {"type": "preview_image", "inputs": {"images": L("b")}}})
    assert len(result.ui["o"]["images"]) == 1
