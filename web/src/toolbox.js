// The selection toolbox: a small bar floating above the selected nodes. With two or more:
// align (left, centre, right, top, middle, bottom) and distribute (equal gaps, three or more);
// with one or more: colour, pin/unpin, bypass. Each action is one undo step (history.js).
// Boxes are the nodes' outer boxes (title bar included), as in the workflow file's ui.pos/size.

import { LiteGraph } from "/vendor/litegraph/litegraph.es.js";
import { BYPASS, toggleMode } from "./modes.js";
import { colourOf, menuTargets, NODE_COLOURS, setNodeColour, swatch } from "./node_colours.js";

const GAP = 10; // px between the bar and the selection

/** A node's outer box [x, y, w, h] in graph coordinates, title bar included. */
export function outerBox(node) {
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  if (node.flags?.collapsed) return [node.pos[0], node.pos[1] - th, node._collapsed_width ?? node.size[0], th];
  return [node.pos[0], node.pos[1] - th, node.size[0], node.size[1] + th];
}

/** New [x, y] corners that align boxes on an edge or centre line (left, centre, right, top, middle, bottom). */
export function alignBoxes(boxes, how) {
  const left = Math.min(...boxes.map((b) => b[0]));
  const right = Math.max(...boxes.map((b) => b[0] + b[2]));
  const top = Math.min(...boxes.map((b) => b[1]));
  const bottom = Math.max(...boxes.map((b) => b[1] + b[3]));
  return boxes.map(([x, y, w, h]) => {
    switch (how) {
      case "left": return [left, y];
      case "right": return [right - w, y];
      case "centre": return [(left + right) / 2 - w / 2, y];
      case "top": return [x, top];
      case "bottom": return [x, bottom - h];
      case "middle": return [x, (top + bottom) / 2 - h / 2];
      default: throw new Error(`unknown alignment ${how}`);
    }
  });
}

/**
 * New [x, y] corners that spread boxes along an axis ("h" or "v") with equal gaps between
 * neighbours; the first and the last box stay where they are.
 */
export function distributeBoxes(boxes, axis) {
  const i = axis === "h" ? 0 : 1;
  const order = boxes.map((b, k) => k).sort((a, b) => boxes[a][i] - boxes[b][i] || a - b);
  const first = boxes[order[0]];
  const end = Math.max(...boxes.map((b) => b[i] + b[i + 2]));
  const total = boxes.reduce((s, b) => s + b[i + 2], 0);
  const gap = (end - first[i] - total) / (boxes.length - 1);
  const out = boxes.map((b) => [b[0], b[1]]);
  let at = first[i];
  for (const k of order) {
    out[k][i] = at;
    at += boxes[k][i + 2] + gap;
  }
  return out;
}

/** The selected nodes (groups left out). */
export function selectedNodes(canvas) {
  return Object.values(canvas.selected_nodes ?? {});
}

/** Moves each node's outer box to a new corner; pinned nodes stay. One undo step. */
function moveTo(app, nodes, corners) {
  app.history.record();
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  nodes.forEach((node, k) => {
    if (node.pinned) return;
    node.pos = [corners[k][0], corners[k][1] + th];
  });
  app.canvas.setDirty(true, true);
  app.history.record();
}

/** Aligns the selected nodes (2+); see alignBoxes. */
export function alignSelection(app, how) {
  const nodes = selectedNodes(app.canvas);
  if (nodes.length < 2) return false;
  moveTo(app, nodes, alignBoxes(nodes.map(outerBox), how));
  return true;
}

/** Spreads the selected nodes (3+) with equal gaps; see distributeBoxes. */
export function distributeSelection(app, axis) {
  const nodes = selectedNodes(app.canvas);
  if (nodes.length < 3) return false;
  moveTo(app, nodes, distributeBoxes(nodes.map(outerBox), axis));
  return true;
}

/** Pins (or unpins) nodes: a pinned node cannot be moved or resized. One undo step. */
export function setPinned(app, nodes, pinned) {
  if (!nodes.length) return false;
  app.history.record();
  for (const node of nodes) node.pin(pinned);
  app.canvas.setDirty(true, true);
  return app.history.record();
}

