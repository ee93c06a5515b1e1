"""The selection toolbox (align, distribute, colour, pin, bypass) and node colours."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from web_helpers import GRAPH_XY_JS, TITLE_XY_JS, drag, exported, open_workflow, settle

IDS = ("a", "b", "c")
BOX_JS = """(id) => {
  const n = window.loom.nodeById(id); const th = 30;
  return [n.pos[0], n.pos[1] - th, n.size[0], n.size[1] + th];
}"""
BODY_PIXEL_JS = """(id) => {
  const n = window.loom.nodeById(id);
  const c = window.loom.canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0] - 12, n.pos[1] + n.size[1] - 12]);
  const dpr = window.devicePixelRatio || 1;
  const ctx = window.loom.canvas.canvas.getContext('2d');
  return Array.from(ctx.getImageData(Math.round(c[0] * dpr), Math.round(c[1] * dpr), 1, 1).data);
}"""


def three_nodes() -> dict[str, Any]:
    """Three unlinked nodes of different sizes, scattered (none overlap)."""
    def entry(pos: list[float], size: list[float]) -> dict[str, Any]:
        return {"type": "t_invert", "version": 1, "inputs": {}, "ui": {"pos": pos, "size": size}}
    return {"format": "loom.workflow", "version": 1,
            "nodes": {"a": entry([60, 100], [220, 80]), "b": entry([340, 260], [260, 120]),
                      "c": entry([700, 170], [230, 90])},
            "meta": {"title": "toolbox"}}


def boxes(page: Any) -> dict[str, list[float]]:
    settle(page)
    return {i: page.evaluate(BOX_JS, i) for i in IDS}


def select(page: Any, *ids: str) -> None:
    page.mouse.click(*page.evaluate(TITLE_XY_JS, ids[0]))
    page.keyboard.down("Shift")
    for i in ids[1:]:
        page.mouse.click(*page.evaluate(TITLE_XY_JS, i))
    page.keyboard.up("Shift")
    page.wait_for_function("(n) => Object.keys(window.loom.canvas.selected_nodes).length === n", arg=len(ids))
    page.wait_for_selector("#toolbox:not([hidden])")


def expected(b0: dict[str, list[float]], action: str) -> dict[str, list[float]]:
    """Outer boxes after an action, computed here from the boxes before it."""
    xs = [b[0] for b in b0.values()]
    ys = [b[1] for b in b0.values()]
    right = max(b[0] + b[2] for b in b0.values())
    bottom = max(b[1] + b[3] for b in b0.values())
    out = {}
    for i, (x, y, w, h) in b0.items():
        out[i] = {"align-left": [min(xs), y], "align-right": [right - w, y],
                  "align-centre": [(min(xs) + right) / 2 - w / 2, y], "align-top": [x, min(ys)],
                  "align-bottom": [x, bottom - h], "align-middle": [x, (min(ys) + bottom) / 2 - h / 2]
                  }.get(action, [x, y]) + [w, h]
    if action.startswith("distribute"):
        k = 0 if action == "distribute-h" else 1
        order = sorted(b0, key=lambda i: b0[i][k])
        end = max(b[k] + b[k + 2] for b in b0.values())
        gap = (end - b0[order[0]][k] - sum(b[k + 2] for b in b0.values())) / 2
        at = b0[order[0]][k]
        for i in order:
            out[i][k] = at
            at += b0[i][k + 2] + gap
    return out


def close(got: dict[str, list[float]], want: dict[str, list[float]]) -> bool:
    return all(abs(g - w) < 0.6 for i in IDS for g, w in zip(got[i], want[i]))


ACTIONS = ["align-left", "align-centre", "align-right", "align-top", "align-middle", "align-bottom",
           "distribute-h", "distribute-v"]


def test_align_and_distribute_move_nodes_and_one_undo_restores(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, three_nodes(), tmp_path)
    b0 = boxes(canvas)
    select(canvas, *IDS)
    # the bar floats above the selection, centred on it
    bar = canvas.locator("#toolbox").bounding_box()
    top = min(canvas.evaluate(GRAPH_XY_JS, [b[0], b[1]])[1] for b in b0.values())
    assert bar["y"] + bar["height"] <= top, (bar, top)
    for action in ACTIONS:
        canvas.click(f"#toolbox [data-action='{action}']")
        got = boxes(canvas)
        assert close(got, expected(b0, action)), (action, got, expected(b0, action))
        assert got != b0, action   # every action moves something in this layout
        assert canvas.evaluate("document.activeElement.id") == "graph-canvas"   # keys still act on the canvas
        canvas.keyboard.press("Control+z")
        canvas.wait_for_function("(b) => window.loom.nodeById('b').pos[0] === b", arg=b0["b"][0])
        assert close(boxes(canvas), b0), action    # one undo step per action
    assert exported(canvas)["nodes"]["a"]["ui"]["pos"] == [60, 100]
    # with two selected, distribute is not offered; with one, only colour, pin and bypass
    select(canvas, "a", "b")
    shown = canvas.eval_on_selector_all("#toolbox > button:not([hidden])", "bs => bs.map(b => b.dataset.action)")
    assert "align-left" in shown and "distribute-h" not in shown
    select(canvas, "a")
    shown = canvas.eval_on_selector_all("#toolbox > button:not([hidden])", "bs => bs.map(b => b.dataset.action)")
    assert shown == ["colour", "pin", "bypass"]


def test_colour_is_saved_undone_and_survives_export_import_and_reload(canvas: Any, console: Any,
                                                                      tmp_path: Path) -> None:
    open_workflow(canvas, three_nodes(), tmp_path)
    before = canvas.evaluate(BODY_PIXEL_JS, "a")
    select(canvas, "a")
    canvas.click("#toolbox [data-action='colour']")
    canvas.click(".toolbox-colours [data-colour='green']")
    canvas.wait_for_function("window.loom.exportWorkflow().nodes.a.ui.color === '#232'")
    ui = exported(canvas)["nodes"]["a"]["ui"]
    assert ui["bgcolor"] == "#353" and "color" not in exported(canvas)["nodes"]["b"]["ui"]
    settle(canvas)
    assert canvas.evaluate(BODY_PIXEL_JS, "a")[:3] == [0x33, 0x55, 0x33], before   # drawn green
    canvas.keyboard.press("Control+z")
    canvas.wait_for_function("!('color' in window.loom.exportWorkflow().nodes.a.ui)")
    canvas.keyboard.press("Control+Shift+z")
    canvas.wait_for_function("window.loom.exportWorkflow().nodes.a.ui.color === '#232'")
    # right-click › Colour › red on another node (after a frame: redo rebuilt the graph, and
    # litegraph finds the node under a right-click among the nodes it last drew)
    settle(canvas)
    canvas.mouse.click(*canvas.evaluate(TITLE_XY_JS, "b"), button="right")
    canvas.click(".litecontextmenu .litemenu-entry:text-is('Colour')")
    canvas.click(".litecontextmenu .litemenu-entry:has-text('red')")
    canvas.wait_for_function("window.loom.exportWorkflow().nodes.b.ui.bgcolor === '#533'")
    # export → import: the colours come back from the file
    wf = exported(canvas)
    open_workflow(canvas, three_nodes(), tmp_path, "plain.json")
    assert canvas.evaluate("window.loom.nodeById('a').color") is None
    open_workflow(canvas, wf, tmp_path, "coloured.json")
    assert canvas.evaluate("[window.loom.nodeById('a').bgcolor, window.loom.nodeById('b').color]") == ["#353", "#322"]
    # reload: kept by the browser
    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    assert exported(canvas)["nodes"]["a"]["ui"]["color"] == "#232"
    # a file whose colour is no colour: left out, with a warning
    bad = three_nodes()
    bad["nodes"]["c"]["ui"]["color"] = "url(javascript:alert(1))"
    open_workflow(canvas, bad, tmp_path, "bad.json")
    assert canvas.evaluate("window.loom.nodeById('c').color") is None
    canvas.wait_for_selector(".toast.warn:has-text('is not a colour')")


def test_a_pinned_node_does_not_move_or_resize(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, three_nodes(), tmp_path)
    select(canvas, "c")
    canvas.click("#toolbox [data-action='pin']")
    canvas.wait_for_function("window.loom.exportWorkflow().nodes.c.ui.pinned === true")
    assert "on" in canvas.get_attribute("#toolbox [data-action='pin']", "class")
    b0 = boxes(canvas)["c"]
    title = canvas.evaluate(TITLE_XY_JS, "c")
    drag(canvas, title, [title[0] + 90, title[1] + 70])
    corner = canvas.evaluate(GRAPH_XY_JS, [b0[0] + b0[2] - 3, b0[1] + b0[3] - 3])
    drag(canvas, corner, [corner[0] + 60, corner[1] + 50])
    assert close({**boxes(canvas), "a": [0] * 4, "b": [0] * 4}, {"a": [0] * 4, "b": [0] * 4, "c": b0})
    # one undo unpins it; the same drag then moves it
    canvas.keyboard.press("Control+z")
    canvas.wait_for_function("!window.loom.nodeById('c').pinned")
    drag(canvas, title, [title[0] + 90, title[1] + 70])
    assert boxes(canvas)["c"][0] > b0[0] + 40
    # pinned survives a file round trip
    wf = three_nodes()
    wf["nodes"]["a"]["ui"]["pinned"] = True
    open_workflow(canvas, wf, tmp_path, "pinned.json")
    assert canvas.evaluate("window.loom.nodeById('a').pinned") is True


@pytest.mark.parametrize("how", ["toolbox", "menu"])
def test_bypass_and_pin_from_the_bar_and_menu_are_one_undo_step(canvas: Any, tmp_path: Path, how: str) -> None:
    open_workflow(canvas, three_nodes(), tmp_path)
    select(canvas, "a", "b")
    if how == "toolbox":
        canvas.click("#toolbox [data-action='bypass']")
        canvas.wait_for_function("['a', 'b'].every((i) => window.loom.exportWorkflow().nodes[i].mode === 'bypass')")
        assert "on" in canvas.get_attribute("#toolbox [data-action='bypass']", "class")
        canvas.keyboard.press("Control+z")
        canvas.wait_for_function("['a', 'b'].every((i) => !('mode' in window.loom.exportWorkflow().nodes[i]))")
    else:
        canvas.mouse.click(*canvas.evaluate(TITLE_XY_JS, "b"), button="right")
        canvas.click(".litecontextmenu .litemenu-entry:text-is('Pin')")
        canvas.wait_for_function("['a', 'b'].every((i) => window.loom.exportWorkflow().nodes[i].ui.pinned)")
        canvas.keyboard.press("Control+z")
        canvas.wait_for_function("['a', 'b'].every((i) => !window.loom.exportWorkflow().nodes[i].ui.pinned)")
    c = exported(canvas)["nodes"]["c"]
    assert "mode" not in c and not c["ui"].get("pinned")   # not selected: untouched
