"""The live image comparer: a compare_images node on the canvas, and two gallery images."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image
from web_helpers import GRAPH_XY_JS, open_workflow, queue_and_wait, settle

RED, BLUE = (255, 0, 0), (0, 0, 255)

# the compare node's picture in page coordinates: [left, top, width, height]
PICTURE_JS = """() => {
  const n = window.loom.nodeById('cmp');
  const r = n.loom.compareRect;
  if (!r) return null;
  const c0 = window.loom.canvas.ds.convertOffsetToCanvas([n.pos[0] + r[0], n.pos[1] + r[1]]);
  const c1 = window.loom.canvas.ds.convertOffsetToCanvas([n.pos[0] + r[0] + r[2], n.pos[1] + r[1] + r[3]]);
  const b = window.loom.canvas.canvas.getBoundingClientRect();
  return [b.left + c0[0], b.top + c0[1], c1[0] - c0[0], c1[1] - c0[1]];
}"""
PIXEL_JS = """([x, y]) => {
  const b = window.loom.canvas.canvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const ctx = window.loom.canvas.canvas.getContext('2d');
  const px = ctx.getImageData(Math.round((x - b.left) * dpr), Math.round((y - b.top) * dpr), 1, 1);
  return Array.from(px.data).slice(0, 3);
}"""


def compare_workflow() -> dict[str, Any]:
    solid = lambda colour, y: {"type": "t_solid", "version": 1,  # noqa: E731
                               "inputs": {"color": colour, "width": 64, "height": 48},
                               "ui": {"pos": [40, y], "size": [240, 130]}}
    return {"format": "loom.workflow", "version": 1,
            "nodes": {"red": solid("red", 60), "blue": solid("blue", 230),
                      "cmp": {"type": "compare_images", "version": 1,
                              "inputs": {"a": {"node": "red", "output": "image"},
                                         "b": {"node": "blue", "output": "image"}},
                              "ui": {"pos": [330, 60], "size": [320, 340]}}},
            "meta": {"title": "compare"}}


def near(got: list[int], want: tuple[int, int, int]) -> bool:
    return all(abs(g - w) <= 40 for g, w in zip(got, want))


def test_the_compare_node_splits_its_images_where_the_pointer_is(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, compare_workflow(), tmp_path)
    _, status = queue_and_wait(canvas)
    assert "finished" in status
    canvas.wait_for_function("(window.loom.nodeById('cmp').loom.images || []).filter((i) => i.complete).length === 2")
    settle(canvas)
    x, y, w, h = canvas.wait_for_function(PICTURE_JS).json_value()
    assert w > 60 and abs(w / h - 64 / 48) < 0.05    # one picture in a's aspect, not two side by side
    mid = y + h / 2
    at = lambda f: canvas.evaluate(PIXEL_JS, [x + w * f, mid])  # noqa: E731
    assert near(at(0.25), RED) and near(at(0.75), BLUE)    # split in the middle at first
    canvas.mouse.move(x + w * 0.3, mid)                    # hover: the split follows the pointer
    settle(canvas)
    assert near(at(0.2), RED) and near(at(0.4), BLUE) and near(at(0.6), BLUE)
    canvas.mouse.move(x + w * 0.8, mid, steps=5)
    settle(canvas)
    assert near(at(0.4), RED) and near(at(0.7), RED) and near(at(0.9), BLUE)
    # a press and drag on the picture moves the split, not the node
    pos = canvas.evaluate("window.loom.nodeById('cmp').pos.slice()")
    canvas.mouse.down()
    canvas.mouse.move(x + w * 0.1, mid, steps=6)
    canvas.mouse.up()
    settle(canvas)
    assert canvas.evaluate("window.loom.nodeById('cmp').pos.slice()") == pos
    assert near(at(0.05), RED) and near(at(0.3), BLUE)
    assert canvas.evaluate("Object.keys(window.loom.canvas.selected_nodes)") == ["cmp"]


def lightbox_pixel(page: Any, el: Any, fx: float) -> tuple[int, int, int]:
    box = el.bounding_box()
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    return shot.getpixel((int(box["x"] + box["width"] * fx), int(box["y"] + box["height"] / 2)))


def test_two_gallery_images_open_in_the_comparer(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, compare_workflow(), tmp_path)
    queue_and_wait(canvas)
    canvas.click(".tabs button[data-tab='gallery']")
    a = canvas.locator("#gallery figure:has(img[src*='_a_'])").first
    b = canvas.locator("#gallery figure:has(img[src*='_b_'])").first
    assert canvas.is_disabled("#btn-compare")
    a.click(modifiers=["Shift"])
    b.click(modifiers=["Shift"])
    assert canvas.locator("#lightbox").is_hidden()     # Shift-click picks, it does not open
    assert a.get_attribute("data-pick") == "a" and b.get_attribute("data-pick") == "b"
    canvas.click("#btn-compare")
    comparer = canvas.locator("#lightbox .comparer")
    comparer.wait_for()
    canvas.wait_for_function("[...document.querySelectorAll('#lightbox .comparer img')]"
                             ".every((i) => i.complete && i.naturalWidth)")
    # a 64 px image is enlarged (pixelated) so the split can be placed
    canvas.wait_for_function("document.querySelector('#lightbox .comparer').getBoundingClientRect().width >= 400")
    box = comparer.bounding_box()
    mid = box["y"] + box["height"] / 2
    canvas.mouse.move(box["x"] + box["width"] * 0.25, mid)
    assert near(lightbox_pixel(canvas, comparer, 0.15), RED) and near(lightbox_pixel(canvas, comparer, 0.4), BLUE)
    canvas.mouse.move(box["x"] + box["width"] * 0.75, mid, steps=5)
    assert near(lightbox_pixel(canvas, comparer, 0.4), RED) and near(lightbox_pixel(canvas, comparer, 0.9), BLUE)
    # dragging moves it too; a click on the picture does not close the lightbox
    canvas.mouse.down()
    canvas.mouse.move(box["x"] + box["width"] * 0.5, mid, steps=5)
    canvas.mouse.up()
    assert canvas.locator("#lightbox").is_visible()
    assert abs(float(comparer.get_attribute("data-split")) - 0.5) < 0.02
    canvas.keyboard.press("ArrowLeft")
    assert abs(float(comparer.get_attribute("data-split")) - 0.45) < 0.02
    canvas.keyboard.press("Escape")
    assert canvas.locator("#lightbox").is_hidden()
    # a plain click still opens one image, without the comparer
    a.click()
    canvas.locator("#lightbox > img").wait_for()
    assert canvas.locator("#lightbox .comparer").count() == 0
