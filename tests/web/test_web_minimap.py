"""The minimap: shows the graph, moves the view on click and drag, hides from settings, and
keeps its node layer cached while the view pans over 1,000 nodes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from web_helpers import open_workflow, settle, tiny_workflow

VIEW_CENTRE_JS = """() => {
  const { ds, canvas } = window.loom.canvas;
  return [canvas.clientWidth / 2 / ds.scale - ds.offset[0], canvas.clientHeight / 2 / ds.scale - ds.offset[1]];
}"""
MAP_PIXEL_JS = """([x, y]) => {
  const c = window.loom.minimap.layer; // the cached node layer, under the view rectangle
  const dpr = window.devicePixelRatio || 1;
  return [...c.getContext('2d').getImageData(Math.round(x * dpr), Math.round(y * dpr), 1, 1).data];
}"""


def big_workflow(n: int, per_row: int = 40) -> dict[str, Any]:
    nodes = {f"n{i}": {"type": "t_solid", "inputs": {"color": "red"},
                       "ui": {"pos": [(i % per_row) * 280, (i // per_row) * 200], "size": [240, 150]}}
             for i in range(n)}
    return {"format": "loom.workflow", "version": 1, "nodes": nodes, "meta": {"title": f"{n} nodes"}}


def test_clicking_and_dragging_the_minimap_moves_the_view(canvas: Any, tmp_path: Path) -> None:
    wf = tiny_workflow()
    wf["nodes"]["save"]["ui"]["pos"] = [2600, 1400]  # a far corner: the map spans a wide area
    wf["nodes"]["solid"]["ui"]["color"] = "#b03030"
    open_workflow(canvas, wf, tmp_path)
    canvas.wait_for_selector("#minimap:not([hidden])")
    canvas.wait_for_function("window.loom.minimap.map !== null")
    # nodes are drawn in their colours: the red solid node's box on the map is red
    canvas.evaluate("window.loom.minimap.update(true)")
    solid = canvas.evaluate("(() => { const n = window.loom.nodeById('solid'); const m = window.loom.minimap;"
                            " return m.toMap(n.pos[0] + n.size[0] / 2, n.pos[1] + 10); })()")
    r, g, b, _ = canvas.evaluate(MAP_PIXEL_JS, solid)
    assert r > 120 and g < 90 and b < 90, (r, g, b)

    canvas.evaluate("document.querySelector('#toasts').replaceChildren()")  # toasts pass over the map
    box = canvas.locator("#minimap").bounding_box()
    target = [box["width"] * 0.8, box["height"] * 0.75]
    want = canvas.evaluate("([x, y]) => window.loom.minimap.toGraph(x, y)", target)
    before = canvas.evaluate(VIEW_CENTRE_JS)
    canvas.mouse.click(box["x"] + target[0], box["y"] + target[1])
    after = canvas.evaluate(VIEW_CENTRE_JS)
    assert abs(after[0] - want[0]) < 1 and abs(after[1] - want[1]) < 1
    assert abs(after[0] - before[0]) > 200
    # drag: the view follows the pointer
    canvas.mouse.move(box["x"] + target[0], box["y"] + target[1])
    canvas.mouse.down()
    canvas.mouse.move(box["x"] + 30, box["y"] + 25, steps=6)
    canvas.mouse.up()
    want = canvas.evaluate("([x, y]) => window.loom.minimap.toGraph(x, y)", [30, 25])
    after = canvas.evaluate(VIEW_CENTRE_JS)
    assert abs(after[0] - want[0]) < 1 and abs(after[1] - want[1]) < 1
    assert canvas.evaluate("window.loom.graph.nodes.length") == 3  # a click there adds or selects nothing
    assert not canvas.evaluate("Object.keys(window.loom.canvas.selected_nodes).length")


def test_the_minimap_hides_with_its_setting_and_alt_m(canvas: Any) -> None:
    assert canvas.is_visible("#minimap")
    canvas.locator("#graph-canvas").focus()
    canvas.keyboard.press("Alt+m")
    canvas.wait_for_selector("#minimap", state="hidden")
    assert canvas.evaluate("window.loom.settings.minimap") is False
    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    canvas.evaluate("window.loom.settingsSync")
    assert canvas.is_hidden("#minimap")
    canvas.keyboard.press("Control+,")
    canvas.check("#set-minimap")
    canvas.wait_for_selector("#minimap:not([hidden])")


def test_panning_1000_nodes_redraws_only_the_view_rectangle(canvas: Any) -> None:
    canvas.evaluate("(wf) => window.loom.load(wf)", big_workflow(1000))
    settle(canvas)
    canvas.wait_for_timeout(300)  # the map's layout check has seen the loaded graph
    before = canvas.evaluate("({ ...window.loom.minimap.stats })")
    frames = canvas.evaluate("""async () => {
      const ds = window.loom.canvas.ds;
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < 1200) {
        ds.offset[0] -= 15;
        window.loom.canvas.setDirty(true, true);
        await new Promise((r) => requestAnimationFrame(r));
        n += 1;
      }
      await new Promise((r) => requestAnimationFrame(r));
      return n;
    }""")
    after = canvas.evaluate("({ ...window.loom.minimap.stats })")
    assert frames > 10
    assert after["viewDraws"] - before["viewDraws"] >= frames // 4  # the rectangle follows the view
    assert after["layerDraws"] - before["layerDraws"] == 0  # the 1,000 boxes are not drawn again
    # moving a node does rebuild the layer (within the throttle interval)
    canvas.evaluate("window.loom.nodeById('n5').pos[1] += 500")
    canvas.wait_for_function("(n) => window.loom.minimap.stats.layerDraws > n", arg=after["layerDraws"])
