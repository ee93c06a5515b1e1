"""Running from the canvas: queue, watch, outputs, problems, failures, interrupt, cancel."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from web_helpers import (NEW_FINAL_RUN_JS, RUN_IDS_JS, drop_file, exported, open_workflow,
                         queue_and_wait, tiny_workflow, widget_xy)

IMAGES_READY = """(id) => {
  const st = window.loom.nodeById(id).loom;
  return st.images.length > 0 && st.images.every((i) => i.complete && i.naturalWidth > 0)
    && st.imageRects.length > 0;
}"""

PIXEL_AT_IMAGE = """(id) => {
  const node = window.loom.nodeById(id);
  const [x, y, w, h] = node.loom.imageRects[0].rect;
  const c = window.loom.canvas.ds.convertOffsetToCanvas([node.pos[0] + x + w / 2, node.pos[1] + y + h / 2]);
  const dpr = Math.max(window.devicePixelRatio || 1, 1);
  const ctx = window.loom.canvas.canvas.getContext('2d');
  return Array.from(ctx.getImageData(Math.round(c[0] * dpr), Math.round(c[1] * dpr), 1, 1).data);
}"""


def drawn_pixel(canvas: Any, node: str, expected: str, timeout: float = 5000) -> list[int]:
    """The pixel at the middle of ``node``'s first image once a frame shows what ``expected``
    (a JS predicate on [r, g, b, a]) accepts, or, after ``timeout`` ms, the pixel as it is.

    Images load, then the node grows and its neighbours move: the frame that draws the image
    at its final place can come a little after the image is ready."""
    try:
        canvas.wait_for_function(f"(id) => ({expected})(({PIXEL_AT_IMAGE})(id))", arg=node,
                                 timeout=timeout)
    except Exception:  # noqa: BLE001 - the caller's assertion reports the pixel
        pass
    return canvas.evaluate(PIXEL_AT_IMAGE, node)


def _slow_workflow(steps: int = 400, delay: float = 0.05) -> dict[str, Any]:
    wf = tiny_workflow()
    wf["nodes"]["slow"] = {"type": "t_slow", "inputs": {"image": {"node": "solid", "output": "image"},
                                                        "steps": steps, "delay": delay},
                           "ui": {"pos": [360, 300], "size": [240, 200]}}
    wf["nodes"]["save"]["inputs"]["image"] = {"node": "slow", "output": "image"}
    return wf


def _finished_runs(page: Any) -> int:
    return page.locator("#run-list li.finished").count()


def test_queue_runs_and_shows_the_output_on_its_node(canvas: Any, tmp_path: Path) -> None:
    wf = tiny_workflow(solid__height=40)
    wf["nodes"]["save"]["ui"]["size"] = [200, 120]  # too small for its image: it grows
    open_workflow(canvas, wf, tmp_path)
    steps = canvas.evaluate("window.loom.history.index")
    before = canvas.evaluate(RUN_IDS_JS)
    canvas.keyboard.press("Control+Enter")
    canvas.wait_for_function(NEW_FINAL_RUN_JS, arg=before)
    canvas.wait_for_function(IMAGES_READY, arg="save")
    r, g, b, _ = drawn_pixel(canvas, "save", "(p) => p[0] < 30 && p[1] > 225 && p[2] > 225")
    assert r < 30 and g > 225 and b > 225, (r, g, b)  # red, inverted: cyan
    statuses = canvas.evaluate("['solid','invert','save'].map((id) => window.loom.nodeById(id).loom.status)")
    assert statuses == ["done", "done", "done"]
    assert canvas.locator("#gallery figure img").count() >= 1
    assert canvas.evaluate("window.loom.nodeById('save').size[1]") > 200
    canvas.wait_for_timeout(800)  # growing the node to show the image is not an edit
    assert canvas.evaluate("window.loom.history.index") == steps
    assert canvas.is_hidden("#dirty-dot")

    _, status = queue_and_wait(canvas)  # nothing changed: the output comes from the cache
    assert status == "finished"
    statuses = canvas.evaluate("['solid','invert','save'].map((id) => window.loom.nodeById(id).loom.status)")
    assert statuses == [None, None, "cached"]  # the cached output needs nothing upstream

    # an edit and its undo rebuild the graph, but the results stay on the nodes
    canvas.mouse.click(*widget_xy(canvas, "solid", "width", 0.5))
    canvas.fill(".graphdialog input", "200")
    canvas.keyboard.press("Enter")
    canvas.wait_for_function("!document.querySelector('#btn-undo').disabled")
    canvas.mouse.click(5, 400)
    canvas.keyboard.press("Control+z")
    canvas.wait_for_function("window.loom.exportWorkflow().nodes.solid.inputs.width === 64")
    canvas.wait_for_function(IMAGES_READY, arg="save")


def test_open_a_workflow_from_a_png_by_file_and_by_drop(canvas: Any, tmp_path: Path) -> None:
    from loom import png_info
    wf = tiny_workflow(solid__color="green")
    wf["meta"]["title"] = "Carried in a PNG"
    path = tmp_path / "made_by_loom.png"
    PILImage.new("RGB", (8, 8)).save(path, pnginfo=png_info(wf, {"run": "test"}))
    with canvas.expect_file_chooser() as fc:
        canvas.click("#btn-load")
    fc.value.set_files(str(path))
    canvas.wait_for_function("document.querySelector('#wf-title').textContent === 'Carried in a PNG'")
    assert exported(canvas)["nodes"]["solid"]["inputs"]["color"] == "green"

    # a PNG the server wrote after a run, dropped onto the canvas, brings its workflow back
    canvas.mouse.click(*widget_xy(canvas, "solid", "color", 0.5))
    canvas.click(".litecontextmenu .litemenu-entry:has-text('blue')")
    canvas.click("#btn-queue")
    canvas.wait_for_function(IMAGES_READY, arg="save")
    url = canvas.evaluate("window.loom.nodeById('save').loom.images[0].src")
    canvas.click("#btn-new")
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")
    drop_file(canvas, url, "output.png", "image/png", (400, 300), is_url=True)
    canvas.wait_for_function("window.loom.graph.nodes.length === 3")
    assert exported(canvas)["nodes"]["solid"]["inputs"]["color"] == "blue"


def test_validation_problems_are_shown_on_their_nodes(canvas: Any, console: Any, tmp_path: Path) -> None:
    console.allow("status of 400")  # the refused POST /api/runs
    wf = tiny_workflow(solid__width=4)  # below the minimum 8
    wf["nodes"]["other"] = {"type": "t_save", "inputs": {}, "ui": {"pos": [620, 460], "size": [200, 100]}}
    open_workflow(canvas, wf, tmp_path)
    runs_before = canvas.locator("#run-list li[data-run]").count()
    canvas.click("#btn-queue")
    canvas.wait_for_selector("#problem-list li")
    errors = canvas.evaluate("['solid', 'invert', 'save', 'other']"
                             ".map((id) => !!window.loom.nodeById(id).has_errors)")
    assert errors == [True, False, False, True]
    items = canvas.eval_on_selector_all("#problem-list li",
                                        "els => els.map(e => [e.dataset.node, e.dataset.input])")
    assert sorted(items) == [["other", "image"], ["solid", "width"]]
    assert "out_of_range" in canvas.text_content("#problem-list li[data-node='solid']")
    assert canvas.locator("#run-list li[data-run]").count() == runs_before  # nothing was queued

    # fixing the value clears its problem; the other one stays
    canvas.mouse.click(*widget_xy(canvas, "solid", "width", 0.5))
    canvas.fill(".graphdialog input", "32")
    canvas.keyboard.press("Enter")
    canvas.wait_for_function("!window.loom.nodeById('solid').has_errors")
    assert canvas.locator("#problem-list li").count() == 1
    assert canvas.evaluate("window.loom.nodeById('other').has_errors")


def test_a_failing_node_is_outlined_with_its_message(canvas: Any, tmp_path: Path) -> None:
    wf = tiny_workflow()
    wf["nodes"]["fail"] = {"type": "t_fail", "inputs": {"image": {"node": "invert", "output": "image"},
                                                        "fail": True},
                           "ui": {"pos": [360, 300], "size": [220, 80]}}
    wf["nodes"]["save"]["inputs"]["image"] = {"node": "fail", "output": "image"}
    open_workflow(canvas, wf, tmp_path)
    run_id, status = queue_and_wait(canvas)
    assert status == "failed"
    state = canvas.evaluate("(() => { const n = window.loom.nodeById('fail'); "
                            "return [n.has_errors, n.loom.status, n.loom.error && n.loom.error.message]; })()")
    assert state[0] is True and state[1] == "failed" and "failing on purpose" in state[2]
    assert canvas.evaluate("window.loom.nodeById('invert').loom.status") in ("done", "cached")
    assert "failing on purpose" in canvas.text_content(f"#run-list li[data-run='{run_id}']")
    assert canvas.locator(".toast.error").count() >= 1


def test_progress_preview_interrupt_and_cancel(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, _slow_workflow(), tmp_path)
    canvas.fill("#batch", "2")
    before = canvas.evaluate(RUN_IDS_JS)
    canvas.click("#btn-queue")
    canvas.wait_for_function("(() => { const st = window.loom.nodeById('slow'); "
                             "return st.loom.status === 'running' && st.progress > 0.01 "
                             "&& st.loom.preview && st.loom.preview.complete; })()")
    assert canvas.is_visible("#run-progress")
    assert "step" in canvas.text_content("#run-progress .label")
    canvas.wait_for_selector("#run-list li.queued")
    canvas.click("#run-list li.queued button")  # cancel the second run before it starts
    canvas.wait_for_selector("#run-list li.cancelled")
    canvas.click("#btn-interrupt")
    canvas.wait_for_function(NEW_FINAL_RUN_JS, arg=before)
    assert canvas.locator("#run-list li.interrupted").count() >= 1
    state = canvas.evaluate("(() => { const n = window.loom.nodeById('slow'); "
                            "return [n.loom.status, n.progress ?? null]; })()")
    assert state == [None, None]
    assert canvas.locator("#run-list li.running").count() == 0
    assert canvas.is_hidden("#run-progress")


def test_seed_changes_after_queue_unless_fixed(canvas: Any, tmp_path: Path, loom_server: Any) -> None:
    wf = tiny_workflow()
    wf["nodes"]["noise"] = {"type": "t_noise", "inputs": {"seed": 5, "size": 16},
                            "ui": {"pos": [60, 300], "size": [240, 120]}}
    wf["nodes"]["fixed"] = {"type": "t_noise", "inputs": {"seed": 7, "size": 16},
                            "ui": {"pos": [60, 460], "size": [240, 120], "seed_control": {"seed": "fixed"}}}
    wf["nodes"]["save2"] = {"type": "t_save", "inputs": {"image": {"node": "noise", "output": "image"}},
                            "ui": {"pos": [360, 300], "size": [200, 200]}}
    wf["nodes"]["save3"] = {"type": "t_save", "inputs": {"image": {"node": "fixed", "output": "image"}},
                            "ui": {"pos": [360, 520], "size": [200, 200]}}
    open_workflow(canvas, wf, tmp_path)
    run_id, status = queue_and_wait(canvas)
    assert status == "finished"
    queued = loom_server.get_json(f"/api/runs/{run_id}")["workflow"]["nodes"]
    assert queued["noise"]["inputs"]["seed"] == 5 and queued["fixed"]["inputs"]["seed"] == 7
    now = exported(canvas)["nodes"]
    assert now["noise"]["inputs"]["seed"] != 5
    assert now["fixed"]["inputs"]["seed"] == 7


def test_image_input_uploads_and_shows_a_thumbnail(canvas: Any, tmp_path: Path) -> None:
    wf = {"format": "loom.workflow", "version": 1, "nodes": {
        "load": {"type": "load_image", "inputs": {}, "ui": {"pos": [60, 100], "size": [260, 260]}},
        "invert": {"type": "t_invert", "inputs": {"image": {"node": "load", "output": "image"}},
                   "ui": {"pos": [380, 100], "size": [200, 60]}},
        "save": {"type": "t_save", "inputs": {"image": {"node": "invert", "output": "image"}},
                 "ui": {"pos": [640, 100], "size": [260, 260]}}}}
    open_workflow(canvas, wf, tmp_path)
    picture = tmp_path / "white.png"
    buf = io.BytesIO()
    PILImage.new("RGB", (20, 10), (255, 255, 255)).save(buf, format="PNG")
    picture.write_bytes(buf.getvalue())
    with canvas.expect_file_chooser() as fc:
        canvas.mouse.click(*widget_xy(canvas, "load", "upload image…", 0.5))
    fc.value.set_files(str(picture))
    canvas.wait_for_function("window.loom.nodeById('load').loom.thumbnail?.naturalWidth === 20")
    name = exported(canvas)["nodes"]["load"]["inputs"]["image"]
    assert name.startswith("white") and name.endswith(".png")
    canvas.click("#btn-queue")
    canvas.wait_for_function(IMAGES_READY, arg="save")
    r, g, b, _ = drawn_pixel(canvas, "save", "(p) => Math.max(p[0], p[1], p[2]) < 30")
    assert max(r, g, b) < 30, (r, g, b)  # white, inverted


def test_the_event_socket_reconnects_by_itself(canvas: Any, tmp_path: Path) -> None:
    canvas.wait_for_selector("#conn.ok")
    canvas.evaluate("window.loom.socket.ws.close()")
    canvas.wait_for_selector("#conn:not(.ok)")
    canvas.wait_for_selector("#conn.ok")
    open_workflow(canvas, tiny_workflow(solid__color="white"), tmp_path)
    canvas.click("#btn-queue")
    canvas.wait_for_function(IMAGES_READY, arg="save")  # events arrive on the new socket
    assert _finished_runs(canvas) >= 1


def test_text_and_values_are_shown_on_output_nodes(canvas: Any, tmp_path: Path) -> None:
    wf = {"format": "loom.workflow", "version": 1, "nodes": {
        "text": {"type": "t_text", "inputs": {"text": "hi there", "repeat": 2},
                 "ui": {"pos": [60, 100], "size": [280, 200]}},
        "show": {"type": "t_show_text", "inputs": {"text": {"node": "text", "output": "str"}},
                 "ui": {"pos": [400, 100], "size": [260, 120]}}}}
    open_workflow(canvas, wf, tmp_path)
    _, status = queue_and_wait(canvas)
    assert status == "finished"
    canvas.wait_for_function("window.loom.nodeById('show').loom.text.length === 1")
    shown = canvas.evaluate("(() => { const st = window.loom.nodeById('show').loom; "
                            "return [st.text, st.values]; })()")
    assert shown == [["hi there hi there"], {"length": 17}]
