"""Subgraphs on the canvas: convert a selection, run it (same result, fully cached), edit inside
with undo, unpack, save to the library and insert again, export/import round trip."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from web_helpers import (TITLE_XY_JS, add_from_palette, double_click, drag, exported, open_workflow,
                         queue_and_wait, settle, slot_xy, tiny_workflow)

SELECT_JS = """(ids) => {
  const c = window.loom.canvas;
  c.deselectAll?.();
  c.selectNodes(ids.map((id) => window.loom.nodeById(id)));
}"""
BODY_XY_JS = """(id) => {
  const node = window.loom.nodeById(id);
  const at = [node.pos[0] + node.size[0] / 2, node.pos[1] + node.size[1] - 12];
  const c = window.loom.canvas.ds.convertOffsetToCanvas(at);
  const r = window.loom.canvas.canvas.getBoundingClientRect();
  return [r.left + c[0], r.top + c[1]];
}"""
SHOWN_TYPES_JS = "window.loom.graph.nodes.map((n) => n.type).sort()"


def instance_of(wf: dict[str, Any]) -> str:
    (iid,) = [n for n, e in wf["nodes"].items() if e["type"] == "subgraph"]
    return iid


def run_result(server: Any, run_id: str) -> dict[str, Any]:
    return server.get_json(f"/api/runs/{run_id}")["result"]


def convert_by_menu(page: Any, node: str) -> None:
    """Right-click a selected node's title and pick "Convert to subgraph"."""
    x, y = page.evaluate(TITLE_XY_JS, node)
    page.mouse.click(x, y, button="right")
    page.click(".litecontextmenu .litemenu-entry:has-text('Convert to subgraph')")


def test_convert_a_selection_and_it_runs_with_the_same_result(canvas: Any, tmp_path: Path,
                                                                 loom_server: Any) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    first, status = queue_and_wait(canvas)
    assert "finished" in status

    canvas.evaluate(SELECT_JS, ["invert"])
    convert_by_menu(canvas, "invert")
    wf = exported(canvas)
    iid = instance_of(wf)
    assert set(wf["nodes"]) == {"solid", "save", iid}
    (sid,) = wf["subgraphs"]
    definition = wf["subgraphs"][sid]
    assert list(definition["nodes"]) == ["invert"] and "image" not in definition["nodes"]["invert"]["inputs"]
    assert definition["inputs"] == [{"name": "image", "type": "Image", "to": [{"node": "invert", "input": "image"}]}]
    assert definition["outputs"] == [{"name": "image", "type": "Image",
                                      "from": {"node": "invert", "output": "image"}}]
    assert wf["nodes"][iid]["inputs"] == {"image": {"node": "solid", "output": "image"}}
    assert wf["nodes"]["save"]["inputs"]["image"] == {"node": iid, "output": "image"}
    node = canvas.evaluate("(id) => { const n = window.loom.nodeById(id); return [n.title, n.inputs.map((i) => i.name),"
                           " n.outputs.map((o) => [o.name, o.type])]; }", iid)
    assert node == [definition["title"], ["image"], [["image", "Image"]]]

    # the engine expands it to the same nodes: the run is fully cached, with the first run's image
    second, status = queue_and_wait(canvas)
    assert "finished" in status
    again = run_result(loom_server, second)
    assert again["executed"] == [] and again["cached"] == ["save"]
    assert again["ui"]["save"] == run_result(loom_server, first)["ui"]["save"]
    canvas.wait_for_function("(id) => window.loom.nodeById(id).loom.status === 'cached'", arg="save")

    canvas.keyboard.press("Control+z")  # undo the conversion: one step
    canvas.wait_for_function("() => !!window.loom.nodeById('invert')")
    assert "subgraphs" not in exported(canvas) and set(exported(canvas)["nodes"]) == {"solid", "invert", "save"}


