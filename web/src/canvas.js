// The litegraph canvas: settings, HiDPI sizing, menus, tooltips, DOM widget frames.

import { LGraph, LGraphCanvas, LGraphGroup, LiteGraph } from "/vendor/litegraph/litegraph.es.js";
import { canConnect, inputTypeName } from "./nodes.js";
import { setTooltip } from "./ui.js";
import { domFrameEnd, domFrameStart, widgetHooks } from "./widgets.js";

/** Global litegraph settings for Loom. */
function configureLiteGraph() {
  LiteGraph.isValidConnection = canConnect;
  LiteGraph.release_link_on_empty_shows_menu = false;
  LiteGraph.alt_drag_do_clone_nodes = true;
  LiteGraph.middle_click_slot_add_default_node = false;
  LiteGraph.ctrl_shift_v_paste_connect_unselected_outputs = true;
  LiteGraph.snaps_for_comfy = true;
  LiteGraph.snap_highlights_node = true;
  LiteGraph.search_hide_on_mouse_leave = true;
  LiteGraph.saveViewportWithGraph = false;
  LiteGraph.NODE_WIDTH = 200;
  LiteGraph.NODE_TEXT_SIZE = 13;
  LiteGraph.NODE_SUBTEXT_SIZE = 12;
  LiteGraph.NODE_DEFAULT_COLOR = "#353b44";
  LiteGraph.NODE_DEFAULT_BGCOLOR = "#2a2e34";
  LiteGraph.NODE_TITLE_COLOR = "#d8dde3";
  LiteGraph.WIDGET_BGCOLOR = "#1d2024";
  LiteGraph.LINK_COLOR = "#9aa7b5";
  LiteGraph.onDeprecationWarning = [];
}

/** Creates the graph and its canvas inside `wrap`. */
export function createCanvas(el, domLayer) {
  configureLiteGraph();
  const graph = new LGraph();
  const canvas = new LGraphCanvas(el, graph);
  canvas.show_info = false;
  canvas.render_shadows = false;
  canvas.allow_searchbox = true;
  canvas.multi_select = false;
  canvas.render_canvas_border = false;
  canvas.links_render_mode = LiteGraph.SPLINE_LINK;
  canvas.background_image = "";
  canvas.clear_background_color = "#1b1d21";
  canvas.maximumFps = 60;
  canvas.low_quality_zoom_threshold = 0.45;
  widgetHooks.canvas = canvas;
  widgetHooks.container = domLayer;
  canvas.onRender = () => domFrameStart();
  canvas.onDrawOverlay = () => domFrameEnd();
  resize(canvas);
  new ResizeObserver(() => resize(canvas)).observe(el.parentElement);
  el.addEventListener("pointerdown", () => el.focus({ preventScroll: true }));
  installMenus(canvas);
  installTooltips(canvas);
  return { graph, canvas };
}

/** "a" or "an" before a word (an Image, a Mask, an int). */
export function article(word) {
  return /^[aeiou]/i.test(String(word)) ? "an" : "a";
}

/** Explains a refused link: dropping on a socket of another type does nothing otherwise. */
export function explainRefusedLinks(canvas, notify) {
  const lc = canvas.linkConnector;
  let created = false;
  lc.events.addEventListener("link-created", () => {
    created = true;
  });
  lc.events.addEventListener("after-drop-links", (e) => {
    const wasCreated = created;
    created = false;
    const { renderLinks, event } = e.detail ?? {};
    const from = renderLinks?.[0];
    if (wasCreated || !from || !event) return;
    const node = canvas.graph.getNodeOnPos(event.canvasX, event.canvasY);
    if (!node || node === from.node) return;
    const pos = [event.canvasX, event.canvasY];
    const toInput = lc.state.connectingTo === "input";
    const slot = toInput ? node.getInputOnPos(pos) : node.getOutputOnPos(pos);
    if (!slot) return;
    const [outSlot, inNode, inSlot] = toInput ? [from.fromSlot, node, slot] : [slot, from.node, from.fromSlot];
    notify(`Not connected: ${article(outSlot.type)} ${outSlot.type} output cannot feed ${inNode.title} › ${inSlot.name} `
      + `(${inputTypeName(inNode, inSlot)})`);
  });
}

