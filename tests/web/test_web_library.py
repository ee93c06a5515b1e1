"""The node library sidebar: N toggles it, categories fold, search uses the palette's fuzzy
matcher, a drag places a node at the drop point and a click adds one mid-view."""
from __future__ import annotations

from typing import Any

from web_helpers import GRAPH_XY_JS, settle

GRAPH_AT_JS = """([x, y]) => {
  const r = window.loom.canvas.canvas.getBoundingClientRect();
  return window.loom.canvas.ds.convertCanvasToOffset([x - r.left, y - r.top]);
}"""


def test_n_opens_the_library_with_categories_and_fuzzy_search(canvas: Any) -> None:
    assert canvas.is_hidden("#library")
    canvas.locator("#graph-canvas").focus()
    canvas.keyboard.press("n")
    canvas.wait_for_selector("#library:not([hidden])")
    assert canvas.evaluate("document.activeElement.id") == "library-search"
    # the tree: a category per schema category, its nodes inside
    test_cat = canvas.locator("#library details[data-path='test']")
    assert test_cat.locator("li.node[data-type='t_invert']").count() == 1
    assert canvas.locator("#library details[data-path='conditioning/regions']").count() == 1
    test_cat.locator("summary").first.click()  # folds; remembered across reloads
    assert not test_cat.evaluate("(d) => d.open")
    # search with a typo, as in the palette
    canvas.fill("#library-search", "invrt")
    types = canvas.evaluate("[...document.querySelectorAll('#library li.node')].map((li) => li.dataset.type)")
    assert "t_invert" in types and "invert_image" in types
    canvas.fill("#library-search", "zzzqqq")
    assert canvas.is_visible("#library .none")
    canvas.fill("#library-search", "")
    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    assert canvas.is_visible("#library")  # open state and folds are kept
    assert not canvas.locator("#library details[data-path='test']").evaluate("(d) => d.open")
    canvas.locator("#graph-canvas").focus()
    canvas.keyboard.press("n")
    canvas.wait_for_selector("#library", state="hidden")


def test_dragging_a_node_from_the_library_places_it_at_the_drop_point(canvas: Any) -> None:
    canvas.click("#btn-new")
    canvas.click("#btn-library")
    canvas.fill("#library-search", "all-ones mask")
    item = canvas.locator("#library li.node[data-type='t_mask']")
    box = canvas.locator("#graph-canvas").bounding_box()
    drop = [box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.55]
    want = canvas.evaluate(GRAPH_AT_JS, drop)
    item.drag_to(canvas.locator("#graph-canvas"), target_position={
        "x": drop[0] - box["x"], "y": drop[1] - box["y"]})
    canvas.wait_for_function("window.loom.graph.nodes.length === 1")
    node = canvas.evaluate("(() => { const n = window.loom.graph.nodes[0];"
                           " return { type: n.type, pos: [...n.pos] }; })()")
    assert node["type"] == "t_mask"
    # the title bar's (30 px) top-left corner is where it was dropped
    assert abs(node["pos"][0] - want[0]) < 2 and abs(node["pos"][1] - 30 - want[1]) < 2
    assert not canvas.is_disabled("#btn-undo")  # one undoable step
    canvas.click("#btn-undo")
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")


def test_clicking_a_node_in_the_library_adds_it_in_the_middle_of_the_view(canvas: Any) -> None:
    canvas.click("#btn-new")
    canvas.click("#btn-library")
    canvas.locator("#library li.node[data-type='t_solid']").click()
    canvas.wait_for_function("window.loom.graph.nodes.length === 1")
    settle(canvas)
    box = canvas.locator("#graph-canvas").bounding_box()
    centre = canvas.evaluate(GRAPH_AT_JS, [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
    node = canvas.evaluate("(() => { const n = window.loom.graph.nodes[0]; return [...n.pos, ...n.size]; })()")
    x, y, w, h = node
    assert x <= centre[0] <= x + w and y - 30 <= centre[1] <= y + h + 60, (node, centre)
    # a second click does not stack the new node on the first
    canvas.locator("#library li.node[data-type='t_solid']").click()
    canvas.wait_for_function("window.loom.graph.nodes.length === 2")
    a, b = canvas.evaluate("window.loom.graph.nodes.map((n) => [...n.pos])")
    assert a != b
    assert canvas.evaluate(GRAPH_XY_JS, a) != canvas.evaluate(GRAPH_XY_JS, b)
