"""The mask painter of load_image: paint, save as a new upload whose alpha is the mask, cancel."""
from __future__ import annotations

import io
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from web_helpers import exported, open_workflow, widget_xy

W, H = 64, 48

LOAD_WF = {"format": "loom.workflow", "version": 1, "nodes": {
    "load": {"type": "load_image", "inputs": {}, "ui": {"pos": [60, 100], "size": [280, 300]}}}}

MASK_AT_JS = """([x, y]) => {
  const c = document.querySelector('#mask-painter .mp-mask');
  return c.getContext('2d').getImageData(x, y, 1, 1).data[3];
}"""

IMAGE_XY_JS = """([x, y]) => {
  const c = document.querySelector('#mask-painter .mp-mask');
  const r = c.getBoundingClientRect();
  return [r.left + (x + 0.5) * r.width / c.width, r.top + (y + 0.5) * r.height / c.height];
}"""


def _upload(canvas: Any, tmp_path: Path, name: str, colour: tuple[int, int, int]) -> str:
    open_workflow(canvas, LOAD_WF, tmp_path)
    picture = tmp_path / name
    PILImage.new("RGB", (W, H), colour).save(picture, format="PNG")
    with canvas.expect_file_chooser() as fc:
        canvas.mouse.click(*widget_xy(canvas, "load", "upload image…", 0.5))
    fc.value.set_files(str(picture))
    stem = name.removesuffix(".png")
    canvas.wait_for_function("""(stem) => { const n = window.loom.nodeById('load');
      return n.widgets[0].value.startsWith(stem) && n.loom.thumbnail?.src.includes(stem)
        && n.loom.thumbnail.naturalWidth > 0; }""", arg=stem)
    return exported(canvas)["nodes"]["load"]["inputs"]["image"]


def _open_painter(canvas: Any) -> None:
    canvas.mouse.click(*widget_xy(canvas, "load", "paint mask…", 0.5))
    canvas.wait_for_selector("#mask-painter .mp-mask")
    canvas.evaluate("() => new Promise((r) => requestAnimationFrame(() => r(true)))")


def _paint(canvas: Any, size: int, start: tuple[int, int], end: tuple[int, int]) -> None:
    canvas.evaluate("""(v) => { const s = document.querySelector('#mask-painter .mp-size');
      s.value = v; s.dispatchEvent(new Event('input')); }""", size)
    canvas.mouse.move(*canvas.evaluate(IMAGE_XY_JS, list(start)))
    canvas.mouse.down()
    canvas.mouse.move(*canvas.evaluate(IMAGE_XY_JS, list(end)), steps=10)
    canvas.mouse.up()


