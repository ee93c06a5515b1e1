"""compare_images: two previews the canvas shows as one picture with a slider between them."""
from __future__ import annotations

import pytest
from PIL import Image as PILImage

from loom import Executor, NodeError, Registry, Settings

L = lambda n, o="image": {"node": n, "output": o}  # noqa: E731


@pytest.fixture(scope="module")
def registry():
    return Registry.default(Settings())


def test_schema_is_an_image_output_node_with_two_image_sockets(registry):
    spec = registry["compare_images"]
    assert spec.output and spec.category == "image" and not spec.outputs
    assert [(i.name, i.kind) for i in spec.inputs[:2]] == [("a", "socket"), ("b", "socket")]
    assert "slider" in spec.description


def test_it_writes_a_then_b_as_previews(registry, tmp_path):
    settings = Settings(home=tmp_path)
    nodes = {"s": {"type": "sample_image", "inputs": {"name": "camera"}},
             "r": {"type": "resize_image", "inputs": {"image": L("s"), "width": 24, "height": 16}},
             "i": {"type": "invert_image", "inputs": {"image": L("r")}},
             "b": {"type": "image_batch", "inputs": {"a": L("r"), "b": L("i")}},
             "c": {"type": "compare_images", "inputs": {"a": L("r"), "b": L("i")}},
             # image 1 of the batch (the inverse) against the inverse
             "d": {"type": "compare_images", "inputs": {"a": L("b"), "b": L("b"), "index": 1}}}
    result = Executor(registry, settings=settings).run({"nodes": nodes})
    for nid in ("c", "d"):
        shown = result.ui[nid]["images"]
        assert [im["kind"] for im in shown] == ["preview", "preview"]
        assert "_a_" in shown[0]["path"] and "_b_" in shown[1]["path"]
        a, b = (PILImage.open(settings.previews / im["path"]).convert("L") for im in shown)
        assert a.size == b.size == (24, 16)
        pa, pb = a.getpixel((3, 3)), b.getpixel((3, 3))
        if nid == "c":   # a is the picture, b its inverse
            assert abs(pa + pb - 255) <= 2 and abs(pa - pb) > 20
        else:            # image 1 of the batch is the inverse: both sides are the same
            assert abs(pa - pb) <= 1


def test_an_index_past_the_batch_is_a_clear_error(registry, tmp_path):
    nodes = {"s": {"type": "sample_image", "inputs": {"name": "camera"}},
             "r": {"type": "resize_image", "inputs": {"image": L("s"), "width": 16, "height": 16}},
             "c": {"type": "compare_images", "inputs": {"a": L("r"), "b": L("r"), "index": 3}}}
    with pytest.raises(NodeError) as err:
        Executor(registry, settings=Settings(home=tmp_path)).run({"nodes": nodes})
    msg = err.value.message
    assert err.value.node == "c" and "index" in msg and "3" in msg and "batch of 1" in msg
