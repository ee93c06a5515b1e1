"""Editing on the canvas with a real mouse and keyboard: palette, wiring, widgets, undo."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from web_helpers import (GRAPH_XY_JS, TITLE_XY_JS, add_from_palette, drag, exported, open_workflow,
                         slot_xy, tiny_workflow, widget_xy)


def _strip_ui(wf: dict[str, Any]) -> dict[str, Any]:
    return {nid: {"type": n["type"], "inputs": n.get("inputs", {})} for nid, n in wf["nodes"].items()}


def test_default_workflow_is_open_and_round_trips(canvas: Any, loom_server: Any) -> None:
    listing = loom_server.get_json("/api/workflows")["workflows"]
    names = [w["name"] for w in listing]
    name = "text_to_image" if "text_to_image" in names else next(
        w["name"] for w in listing if w["source"] == "example")
    original = loom_server.get_json(f"/api/workflows/{name}")
    defaults = {s["id"]: {i["name"]: i.get("default") for i in s["inputs"]}
                for s in loom_server.get_json("/api/nodes")}
    shown = exported(canvas)
    assert set(shown["nodes"]) == set(original["nodes"])
    for nid, node in _strip_ui(original).items():
        got = _strip_ui(shown)[nid]
        assert got["type"] == node["type"]
        # the canvas writes every widget value: the file's own, and defaults for the rest
        extra = {k: v for k, v in got["inputs"].items() if k not in node["inputs"]}
        assert {k: got["inputs"][k] for k in node["inputs"]} == node["inputs"]
        assert all(defaults[node["type"]][k] == v for k, v in extra.items()), (nid, extra)
    for nid, node in original["nodes"].items():
        if "ui" in node and "pos" in node["ui"]:
            assert shown["nodes"][nid]["ui"]["pos"] == node["ui"]["pos"]
    assert canvas.text_content("#wf-title") == original.get("meta", {}).get("title", "Untitled workflow")
    assert canvas.is_visible("#btn-queue")


def test_palette_adds_nodes_and_wires_typed_sockets(canvas: Any) -> None:
    canvas.click("#btn-new")
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")
    solid = add_from_palette(canvas, 200, 200, "solid colour")
    invert = add_from_palette(canvas, 560, 200, "invert an image")
    mask = add_from_palette(canvas, 200, 480, "all-ones mask")
    save = add_from_palette(canvas, 560, 480, "t save")
    types = {n: t["type"] for n, t in exported(canvas)["nodes"].items()}
    assert types == {solid: "t_solid", invert: "t_invert", mask: "t_mask", save: "t_save"}

    drag(canvas, slot_xy(canvas, solid, "out", 0), slot_xy(canvas, invert, "in", 0))
    wf = exported(canvas)
    assert wf["nodes"][invert]["inputs"]["image"] == {"node": solid, "output": "image"}

    # a Mask output does not fit an Image input: refused while dragging, nothing changes
    drag(canvas, slot_xy(canvas, mask, "out", 0), slot_xy(canvas, invert, "in", 0))
    drag(canvas, slot_xy(canvas, mask, "out", 0), slot_xy(canvas, save, "in", 0))
    canvas.wait_for_selector(".toast.warn:has-text('a Mask output cannot feed')")
    wf = exported(canvas)
    assert wf["nodes"][invert]["inputs"]["image"] == {"node": solid, "output": "image"}
    assert "image" not in wf["nodes"][save]["inputs"]
    assert canvas.evaluate("window.loom.graph.links.size ?? Object.keys(window.loom.graph.links).length") == 1

    drag(canvas, slot_xy(canvas, invert, "out", 0), slot_xy(canvas, save, "in", 0))
    assert exported(canvas)["nodes"][save]["inputs"]["image"] == {"node": invert, "output": "image"}


def test_dragging_a_link_to_empty_canvas_offers_fitting_nodes(canvas: Any) -> None:
    canvas.click("#btn-new")
    solid = add_from_palette(canvas, 200, 250, "t solid")
    start = slot_xy(canvas, solid, "out", 0)
    drag(canvas, start, [start[0] + 260, start[1] + 40])
    canvas.wait_for_selector("#palette:not([hidden])")
    offered = canvas.eval_on_selector_all("#palette li", "els => els.map(e => e.dataset.type)")
    assert "t_invert" in offered and "t_save" in offered
    assert "t_solid" not in offered and "t_mask" not in offered  # no Image input
    canvas.keyboard.type("t invert")
    canvas.keyboard.press("Enter")
    canvas.wait_for_function("window.loom.graph.nodes.length === 2")
    wf = exported(canvas)
    (inv,) = [n for n, e in wf["nodes"].items() if e["type"] == "t_invert"]
    assert wf["nodes"][inv]["inputs"]["image"] == {"node": solid, "output": "image"}


def test_widgets_edit_every_kind(canvas: Any, tmp_path: Path) -> None:
    wf = tiny_workflow()
    wf["nodes"]["text"] = {"type": "t_text", "inputs": {"text": "hello", "repeat": 1, "shout": False},
                           "ui": {"pos": [60, 400], "size": [300, 200]}}
    wf["nodes"]["noise"] = {"type": "t_noise", "inputs": {"seed": 5, "size": 32},
                            "ui": {"pos": [420, 420], "size": [260, 120]}}
    open_workflow(canvas, wf, tmp_path)

    # number: click the middle, type a value in the prompt
    canvas.mouse.click(*widget_xy(canvas, "solid", "width", 0.5))
    canvas.fill(".graphdialog input", "128")
    canvas.keyboard.press("Enter")
    # number: the right arrow adds one step (8)
    canvas.mouse.click(*widget_xy(canvas, "solid", "height", 0.97))
    # combo: pick from the menu
    canvas.mouse.click(*widget_xy(canvas, "solid", "color", 0.5))
    canvas.click(".litecontextmenu .litemenu-entry:has-text('blue')")
    # toggle
    canvas.mouse.click(*widget_xy(canvas, "text", "shout", 0.5))
    # multiline text: a real textarea over the node
    area = canvas.locator("#dom-widgets textarea[data-input='text']")
    area.click()
    area.fill("a red circle\non a blue square")
    # single-line text: the prompt dialog
    canvas.mouse.click(*widget_xy(canvas, "save", "prefix", 0.5))
    canvas.fill(".graphdialog input", "renamed/out")
    canvas.keyboard.press("Enter")
    # seed control: "after run" combo
    canvas.mouse.click(*widget_xy(canvas, "noise", "seed after run", 0.5))
    canvas.click(".litecontextmenu .litemenu-entry:has-text('fixed')")

    nodes = exported(canvas)["nodes"]
    assert nodes["solid"]["inputs"] == {"color": "blue", "width": 128, "height": 56}
    assert nodes["text"]["inputs"] == {"text": "a red circle\non a blue square", "repeat": 1, "shout": True}
    assert nodes["noise"]["ui"]["seed_control"] == {"seed": "fixed"}
    assert nodes["save"]["inputs"]["prefix"] == "renamed/out"

    # number limits from the schema hold: 5000 is clamped to the maximum 1024
    canvas.mouse.click(*widget_xy(canvas, "solid", "width", 0.5))
    canvas.fill(".graphdialog input", "5000")
    canvas.keyboard.press("Enter")
    assert exported(canvas)["nodes"]["solid"]["inputs"]["width"] == 1024


def test_undo_redo_and_reload_keeps_the_work(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    added = add_from_palette(canvas, *canvas.evaluate(GRAPH_XY_JS, [300, 480]), "all-ones mask")
    canvas.wait_for_function("!document.querySelector('#btn-undo').disabled")
    canvas.keyboard.press("Control+z")
    canvas.wait_for_function("(id) => !window.loom.nodeById(id)", arg=added)
    canvas.keyboard.press("Control+Shift+z")
    canvas.wait_for_function("(id) => !!window.loom.nodeById(id)", arg=added)
    canvas.click("#btn-new")  # opening another workflow is undoable too
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")
    canvas.click("#btn-undo")
    canvas.wait_for_function("(id) => !!window.loom.nodeById(id)", arg=added)
    canvas.wait_for_timeout(400)  # the debounced snapshot reaches local storage
    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    nodes = exported(canvas)["nodes"]
    assert set(nodes) == {"solid", "invert", "save", added}
    assert nodes[added]["type"] == "t_mask"


def test_move_copy_paste_delete_group_collapse(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    pos0 = canvas.evaluate("window.loom.nodeById('invert').pos.slice()")
    title = canvas.evaluate(TITLE_XY_JS, "invert")
    drag(canvas, title, [title[0] + 40, title[1] + 60])
    pos1 = canvas.evaluate("window.loom.nodeById('invert').pos.slice()")
    assert pos1[0] > pos0[0] + 10 and pos1[1] > pos0[1] + 10  # moved (in graph units)

    canvas.keyboard.press("Control+c")
    canvas.mouse.move(*canvas.evaluate(GRAPH_XY_JS, [400, 500]))
    canvas.keyboard.press("Control+v")
    canvas.wait_for_function("window.loom.graph.nodes.length === 4")
    canvas.keyboard.press("Control+d")
    canvas.wait_for_function("window.loom.graph.nodes.length === 5")
    types = sorted(n["type"] for n in exported(canvas)["nodes"].values())
    assert types == ["t_invert", "t_invert", "t_invert", "t_save", "t_solid"]
    canvas.keyboard.press("Delete")
    canvas.wait_for_function("window.loom.graph.nodes.length === 4")

    canvas.mouse.click(*canvas.evaluate(TITLE_XY_JS, "solid"))
    canvas.keyboard.down("Shift")
    canvas.mouse.click(*canvas.evaluate(TITLE_XY_JS, "invert"))
    canvas.keyboard.up("Shift")
    canvas.keyboard.press("Control+g")
    canvas.wait_for_function("window.loom.graph.groups.length === 2")
    canvas.keyboard.press("Alt+c")
    canvas.wait_for_timeout(350)
    wf = exported(canvas)
    assert wf["nodes"]["solid"]["ui"].get("collapsed") and wf["nodes"]["invert"]["ui"].get("collapsed")
    assert len(wf["groups"]) == 2