function resize(canvas) {
  const el = canvas.canvas;
  const parent = el.parentElement;
  const w = parent.clientWidth;
  const h = parent.clientHeight;
  const dpr = Math.max(window.devicePixelRatio || 1, 1);
  if (el.width === Math.round(w * dpr) && el.height === Math.round(h * dpr)) return;
  el.width = Math.round(w * dpr);
  el.height = Math.round(h * dpr);
  el.style.width = `${w}px`;
  el.style.height = `${h}px`;
  el.getContext("2d").scale(dpr, dpr);
  canvas.bgcanvas.width = el.width;
  canvas.bgcanvas.height = el.height;
  canvas.draw(true, true);
}

/** Wraps all selected nodes in a new group (Ctrl+G). */
export function groupSelection(canvas) {
  const items = [...canvas.selectedItems].filter((n) => !(n instanceof LGraphGroup));
  if (!items.length) return false;
  const group = new LGraphGroup("Group");
  group.resizeTo(items, 10);
  canvas.graph.add(group);
  canvas.setDirty(true, true);
  return true;
}

const HIDDEN_NODE_ENTRIES = new Set([
  "Inputs", "Outputs", "Convert to Subgraph", "Convert to Subgraph 🆕", "Mode", "Bypass",
  "Properties", "Properties Panel", "Toggle Advanced",
]);

function installMenus(canvas) {
  canvas.getMenuOptions = () => {
    const items = [
      { content: "Add Node", has_submenu: true, callback: LGraphCanvas.onMenuAdd },
      { content: "Add Group", callback: LGraphCanvas.onGroupAdd },
    ];
    if (canvas.selectedItems.size > 1) {
      items.push({ content: "Group selected nodes (Ctrl+G)", callback: () => groupSelection(canvas) });
      items.push({ content: "Align", has_submenu: true, callback: LGraphCanvas.onGroupAlign });
    }
    items.push(null, { content: "Search nodes… (double-click)", callback: (_v, _o, e) => canvas.showSearchBox(e) });
    items.push({ content: "Reload nodes, models and uploads", callback: () => window.loom?.refreshNodeDefs() });
    items.push({ content: "Fit view (.)", callback: () => window.loom?.fitView() });
    return items;
  };
  const nodeMenu = canvas.getNodeMenuOptions.bind(canvas);
  canvas.getNodeMenuOptions = (node) => {
    const items = nodeMenu(node).filter((o) => !o || !HIDDEN_NODE_ENTRIES.has(o.content));
    while (items.length && items[0] === null) items.shift();
    return items;
  };
}

/** " · links from float, int" when an input takes links of other types than its own. */
function takes(inp) {
  const accepts = (inp.accepts ?? []).filter((t) => t !== "*"); // an Any output feeds all
  if (inp.type === "*") return "";
  if (accepts.length === 1 && accepts[0] === inp.type) return "";
  return accepts.length ? ` · links from ${accepts.join(", ")}` : " · no output can feed it";
}

function installTooltips(canvas) {
  let last = null;
  canvas.canvas.addEventListener("pointermove", (e) => {
    if (canvas.pointer.isDown) {
      setTooltip(null);
      return;
    }
    const [gx, gy] = canvas.convertEventToCanvasOffset(e);
    const node = canvas.graph.getNodeOnPos(gx, gy, canvas.visible_nodes);
    let text = null;
    if (node?.loom?.schema) {
      const schema = node.loom.schema;
      const local = [gx - node.pos[0], gy - node.pos[1]];
      if (local[1] < 0) {
        text = `${schema.title} (${schema.id}) — ${schema.description}`;
      } else {
        const slot = node.getSlotInPosition?.(gx, gy);
        const widget = node.getWidgetOnPos?.(gx, gy, true);
        const name = slot?.input?.name ?? widget?.loomInput ?? (slot?.output ? null : undefined);
        const inp = schema.inputs.find((i) => i.name === name);
        if (inp) {
          text = `${inp.name}: ${inp.type}${inp.required ? "" : " (optional)"}${takes(inp)}`
            + `${inp.help ? ` — ${inp.help}` : ""}`;
        } else if (slot?.output) {
          const out = schema.outputs.find((o) => o.name === slot.output.name);
          if (out) text = `${out.name}: ${out.type}`;
        } else if (widget?.tooltip) {
          text = widget.tooltip;
        }
      }
    }
    if (text !== last) {
      last = text;
      setTooltip(text, e.clientX, e.clientY);
    } else if (text) {
      setTooltip(text, e.clientX, e.clientY);
    }
  });
  canvas.canvas.addEventListener("pointerleave", () => {
    last = null;
    setTooltip(null);
  });
}
