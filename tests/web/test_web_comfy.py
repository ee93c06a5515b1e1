"""Dropping ComfyUI files on the canvas: converted on the server, opened, the report shown."""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from web_helpers import drop_file, exported, settle

FIXTURES = Path(__file__).resolve().parents[1] / "nodes" / "comfyui_fixtures"


def _text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _data_url(name: str) -> str:
    return "data:image/png;base64," + base64.b64encode((FIXTURES / name).read_bytes()).decode()


def test_drop_a_comfyui_json_opens_it_with_the_report(canvas: Any) -> None:
    drop_file(canvas, _text("ui_sd15_txt2img.json"), "lighthouse.json", "application/json")
    canvas.wait_for_selector("#import-report .state.complete")
    canvas.wait_for_function("document.querySelector('#wf-title').textContent === 'lighthouse'")
    wf = exported(canvas)
    assert wf["nodes"]["3"]["type"] == "sample" and wf["nodes"]["3_scheduler"]["inputs"]["name"] == "dpmpp_2m"
    assert wf["nodes"]["6"]["inputs"]["text"].startswith("a lighthouse")
    assert wf["nodes"]["6"]["ui"]["title"] == "Positive"
    assert wf["groups"][0]["title"] == "Prompts"
    items = canvas.eval_on_selector_all("#import-report li", "els => els.map((e) => e.className)")
    assert items.count("mapped") == 7 and "changed" in items
    canvas.click("#import-report .close")
    assert canvas.query_selector("#import-report") is None


def test_unmapped_nodes_are_placeholders_that_keep_their_data(canvas: Any, console: Any) -> None:
    drop_file(canvas, _text("ui_sd3.json"), "boat.json", "application/json")
    canvas.wait_for_selector("#import-report .state.incomplete")
    canvas.wait_for_selector(".toast.error:has-text('comfyui:ConditioningSetTimestepRange')")
    assert canvas.evaluate("window.loom.nodeById('6').has_errors")
    placeholder = exported(canvas)["nodes"]["6"]
    assert placeholder["type"] == "comfyui:ConditioningSetTimestepRange"
    assert placeholder["comfyui"]["class_type"] == "ConditioningSetTimestepRange"
    assert placeholder["inputs"]["end"] == 0.1
    canvas.click("#import-report li.unmapped[data-node='7']")
    settle(canvas)
    assert canvas.evaluate("Object.keys(window.loom.canvas.selected_nodes)") == ["7"]


def test_drop_a_comfyui_png_and_load_an_api_file(canvas: Any, tmp_path: Path) -> None:
    drop_file(canvas, _data_url("png_sdxl_workflow.png"), "teapot.png", "image/png", is_url=True)
    canvas.wait_for_function("document.querySelector('#wf-title').textContent === 'teapot'")
    wf = exported(canvas)
    assert wf["nodes"]["9"]["inputs"]["start_step"] == 20 and wf["nodes"]["2"]["ui"]["title"] == "Refiner model"
    canvas.wait_for_selector("#import-report .title:has-text('teapot.png')")
    path = tmp_path / "fox_api.json"
    path.write_text(_text("api_sd15_txt2img.json"), encoding="utf-8")
    with canvas.expect_file_chooser() as fc:
        canvas.click("#btn-load")
    fc.value.set_files(str(path))
    canvas.wait_for_function("document.querySelector('#wf-title').textContent === 'fox_api'")
    assert exported(canvas)["nodes"]["6"]["ui"]["title"] == "Fox prompt"


def test_bad_comfyui_input_is_listed_in_the_report(canvas: Any, console: Any) -> None:
    drop_file(canvas, _text("ui_bad_input.json"), "bad.json", "application/json")
    canvas.wait_for_selector("#import-report li.problem")
    problems = canvas.eval_on_selector_all("#import-report li.problem", "els => els.map((e) => e.textContent)")
    assert any("5 KSampler" in p and "widgets_values" in p for p in problems)
    assert any("node 99" in p for p in problems)
    console.allow("400")
    drop_file(canvas, '{"nodes": [], "links": [], "version": 9.9, "format": "x"}', "odd.json", "application/json")
    canvas.wait_for_selector(".toast.error:has-text('odd.json')")