// 16×16 line icons (drawn here; stroke = currentColor)
const ICONS = {
  left: "M2 1v14M4 4h9M4 11h6",
  centre: "M8 1v14M3 4h10M5 11h6",
  right: "M14 1v14M3 4h9M6 11h6",
  top: "M1 2h14M4 4v9M11 4v6",
  middle: "M1 8h14M4 3v10M11 5v6",
  bottom: "M1 14h14M4 3v9M11 6v6",
  h: "M1 2v12M15 2v12M5 4v8M11 4v8",
  v: "M2 1h12M2 15h12M4 5h8M4 11h8",
  pin: "M6 2h4M7 2v5l-3 3h8l-3-3V2M8 10v5",
  bypass: "M1 8h3M12 8h3M4 8c0-6 8-6 8 0M5 11h6",
};

const align = (how) => (app) => alignSelection(app, how);
const spread = (axis) => (app) => distributeSelection(app, axis);

const ACTIONS = [
  { id: "align-left", icon: "left", title: "Align left edges", min: 2, run: align("left") },
  { id: "align-centre", icon: "centre", title: "Align centres (horizontally)", min: 2, run: align("centre") },
  { id: "align-right", icon: "right", title: "Align right edges", min: 2, run: align("right") },
  { id: "align-top", icon: "top", title: "Align top edges", min: 2, run: align("top") },
  { id: "align-middle", icon: "middle", title: "Align middles (vertically)", min: 2, run: align("middle") },
  { id: "align-bottom", icon: "bottom", title: "Align bottom edges", min: 2, run: align("bottom") },
  { id: "distribute-h", icon: "h", title: "Distribute horizontally (equal gaps)", min: 3, run: spread("h") },
  { id: "distribute-v", icon: "v", title: "Distribute vertically (equal gaps)", min: 3, run: spread("v") },
  { id: "colour", title: "Colour", min: 1, run: (app, bar) => bar.toggleColours() },
  { id: "pin", icon: "pin", title: "Pin / unpin (a pinned node cannot be moved or resized)", min: 1,
    run: (app) => {
      const nodes = selectedNodes(app.canvas);
      setPinned(app, nodes, !nodes.every((n) => n.pinned));
    } },
  { id: "bypass", icon: "bypass", title: "Bypass / make active (Ctrl+B)", min: 1,
    run: (app) => {
      app.history.record(); // an edit still waiting to be recorded stays its own step
      toggleMode(app, BYPASS);
    } },
];

function icon(path) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  const p = document.createElementNS(ns, "path");
  p.setAttribute("d", path);
  svg.append(p);
  return svg;
}

/** The floating bar; follows the selection on every frame the canvas draws. */
class Toolbox {
  constructor(app, wrap) {
    this.app = app;
    this.el = document.createElement("div");
    this.el.id = "toolbox";
    this.el.className = "toolbox";
    this.el.hidden = true;
    this.el.setAttribute("role", "toolbar");
    this.buttons = new Map();
    for (const action of ACTIONS) {
      const b = document.createElement("button");
      b.dataset.action = action.id;
      b.title = action.title;
      b.setAttribute("aria-label", action.title);
      if (action.icon) b.append(icon(ICONS[action.icon]));
      else b.append(swatch(null));
      b.addEventListener("click", (e) => {
        e.stopPropagation();
        if (action.id !== "colour") this.colours.hidden = true;
        action.run(app, this);
        this.last = null;
        this.update();
      });
      this.buttons.set(action.id, { el: b, action });
      this.el.append(b);
      if (action.id === "align-bottom" || action.id === "distribute-v") this.el.append(sep());
    }
    this.colours = this.buildColours();
    this.el.append(this.colours);
    this.el.addEventListener("pointerdown", (e) => e.stopPropagation());
    // the canvas keeps the keyboard focus (Delete, Ctrl+C, … act on the selection right after)
    this.el.addEventListener("mousedown", (e) => e.preventDefault());
    wrap.append(this.el);
    this.last = null;
  }