def test_inner_events_and_problems_reach_the_instance(canvas: Any, tmp_path: Path, console: Any) -> None:
    wf = tiny_workflow()
    wf["nodes"]["invert"]["type"] = "t_fail"
    wf["nodes"]["invert"]["inputs"]["fail"] = True
    open_workflow(canvas, wf, tmp_path)
    canvas.evaluate(SELECT_JS, ["solid", "invert"])
    canvas.keyboard.press("Control+Shift+E")
    iid = instance_of(exported(canvas))
    _, status = queue_and_wait(canvas)
    assert "failed" in status
    canvas.wait_for_function("(id) => window.loom.nodeById(id).loom.status === 'failed'", arg=iid)
    assert canvas.evaluate("(id) => window.loom.nodeById(id).loom.error.message", iid)
    console.allow("400")
    bad = exported(canvas)
    (sid,) = bad["subgraphs"]
    bad["subgraphs"][sid]["nodes"]["solid"]["inputs"]["width"] = 5  # under its minimum (8)
    open_workflow(canvas, bad, tmp_path, "bad.json")
    canvas.click("#btn-queue")
    canvas.wait_for_function("(id) => window.loom.nodeById(id).loom.problems.length > 0", arg=iid)
    assert canvas.evaluate("(id) => window.loom.nodeById(id).loom.problems[0].node", iid) == f"{iid}/solid"


