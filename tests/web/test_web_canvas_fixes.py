"""Canvas fixes: nodes that grow keep clear of others, examples open without overlaps,
thumbnails on drop, keyboard habits (modes, rename, zoom, settings, help), the progress count."""
from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from web_helpers import (NEW_FINAL_RUN_JS, RUN_IDS_JS, TITLE_XY_JS, double_click, drag, drop_file,
                         exported, open_workflow, queue_and_wait, settle, slot_xy, tiny_workflow)

# every pair of node boxes (title bar included) that intersect
OVERLAPS_JS = """() => {
  const th = 30;
  const box = (n) => {
    const w = n.flags.collapsed ? (n._collapsed_width ?? 120) : n.size[0];
    const h = n.flags.collapsed ? th : n.size[1] + th;
    return [n.pos[0], n.pos[1] - th, w, h];
  };
  const nodes = window.loom.graph.nodes;
  const out = [];
  for (let i = 0; i < nodes.length; i += 1) {
    for (let j = i + 1; j < nodes.length; j += 1) {
      const [ax, ay, aw, ah] = box(nodes[i]);
      const [bx, by, bw, bh] = box(nodes[j]);
      if (ax < bx + bw && bx < ax + aw && ay < by + bh && by < ay + ah) {
        out.push([String(nodes[i].id), String(nodes[j].id)]);
      }
    }
  }
  return out;
}"""

IMAGES_READY = """(id) => {
  const st = window.loom.nodeById(id).loom;
  return st.images.length > 0 && st.images.every((i) => i.complete && i.naturalWidth > 0)
    && st.imageRects.length > 0;
}"""


