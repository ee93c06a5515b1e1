"""Workflows in and out of the canvas: save, drop, examples, the library, menus, past runs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from web_helpers import GRAPH_XY_JS, drop_file, exported, open_workflow, tiny_workflow


def test_save_downloads_the_workflow_file(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(solid__color="white"), tmp_path)
    with canvas.expect_download() as dl:
        canvas.click("#btn-save")
    saved = json.loads(Path(dl.value.path()).read_text())
    assert dl.value.suggested_filename == "Web_test_solid_invert_save.json"
    assert saved == exported(canvas)
    assert saved["format"] == "loom.workflow" and saved["nodes"]["solid"]["inputs"]["color"] == "white"
    assert saved["groups"] == [{"title": "Make", "bounding": [40, 60, 540, 200]}]
    assert canvas.is_hidden("#dirty-dot")


def test_drop_a_json_file_and_bad_files_are_explained(canvas: Any) -> None:
    wf = tiny_workflow(solid__color="black")
    wf["meta"]["title"] = "Dropped"
    drop_file(canvas, json.dumps(wf), "dropped.json", "application/json", (400, 300))
    canvas.wait_for_function("document.querySelector('#wf-title').textContent === 'Dropped'")
    assert exported(canvas)["nodes"]["solid"]["inputs"]["color"] == "black"
    drop_file(canvas, "{not json", "broken.json", "application/json", (400, 300))
    canvas.wait_for_selector(".toast.error:has-text('broken.json')")
    drop_file(canvas, json.dumps({"format": "other"}), "other.json", "application/json", (400, 300))
    canvas.wait_for_selector(".toast.error:has-text('not a Loom workflow')")
    assert canvas.text_content("#wf-title") == "Dropped"  # the canvas is unharmed


def test_unknown_node_types_are_kept_and_flagged(canvas: Any, tmp_path: Path) -> None:
    wf = tiny_workflow()
    wf["nodes"]["ghost"] = {"type": "not_installed", "version": 3,
                            "inputs": {"image": {"node": "invert", "output": "image"}, "strength": 0.5},
                            "ui": {"pos": [360, 320], "size": [220, 80]}}
    open_workflow(canvas, wf, tmp_path)
    canvas.wait_for_selector(".toast.error:has-text('not_installed')")
    assert canvas.evaluate("window.loom.nodeById('ghost').has_errors")
    ghost = exported(canvas)["nodes"]["ghost"]
    assert ghost["type"] == "not_installed" and ghost["version"] == 3
    assert ghost["inputs"] == {"image": {"node": "invert", "output": "image"}, "strength": 0.5}


def test_examples_menu_and_the_library(canvas: Any, loom_server: Any, tmp_path: Path) -> None:
    examples = [w for w in loom_server.get_json("/api/workflows")["workflows"] if w["source"] == "example"]
    last = examples[-1]
    canvas.select_option("#examples", last["name"])
    canvas.wait_for_function("(t) => document.querySelector('#wf-title').textContent === t", arg=last["title"])
    original = loom_server.get_json(f"/api/workflows/{last['name']}")
    assert set(exported(canvas)["nodes"]) == set(original["nodes"])

    open_workflow(canvas, tiny_workflow(solid__color="green"), tmp_path)
    canvas.once("dialog", lambda d: d.accept("my web test"))
    canvas.click("#btn-save-server")
    canvas.wait_for_selector(".toast.ok:has-text('my_web_test')")
    stored = loom_server.get_json("/api/workflows/my_web_test")
    assert stored["nodes"]["solid"]["inputs"]["color"] == "green"
    canvas.wait_for_selector("#examples optgroup[label='Saved'] option[value='my_web_test']", state="attached")
    canvas.click("#btn-new")
    canvas.select_option("#examples", "my_web_test")
    canvas.wait_for_function("!!window.loom.nodeById('solid')")
    assert exported(canvas)["nodes"]["solid"]["inputs"]["color"] == "green"


def test_right_click_menu_adds_nodes_by_category(canvas: Any) -> None:
    canvas.click("#btn-new")
    x, y = canvas.evaluate(GRAPH_XY_JS, [200, 200])
    canvas.mouse.click(x, y, button="right")
    canvas.click(".litecontextmenu .litemenu-entry:has-text('Add Node')")
    canvas.click(".litecontextmenu .litemenu-entry:text-is('test')")
    canvas.click(".litecontextmenu .litemenu-entry:text-is('T Solid')")
    canvas.wait_for_function("window.loom.graph.nodes.length === 1")
    (node,) = exported(canvas)["nodes"].values()
    assert node["type"] == "t_solid" and node["inputs"] == {"color": "red", "width": 64, "height": 64}
    # litegraph puts the body where you clicked; ui.pos is the corner of the title bar above it
    assert abs(node["ui"]["pos"][0] - 200) < 5 and abs(node["ui"]["pos"][1] - 170) < 5


def test_open_a_past_run_from_the_history(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(solid__color="blue", save__prefix="history"), tmp_path)
    canvas.click("#btn-queue")
    canvas.wait_for_function("window.loom.nodeById('save').loom.images.length > 0")
    run_id = canvas.evaluate("window.loom.runs.current")
    canvas.click("#btn-new")
    canvas.click(f"#run-list li[data-run='{run_id}'] button:has-text('Open')")
    canvas.wait_for_function("(window.loom.nodeById('save')?.loom.images.length ?? 0) > 0")
    assert exported(canvas)["nodes"]["save"]["inputs"]["prefix"] == "history"


def test_dropping_an_image_on_empty_canvas_adds_an_image_input_node(canvas: Any) -> None:
    import base64
    import io

    from PIL import Image as PILImage
    buf = io.BytesIO()
    PILImage.new("RGB", (12, 9), (10, 200, 30)).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    canvas.click("#btn-new")
    drop_file(canvas, url, "dropped.png", "image/png", (300, 300), is_url=True)
    canvas.wait_for_function("window.loom.graph.nodes.length === 1 "
                             "&& window.loom.graph.nodes[0].loom.thumbnail?.naturalWidth === 12")
    (node,) = exported(canvas)["nodes"].values()
    image_inputs = [i["name"] for s in canvas.evaluate("[...window.loom.nodeSchemas.values()]")
                    if s["id"] == node["type"] for i in s["inputs"] if i["type"] == "image_file"]
    assert image_inputs and node["inputs"][image_inputs[0]].startswith("dropped")


def test_a_missing_litegraph_is_explained(page: Any, loom_server: Any) -> None:
    page.route("**/vendor/litegraph/**", lambda route: route.fulfill(status=404, body="not found"))
    page.goto(loom_server.url + "/")
    page.wait_for_selector("#boot-error:not([hidden])")
    assert "npm ci --omit=dev" in page.text_content("#boot-error")