def test_edit_inside_with_undo_and_go_back_by_the_breadcrumb(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    canvas.evaluate(SELECT_JS, ["solid", "invert"])
    canvas.keyboard.press("Control+Shift+E")
    iid = instance_of(exported(canvas))
    settle(canvas)
    double_click(canvas, *canvas.evaluate(BODY_XY_JS, iid))
    canvas.wait_for_selector("#subgraph-crumbs:not([hidden])")
    assert canvas.text_content("#subgraph-crumbs").startswith("Workflow›")
    assert canvas.evaluate(SHOWN_TYPES_JS) == ["subgraph_inputs", "subgraph_outputs", "t_invert", "t_solid"]
    # edit inside: bypass the invert node (Ctrl+B); the whole workflow carries the change
    canvas.evaluate(SELECT_JS, ["invert"])
    canvas.keyboard.press("Control+b")
    canvas.wait_for_function("() => window.loom.exportWorkflow().subgraphs")
    (sid,) = exported(canvas)["subgraphs"]
    canvas.wait_for_function("(sid) => window.loom.exportWorkflow().subgraphs[sid].nodes.invert.mode === 'bypass'",
                             arg=sid)
    assert set(exported(canvas)["nodes"]) == {iid, "save"}  # still the whole workflow
    # undo inside stays inside
    canvas.keyboard.press("Control+z")
    canvas.wait_for_function("(sid) => !window.loom.exportWorkflow().subgraphs[sid].nodes.invert.mode", arg=sid)
    assert not canvas.is_hidden("#subgraph-crumbs")
    assert canvas.evaluate(SHOWN_TYPES_JS) == ["subgraph_inputs", "subgraph_outputs", "t_invert", "t_solid"]
    canvas.keyboard.press("Control+Shift+Z")
    canvas.wait_for_function("(sid) => window.loom.exportWorkflow().subgraphs[sid].nodes.invert.mode === 'bypass'",
                             arg=sid)
    # a link to the outputs node's "+" slot adds an output port
    drag(canvas, slot_xy(canvas, "solid", "out", 0), slot_xy(canvas, "outputs", "in", 1))
    canvas.wait_for_function("(sid) => window.loom.exportWorkflow().subgraphs[sid].outputs.length === 2", arg=sid)
    assert exported(canvas)["subgraphs"][sid]["outputs"][1] == {
        "name": "image_2", "type": "Image", "from": {"node": "solid", "output": "image"}}
    canvas.click("#subgraph-crumbs button:has-text('Workflow')")
    canvas.wait_for_selector("#subgraph-crumbs", state="hidden")
    assert canvas.evaluate(SHOWN_TYPES_JS) == ["subgraph", "t_save"]
    assert exported(canvas)["subgraphs"][sid]["nodes"]["invert"]["mode"] == "bypass"
    assert canvas.evaluate("(id) => window.loom.nodeById(id).outputs.map((o) => o.name)", iid) == ["image", "image_2"]


def test_unpack_puts_the_nodes_back(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    canvas.evaluate(SELECT_JS, ["solid", "invert"])
    canvas.keyboard.press("Control+Shift+E")
    iid = instance_of(exported(canvas))
    x, y = canvas.evaluate(TITLE_XY_JS, iid)
    canvas.mouse.click(x, y, button="right")
    canvas.click(".litecontextmenu .litemenu-entry:has-text('Unpack subgraph')")
    wf = exported(canvas)
    assert "subgraphs" not in wf
    types = {e["type"]: n for n, e in wf["nodes"].items()}
    assert set(types) == {"t_solid", "t_invert", "t_save"}
    assert wf["nodes"][types["t_invert"]]["inputs"]["image"] == {"node": types["t_solid"], "output": "image"}
    assert wf["nodes"]["save"]["inputs"]["image"] == {"node": types["t_invert"], "output": "image"}
    _, status = queue_and_wait(canvas)
    assert "finished" in status


def test_save_to_library_insert_again_and_round_trip(canvas: Any, tmp_path: Path, loom_server: Any) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    canvas.evaluate(SELECT_JS, ["invert"])
    canvas.keyboard.press("Control+Shift+E")
    wf = exported(canvas)
    iid = instance_of(wf)
    canvas.evaluate("(id) => { window.loom.nodeById(id).title = 'Flip colours'; }", iid)
    x, y = canvas.evaluate(TITLE_XY_JS, iid)
    canvas.mouse.click(x, y, button="right")
    canvas.click(".litecontextmenu .litemenu-entry:has-text('Save subgraph to library')")
    canvas.wait_for_selector(".toast:has-text('Saved \"Flip colours\"')")
    saved = json.loads((loom_server.settings.user / "workflows" / "subgraph-Flip_colours.json").read_text())
    assert saved["meta"]["subgraph"] is True and saved["meta"]["title"] == "Flip colours"
    listing = {w["name"]: w for w in loom_server.get_json("/api/workflows")["workflows"]}
    assert listing["subgraph-Flip_colours"]["subgraph"] is True

    # export and import keep the "subgraphs" section
    path = tmp_path / "with_subgraph.json"
    path.write_text(json.dumps(exported(canvas)))
    canvas.click("#btn-new")
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")
    open_workflow(canvas, json.loads(path.read_text()), tmp_path, "again.json")
    back = exported(canvas)
    assert back["subgraphs"] == wf["subgraphs"] and back["nodes"][iid]["inputs"] == wf["nodes"][iid]["inputs"]
    assert back["nodes"][iid]["ui"]["title"] == "Flip colours"

    # insert the saved subgraph from the node search into an empty workflow, wire and run it
    canvas.click("#btn-new")
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")
    new = add_from_palette(canvas, 400, 300, "flip colours")
    inserted = exported(canvas)
    assert inserted["nodes"][new]["type"] == "subgraph"
    sid = inserted["nodes"][new]["subgraph"]
    assert inserted["subgraphs"][sid]["nodes"] == saved["subgraphs"][saved["meta"]["subgraph_id"]]["nodes"]
    assert canvas.evaluate("(id) => window.loom.nodeById(id).title", new) == "Flip colours"


def test_a_subgraph_inside_a_subgraph_runs_from_the_same_cache(canvas: Any, tmp_path: Path,
                                                                loom_server: Any) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    first, _ = queue_and_wait(canvas)
    canvas.evaluate(SELECT_JS, ["solid", "invert"])
    canvas.keyboard.press("Control+Shift+E")
    outer = instance_of(exported(canvas))
    settle(canvas)
    double_click(canvas, *canvas.evaluate(BODY_XY_JS, outer))
    canvas.wait_for_selector("#subgraph-crumbs:not([hidden])")
    canvas.evaluate(SELECT_JS, ["invert"])
    canvas.keyboard.press("Control+Shift+E")  # converted inside: a nested subgraph
    inner = canvas.evaluate("window.loom.graph.nodes.find((n) => n.type === 'subgraph').id")
    settle(canvas)
    double_click(canvas, *canvas.evaluate(BODY_XY_JS, inner))
    canvas.wait_for_function("window.loom.subgraphs.path.length === 2")
    assert canvas.text_content("#subgraph-crumbs") == "Workflow›Subgraph 1›Subgraph 2"
    assert canvas.evaluate(SHOWN_TYPES_JS) == ["subgraph_inputs", "subgraph_outputs", "t_invert"]
    canvas.click("#subgraph-crumbs button[data-depth='0']")
    canvas.wait_for_selector("#subgraph-crumbs", state="hidden")
    wf = exported(canvas)
    assert set(wf["subgraphs"]) == {"subgraph_1", "subgraph_2"}
    assert wf["subgraphs"]["subgraph_1"]["nodes"][str(inner)]["subgraph"] == "subgraph_2"
    second, status = queue_and_wait(canvas)
    assert "finished" in status
    result = run_result(loom_server, second)
    assert result["executed"] == [] and result["ui"]["save"] == run_result(loom_server, first)["ui"]["save"]