def _run(server: Any, wf: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(server.url + "/api/runs", data=json.dumps(wf).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as res:
        run_id = json.loads(res.read())["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = server.get_json(f"/api/runs/{run_id}")
        if run["status"] in ("finished", "failed", "interrupted", "cancelled"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end")


def test_paint_and_save_makes_a_masked_upload_that_load_image_reads(canvas: Any, loom_server: Any,
                                                                    tmp_path: Path) -> None:
    original = _upload(canvas, tmp_path, "maskpaint.png", (250, 250, 250))
    _open_painter(canvas)
    assert canvas.evaluate(MASK_AT_JS, [32, 24]) == 0  # an opaque picture: nothing masked yet
    _paint(canvas, 8, (16, 24), (48, 24))  # a horizontal stroke 8 px thick across the middle
    assert canvas.evaluate(MASK_AT_JS, [32, 24]) == 255
    canvas.click("#mask-painter button[data-act='save']")
    canvas.wait_for_selector("#mask-painter", state="detached")
    new = exported(canvas)["nodes"]["load"]["inputs"]["image"]
    assert new == "maskpaint-mask-1.png" and new != original
    canvas.wait_for_function(f"window.loom.nodeById('load').loom.thumbnail?.src.includes('{new}')")

    im = PILImage.open(io.BytesIO(loom_server.get_bytes(f"/api/files/upload/{new}")))
    assert im.format == "PNG" and im.mode == "RGBA" and im.size == (W, H)
    assert im.getpixel((32, 24)) == (250, 250, 250, 0)  # transparent inside, colour kept
    assert im.getpixel((32, 4)) == (250, 250, 250, 255)  # opaque far outside
    assert im.getpixel((2, 44))[3] == 255 and im.getpixel((60, 24))[3] == 255
    first = PILImage.open(io.BytesIO(loom_server.get_bytes(f"/api/files/upload/{original}")))
    assert first.mode == "RGB"  # the original upload is untouched

    # the mask reaches load_image's mask output: 1 inside the stroke, 0 outside
    wf = {"format": "loom.workflow", "version": 1, "nodes": {
        "load": {"type": "load_image", "inputs": {"image": new}},
        "show": {"type": "mask_to_image", "inputs": {"mask": {"node": "load", "output": "mask"}}},
        "save": {"type": "save_image", "inputs": {"images": {"node": "show", "output": "image"},
                                                  "prefix": "maskpaint"}}}}
    run = _run(loom_server, wf)
    assert run["status"] == "finished", run.get("error")
    (saved,) = sorted((loom_server.settings.outputs).glob("maskpaint_*.png"))
    mask = PILImage.open(saved).convert("L")
    assert mask.getpixel((32, 24)) == 255 and mask.getpixel((20, 24)) == 255
    assert mask.getpixel((32, 4)) == 0 and mask.getpixel((2, 44)) == 0 and mask.getpixel((60, 24)) == 0

    # painting again starts from that mask, and saves as the next name
    _open_painter(canvas)
    assert canvas.evaluate(MASK_AT_JS, [32, 24]) == 255 and canvas.evaluate(MASK_AT_JS, [32, 4]) == 0
    canvas.click("#mask-painter button[data-act='invert']")
    assert canvas.evaluate(MASK_AT_JS, [32, 24]) == 0 and canvas.evaluate(MASK_AT_JS, [32, 4]) == 255
    canvas.keyboard.press("Control+z")  # undoes the invert, not a canvas edit
    assert canvas.evaluate(MASK_AT_JS, [32, 24]) == 255
    canvas.click("#mask-painter button[data-act='clear']")
    assert canvas.evaluate(MASK_AT_JS, [32, 24]) == 0
    _paint(canvas, 6, (8, 8), (8, 8))
    canvas.click("#mask-painter button[data-act='save']")
    canvas.wait_for_selector("#mask-painter", state="detached")
    assert exported(canvas)["nodes"]["load"]["inputs"]["image"] == "maskpaint-mask-2.png"
    again = PILImage.open(io.BytesIO(loom_server.get_bytes("/api/files/upload/maskpaint-mask-2.png")))
    assert again.getpixel((8, 8)) == (250, 250, 250, 0)  # the colour under the old mask survived
    assert again.getpixel((32, 24)) == (250, 250, 250, 255)


def test_cancel_and_escape_leave_the_widget_unchanged(canvas: Any, loom_server: Any,
                                                      tmp_path: Path) -> None:
    original = _upload(canvas, tmp_path, "maskcancel.png", (10, 120, 200))
    before = exported(canvas)
    _open_painter(canvas)
    _paint(canvas, 10, (10, 10), (50, 30))
    canvas.click("#mask-painter button[data-act='cancel']")
    canvas.wait_for_selector("#mask-painter", state="detached")
    _open_painter(canvas)
    assert canvas.evaluate(MASK_AT_JS, [30, 20]) == 0  # nothing was kept
    _paint(canvas, 10, (10, 10), (50, 30))
    canvas.click("#mask-painter button[data-act='eraser']")
    _paint(canvas, 16, (30, 20), (30, 20))
    assert canvas.evaluate(MASK_AT_JS, [30, 20]) == 0 and canvas.evaluate(MASK_AT_JS, [48, 29]) == 255
    canvas.keyboard.press("Escape")
    canvas.wait_for_selector("#mask-painter", state="detached")
    assert exported(canvas) == before
    assert exported(canvas)["nodes"]["load"]["inputs"]["image"] == original
    assert not list(loom_server.settings.inputs.glob("maskcancel-mask-*"))