def _png_url(w: int, h: int, rgb: tuple[int, int, int]) -> str:
    buf = io.BytesIO()
    PILImage.new("RGB", (w, h), rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _pos(page: Any, node: str) -> list[float]:
    return page.evaluate("(id) => [...window.loom.nodeById(id).pos]", node)


# --- 1. nodes that grow ----------------------------------------------------------------
def test_an_output_image_pushes_the_node_below_away_as_one_undoable_step(canvas: Any,
                                                                          tmp_path: Path) -> None:
    wf = tiny_workflow()
    wf["nodes"]["save"]["ui"]["size"] = [200, 120]  # too small for its image: it grows
    wf["nodes"]["below"] = {"type": "t_mask", "inputs": {}, "ui": {"pos": [620, 260], "size": [240, 110]}}
    open_workflow(canvas, wf, tmp_path)
    assert canvas.evaluate(OVERLAPS_JS) == []
    below = _pos(canvas, "below")
    steps = canvas.evaluate("window.loom.history.index")
    queue_and_wait(canvas)
    canvas.wait_for_function(IMAGES_READY, arg="save")
    settle(canvas)
    assert canvas.evaluate("window.loom.nodeById('save').size[1]") > 200
    assert canvas.evaluate(OVERLAPS_JS) == []  # the node below moved down, out of the way
    assert _pos(canvas, "below")[1] > below[1]
    canvas.wait_for_timeout(500)
    assert canvas.evaluate("window.loom.history.index") == steps + 1  # one undoable layout step
    canvas.mouse.click(5, 400)
    canvas.keyboard.press("Control+z")
    canvas.wait_for_function("(y) => window.loom.nodeById('below').pos[1] === y", arg=below[1])


def test_text_and_values_are_drawn_inside_their_node(canvas: Any, tmp_path: Path) -> None:
    wf = {"format": "loom.workflow", "version": 1, "nodes": {
        "text": {"type": "t_text", "inputs": {"text": "lorem ipsum dolor sit amet", "repeat": 10},
                 "ui": {"pos": [60, 100], "size": [280, 200]}},
        "show": {"type": "t_show_text", "inputs": {"text": {"node": "text", "output": "str"}},
                 "ui": {"pos": [400, 100], "size": [260, 90]}},
        "next": {"type": "t_mask", "inputs": {}, "ui": {"pos": [400, 200], "size": [260, 110]}}}}
    open_workflow(canvas, wf, tmp_path)
    _, status = queue_and_wait(canvas)
    assert status == "finished"
    canvas.wait_for_function("window.loom.nodeById('show').loom.text.length === 1")
    settle(canvas)
    bottom, height = canvas.evaluate("(() => { const n = window.loom.nodeById('show'); "
                                     "return [n.loom.contentBottom, n.size[1]]; })()")
    assert bottom is not None and bottom <= height, (bottom, height)
    assert canvas.evaluate(OVERLAPS_JS) == []


# --- 2. examples open without overlaps -------------------------------------------------
def test_every_example_opens_without_overlapping_nodes(canvas: Any, loom_server: Any) -> None:
    names = [w["name"] for w in loom_server.get_json("/api/workflows")["workflows"]
             if w["source"] == "example"]
    assert "image_to_image" in names
    bad = {}
    for name in names:
        wf = loom_server.get_json(f"/api/workflows/{name}?source=example")
        canvas.evaluate("(wf) => window.loom.load(wf)", wf)
        settle(canvas)
        overlaps = canvas.evaluate(OVERLAPS_JS)
        if overlaps:
            bad[name] = overlaps
        # the file itself is laid out right: opening it moves nothing
        shown = exported(canvas)["nodes"]
        moved = [nid for nid, entry in wf["nodes"].items()
                 if entry.get("ui", {}).get("pos") not in (None, shown[nid]["ui"]["pos"])]
        if moved:
            bad[f"{name} (moved on load)"] = moved
    assert not bad, bad


def test_a_file_with_overlapping_nodes_is_laid_apart_on_load(canvas: Any, tmp_path: Path) -> None:
    wf = tiny_workflow()
    wf["nodes"]["invert"]["ui"]["pos"] = [100, 140]  # on top of solid
    wf["nodes"]["save"]["ui"]["pos"] = [120, 160]
    open_workflow(canvas, wf, tmp_path)
    assert canvas.evaluate(OVERLAPS_JS) == []
    first = exported(canvas)["nodes"]
    open_workflow(canvas, wf, tmp_path, "again.json")  # deterministic
    assert {k: v["ui"]["pos"] for k, v in exported(canvas)["nodes"].items()} == \
        {k: v["ui"]["pos"] for k, v in first.items()}
    assert canvas.is_hidden("#dirty-dot")


# --- 3. thumbnails -----------------------------------------------------------------------
def test_a_dropped_image_shows_its_thumbnail_at_once(canvas: Any) -> None:
    canvas.click("#btn-new")
    drop_file(canvas, _png_url(40, 30, (10, 200, 30)), "dropped.png", "image/png", (300, 300),
              is_url=True)
    canvas.wait_for_function("window.loom.graph.nodes.length === 1 "
                             "&& window.loom.graph.nodes[0].loom.thumbnail?.naturalWidth === 40")
    canvas.wait_for_function("window.loom.graph.nodes[0].loom.imageRects.length > 0")


# --- 4. keyboard habits ------------------------------------------------------------------
def _slow_workflow() -> dict[str, Any]:
    wf = tiny_workflow()
    wf["nodes"]["slow"] = {"type": "t_slow", "inputs": {"image": {"node": "solid", "output": "image"},
                                                        "steps": 400, "delay": 0.05},
                           "ui": {"pos": [360, 400], "size": [240, 200]}}
    wf["nodes"]["save"]["inputs"]["image"] = {"node": "slow", "output": "image"}
    return wf


def test_ctrl_alt_enter_interrupts_and_ctrl_shift_enter_queues_first(canvas: Any,
                                                                     tmp_path: Path) -> None:
    open_workflow(canvas, _slow_workflow(), tmp_path)
    before = canvas.evaluate(RUN_IDS_JS)
    canvas.mouse.click(5, 400)
    canvas.keyboard.press("Control+Enter")
    canvas.wait_for_function("window.loom.nodeById('slow').loom.status === 'running'")
    with canvas.expect_request(lambda r: r.url.endswith("/api/runs") and r.method == "POST") as req:
        canvas.keyboard.press("Control+Shift+Enter")
    assert req.value.post_data_json.get("front") is True
    canvas.wait_for_function("(n) => document.querySelectorAll('#run-list li[data-run]').length >= n",
                             arg=len(before) + 2)
    runs = canvas.evaluate(RUN_IDS_JS)
    canvas.keyboard.press("Control+Alt+Enter")
    handle = canvas.wait_for_function(NEW_FINAL_RUN_JS, arg=before)
    assert "interrupted" in handle.json_value()[1]
    canvas.wait_for_timeout(300)
    assert len(canvas.evaluate(RUN_IDS_JS)) == len(runs)  # nothing more was queued
    canvas.evaluate("window.loom.runs.interrupt()")  # the run queued first starts: stop it too


BODY_PIXEL_JS = """(id) => {
  const node = window.loom.nodeById(id);
  const c = window.loom.canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] / 2, node.pos[1] + node.size[1] - 4]);
  const dpr = Math.max(window.devicePixelRatio || 1, 1);
  const ctx = window.loom.canvas.canvas.getContext('2d');
  return Array.from(ctx.getImageData(Math.round(c[0] * dpr), Math.round(c[1] * dpr), 1, 1).data);
}"""


def test_bypass_and_mute_are_toggled_saved_drawn_and_undone(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    plain = canvas.evaluate(BODY_PIXEL_JS, "invert")
    canvas.mouse.click(*canvas.evaluate(TITLE_XY_JS, "invert"))
    canvas.keyboard.press("Control+b")
    canvas.wait_for_function("window.loom.exportWorkflow().nodes.invert.mode === 'bypass'")
    settle(canvas)
    r, g, b, _ = canvas.evaluate(BODY_PIXEL_JS, "invert")
    assert r > g + 15 and b > g + 15, (plain, (r, g, b))  # purple-tinted
    canvas.keyboard.press("Control+m")
    canvas.wait_for_function("window.loom.exportWorkflow().nodes.invert.mode === 'mute'")
    canvas.keyboard.press("Control+m")
    canvas.wait_for_function("!('mode' in window.loom.exportWorkflow().nodes.invert)")
    canvas.keyboard.press("Control+z")
    canvas.wait_for_function("window.loom.exportWorkflow().nodes.invert.mode === 'mute'")
    assert canvas.evaluate("window.loom.nodeById('invert').mode") == 2
    # the key survives a file round trip
    wf = tiny_workflow()
    wf["nodes"]["invert"]["mode"] = "bypass"
    open_workflow(canvas, wf, tmp_path, "modes.json")
    assert exported(canvas)["nodes"]["invert"]["mode"] == "bypass"
    assert "mode" not in exported(canvas)["nodes"]["solid"]


def test_double_click_a_title_renames_the_node(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    double_click(canvas, *canvas.evaluate(TITLE_XY_JS, "invert"))
    canvas.wait_for_selector("#title-editor:not([hidden])")
    canvas.fill("#title-editor", "Flip colours")
    canvas.keyboard.press("Enter")
    canvas.wait_for_function("window.loom.exportWorkflow().nodes.invert.ui.title === 'Flip colours'")
    assert canvas.is_hidden("#title-editor")


def test_zoom_keys_settings_panel_and_shortcut_help(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    canvas.mouse.click(5, 400)
    scale = canvas.evaluate("window.loom.canvas.ds.scale")
    canvas.keyboard.press("Alt+=")
    bigger = canvas.evaluate("window.loom.canvas.ds.scale")
    canvas.keyboard.press("Alt+-")
    canvas.keyboard.press("Alt+-")
    assert bigger > scale > canvas.evaluate("window.loom.canvas.ds.scale")

    canvas.keyboard.press("Control+,")
    canvas.wait_for_selector("#settings:not([hidden])")
    canvas.select_option("#set-link-style", "straight")
    assert canvas.evaluate("window.loom.canvas.links_render_mode") == 0
    canvas.check("#set-snap")
    assert canvas.evaluate("window.loom.settings.snapToGrid") is True
    canvas.check("#set-confirm-delete")
    canvas.keyboard.press("Escape")
    canvas.wait_for_selector("#settings", state="hidden")
    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    assert canvas.evaluate("window.loom.canvas.links_render_mode") == 0  # kept in local storage

    # confirm on delete: dismissing the question keeps the node
    canvas.once("dialog", lambda d: d.dismiss())
    canvas.mouse.click(*canvas.evaluate(TITLE_XY_JS, "invert"))
    canvas.keyboard.press("Delete")
    canvas.wait_for_timeout(200)
    assert canvas.evaluate("!!window.loom.nodeById('invert')")

    canvas.mouse.click(5, 400)
    canvas.keyboard.press("?")
    canvas.wait_for_selector("#shortcuts:not([hidden])")
    text = canvas.text_content("#shortcuts")
    for key in ["Ctrl+Enter", "Ctrl+Shift+Enter", "Ctrl+Alt+Enter", "Ctrl+B", "Ctrl+M", "Alt+=",
                "Alt+-", "Ctrl+,", "Ctrl+Z", "Ctrl+G", "Alt+C", "Ctrl+D"]:
        assert key in text, key
    canvas.keyboard.press("Escape")
    canvas.wait_for_selector("#shortcuts", state="hidden")


# --- 5. the progress count -----------------------------------------------------------------
def test_the_progress_count_follows_the_events(canvas: Any) -> None:
    canvas.evaluate("""() => window.loom.runs.handle({type: 'run.started', run: 'r-test',
        to_execute: ['a', 'b', 'c', 'd'], cached: ['e']})""")
    settle(canvas)
    assert canvas.text_content("#run-progress .label").startswith("0/5 nodes")
    canvas.evaluate("""() => { const r = window.loom.runs;
        r.handle({type: 'node.cached', run: 'r-test', node: 'e', ui: {}});
        r.handle({type: 'node.finished', run: 'r-test', node: 'a', ui: {}});
        r.handle({type: 'node.finished', run: 'r-test', node: 'b', ui: {}});
        r.handle({type: 'node.finished', run: 'r-test', node: 'b', ui: {}}); }""")  # b twice: once
    settle(canvas)
    assert canvas.text_content("#run-progress .label").startswith("3/5 nodes")
    canvas.evaluate("""() => window.loom.runs.handle({type: 'run.finished', run: 'r-test',
        counts: {executed: 4, cached: 1}, ui: {}})""")
    assert canvas.evaluate("window.loom.runs.done") == 5


# --- 7. search typos and messages ----------------------------------------------------------
def test_the_palette_forgives_a_missing_letter(canvas: Any) -> None:
    title = canvas.evaluate("window.loom.nodeSchemas.get('invert_image').title")
    double_click(canvas, 700, 600)
    canvas.wait_for_selector("#palette:not([hidden])")
    canvas.keyboard.type("invrt")
    offered = canvas.eval_on_selector_all("#palette li", "els => els.map(e => e.dataset.type)")
    assert "invert_image" in offered, (title, offered)
    canvas.keyboard.press("Escape")


def test_a_refused_link_message_says_an_image(canvas: Any, tmp_path: Path) -> None:
    wf = tiny_workflow()
    wf["nodes"]["mask"] = {"type": "t_mask", "inputs": {}, "ui": {"pos": [60, 400], "size": [240, 110]}}
    open_workflow(canvas, wf, tmp_path)
    drag(canvas, slot_xy(canvas, "solid", "out", 0), slot_xy(canvas, "mask", "in", 0))
    canvas.wait_for_selector(".toast.warn:has-text('an Image output cannot feed')")