  buildColours() {
    const box = document.createElement("div");
    box.className = "toolbox-colours";
    box.hidden = true;
    for (const colour of [null, ...NODE_COLOURS]) {
      const b = document.createElement("button");
      b.dataset.colour = colour ? colour.name : "none";
      b.title = colour ? colour.name : "No colour";
      b.append(swatch(colour));
      b.addEventListener("click", (e) => {
        e.stopPropagation();
        setNodeColour(this.app, selectedNodes(this.app.canvas), colour);
        box.hidden = true;
        this.last = null;
        this.update();
      });
      box.append(b);
    }
    return box;
  }

  toggleColours() {
    this.colours.hidden = !this.colours.hidden;
  }

  /** Shows the bar above the selection (or hides it); touches the DOM only when something changed. */
  update() {
    const { canvas } = this.app;
    const nodes = selectedNodes(canvas);
    if (!nodes.length || canvas.pointer?.isDown) {
      if (!this.el.hidden) {
        this.el.hidden = true;
        this.colours.hidden = true;
      }
      this.last = null;
      return;
    }
    const boxes = nodes.map(outerBox);
    const x0 = Math.min(...boxes.map((b) => b[0]));
    const x1 = Math.max(...boxes.map((b) => b[0] + b[2]));
    const y0 = Math.min(...boxes.map((b) => b[1]));
    const [sx0, sy0] = canvas.ds.convertOffsetToCanvas([x0, y0]);
    const [sx1] = canvas.ds.convertOffsetToCanvas([x1, y0]);
    const colour = colourOf(nodes[0])?.name ?? "";
    const key = [nodes.length, Math.round(sx0), Math.round(sx1), Math.round(sy0), colour,
      nodes.every((n) => n.pinned), nodes.every((n) => n.mode === BYPASS)].join();
    if (key === this.last) return;
    this.last = key;
    for (const { el, action } of this.buttons.values()) el.hidden = nodes.length < action.min;
    this.buttons.get("pin").el.classList.toggle("on", nodes.every((n) => n.pinned));
    this.buttons.get("bypass").el.classList.toggle("on", nodes.every((n) => n.mode === BYPASS));
    const sw = this.buttons.get("colour").el.firstChild;
    sw.replaceWith(swatch(colourOf(nodes[0])));
    for (const s of this.el.querySelectorAll(".sep")) s.hidden = nodes.length < 2;
    this.el.hidden = false;
    const wrap = this.el.parentElement;
    const w = this.el.offsetWidth;
    const h = this.el.offsetHeight;
    const left = Math.max(4, Math.min((sx0 + sx1) / 2 - w / 2, wrap.clientWidth - w - 4));
    const top = Math.max(4, Math.min(sy0 - h - GAP, wrap.clientHeight - h - 4));
    this.el.style.left = `${Math.round(left)}px`;
    this.el.style.top = `${Math.round(top)}px`;
  }
}

function sep() {
  const s = document.createElement("span");
  s.className = "sep";
  return s;
}

/**
 * Runs `rebuild` (undo/redo, which rebuild the graph from a snapshot) and selects the nodes with
 * the ids selected before, so the toolbox stays (align, undo, try another way).
 */
export function keepSelection(app, rebuild) {
  const ids = app.canvas ? selectedNodes(app.canvas).map((n) => n.id) : [];
  const out = rebuild();
  const nodes = ids.map((id) => app.graph.getNodeById(id)).filter(Boolean);
  if (nodes.length) app.canvas.selectItems(nodes);
  return out;
}

/** Creates the toolbox over the canvas, and makes right-click › Pin/Unpin undoable. */
export function installToolbox(app) {
  const wrap = app.canvas.canvas.parentElement;
  const bar = new Toolbox(app, wrap);
  const canvas = app.canvas;
  const overlay = canvas.onDrawOverlay;
  canvas.onDrawOverlay = function drawOverlay(ctx) {
    overlay?.call(this, ctx);
    bar.update();
  };
  // the bar hides while the pointer is down (dragging nodes); bring it back when it is released
  canvas.canvas.addEventListener("pointerup", () => canvas.setDirty(true, false));
  const base = canvas.getNodeMenuOptions.bind(canvas);
  canvas.getNodeMenuOptions = (node) => base(node).map((item) => {
    if (!item || (item.content !== "Pin" && item.content !== "Unpin")) return item;
    return { content: node.pinned ? "Unpin" : "Pin",
      callback: () => setPinned(app, menuTargets(canvas, node), !node.pinned) };
  });
  return bar;
}
