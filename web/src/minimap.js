// The minimap: an overview of the whole graph in the canvas's bottom-right corner. Nodes are
// boxes in their colours, groups faint frames, the part in view a rectangle; click or drag
// on it to pan. Shown or hidden by Settings › Minimap (or Alt+M).
//
// Cheap to keep up: the nodes are drawn into a cached layer, rebuilt only when the layout
// changes (checked at most every NODE_CHECK_MS); a frame of the main canvas only redraws the
// view rectangle over that layer, at most once per animation frame.

import { LiteGraph } from "/vendor/litegraph/litegraph.es.js";
import { onSettingsChange } from "./settings.js";

const WIDTH = 200;
const HEIGHT = 130;
const PAD = 8;
const NODE_CHECK_MS = 250;
const DEFAULT_NODE_COLOUR = "#66707c";
const GROUP_COLOUR = "#8899aa";

/** The graph's bounds [x0, y0, x1, y1] (nodes with their titles, and groups). */
function graphBounds(graph) {
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const n of graph.nodes) {
    const w = n.flags?.collapsed ? (n._collapsed_width ?? 120) : n.size[0];
    const h = n.flags?.collapsed ? 0 : n.size[1];
    x0 = Math.min(x0, n.pos[0]);
    y0 = Math.min(y0, n.pos[1] - th);
    x1 = Math.max(x1, n.pos[0] + w);
    y1 = Math.max(y1, n.pos[1] + h);
  }
  for (const g of graph.groups ?? []) {
    x0 = Math.min(x0, g.pos[0]);
    y0 = Math.min(y0, g.pos[1]);
    x1 = Math.max(x1, g.pos[0] + g.size[0]);
    y1 = Math.max(y1, g.pos[1] + g.size[1]);
  }
  return Number.isFinite(x0) ? [x0, y0, x1, y1] : null;
}

/** A number that changes when any node or group moves, resizes, recolours or collapses. */
function layoutSignature(graph) {
  let sig = graph.nodes.length * 7919 + (graph.groups?.length ?? 0) * 104729;
  for (const n of graph.nodes) {
    sig = (sig * 31 + n.pos[0] * 3 + n.pos[1] * 5 + n.size[0] * 7 + n.size[1] * 11
      + (n.flags?.collapsed ? 13 : 0) + (n.color ? n.color.length + n.color.charCodeAt(1) : 0)) % 1e12;
  }
  for (const g of graph.groups ?? []) sig = (sig * 31 + g.pos[0] + g.pos[1] * 3 + g.size[0] * 5 + g.size[1] * 7) % 1e12;
  return sig;
}

export class Minimap {
  constructor(app, wrap) {
    this.app = app;
    this.el = document.createElement("canvas");
    this.el.id = "minimap";
    this.el.className = "minimap";
    this.el.title = "Minimap: click or drag to move the view (Alt+M hides it)";
    this.el.hidden = true;
    wrap.append(this.el);
    this.layer = document.createElement("canvas"); // the cached nodes
    this.map = null; // { x0, y0, scale, ox, oy }: graph → minimap CSS pixels
    this.signature = null;
    this.lastCheck = 0;
    this.viewKey = "";
    this.frameRequested = false;
    this.stats = { layerDraws: 0, viewDraws: 0 };
    this.installPointer();
    this.timer = setInterval(() => this.update(), NODE_CHECK_MS);
  }

  get visible() {
    return !this.el.hidden;
  }

  setVisible(on) {
    this.el.hidden = !on;
    if (on) this.update(true);
  }

  /** Called after every frame of the main canvas: only the view rectangle may need redrawing. */
  afterFrame() {
    if (!this.visible || this.frameRequested) return;
    if (this.currentViewKey() === this.viewKey) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.update();
    });
  }

  /** Rebuilds the node layer if the layout changed (throttled), then draws the view rectangle. */
  update(force = false) {
    if (!this.visible || !this.app.graph) return;
    const now = performance.now();
    if (force || now - this.lastCheck >= NODE_CHECK_MS) {
      this.lastCheck = now;
      const sig = layoutSignature(this.app.graph);
      if (force || sig !== this.signature) {
        this.signature = sig;
        this.drawLayer();
        this.viewKey = ""; // the map moved: the rectangle must be drawn again
      }
    }
    if (this.currentViewKey() !== this.viewKey) this.drawView();
  }

  currentViewKey() {
    const { ds, canvas } = this.app.canvas;
    return `${ds.offset[0]},${ds.offset[1]},${ds.scale},${canvas.clientWidth},${canvas.clientHeight}`;
  }

  sizeCanvas(c) {
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(WIDTH * dpr)) c.width = Math.round(WIDTH * dpr);
    if (c.height !== Math.round(HEIGHT * dpr)) c.height = Math.round(HEIGHT * dpr);
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  drawLayer() {
    this.stats.layerDraws += 1;
    const ctx = this.sizeCanvas(this.layer);
    ctx.clearRect(0, 0, WIDTH, HEIGHT);
    const graph = this.app.graph;
    const b = graphBounds(graph);
    if (!b) {
      this.map = null;
      return;
    }
    const [x0, y0, x1, y1] = b;
    const scale = Math.min((WIDTH - 2 * PAD) / Math.max(1, x1 - x0), (HEIGHT - 2 * PAD) / Math.max(1, y1 - y0));
    const ox = (WIDTH - (x1 - x0) * scale) / 2;
    const oy = (HEIGHT - (y1 - y0) * scale) / 2;
    this.map = { x0, y0, scale, ox, oy };
    ctx.globalAlpha = 0.35;
    ctx.strokeStyle = GROUP_COLOUR;
    for (const g of graph.groups ?? []) {
      ctx.fillStyle = g.color || GROUP_COLOUR;
      const [gx, gy] = this.toMap(g.pos[0], g.pos[1]);
      ctx.fillRect(gx, gy, g.size[0] * scale, g.size[1] * scale);
    }
    ctx.globalAlpha = 1;
    const th = LiteGraph.NODE_TITLE_HEIGHT;
    for (const n of graph.nodes) {
      const [nx, ny] = this.toMap(n.pos[0], n.pos[1] - th);
      const w = (n.flags?.collapsed ? (n._collapsed_width ?? 120) : n.size[0]) * scale;
      const h = ((n.flags?.collapsed ? 0 : n.size[1]) + th) * scale;
      ctx.fillStyle = n.color || DEFAULT_NODE_COLOUR;
      ctx.fillRect(nx, ny, Math.max(1, w), Math.max(1, h));
    }
  }

  /** Graph coordinates → minimap CSS pixels. */
  toMap(x, y) {
    const m = this.map;
    return [m.ox + (x - m.x0) * m.scale, m.oy + (y - m.y0) * m.scale];
  }

  /** Minimap CSS pixels → graph coordinates. */
  toGraph(mx, my) {
    const m = this.map;
    return [m.x0 + (mx - m.ox) / m.scale, m.y0 + (my - m.oy) / m.scale];
  }

  /** The part of the graph in view: [x, y, w, h] in graph coordinates. */
  viewRect() {
    const { ds, canvas } = this.app.canvas;
    const w = canvas.clientWidth / ds.scale;
    const h = canvas.clientHeight / ds.scale;
    return [-ds.offset[0], -ds.offset[1], w, h];
  }

  drawView() {
    this.stats.viewDraws += 1;
    this.viewKey = this.currentViewKey();
    const ctx = this.sizeCanvas(this.el);
    ctx.clearRect(0, 0, WIDTH, HEIGHT);
    ctx.drawImage(this.layer, 0, 0, WIDTH, HEIGHT);
    if (!this.map) return;
    const [vx, vy, vw, vh] = this.viewRect();
    const [rx, ry] = this.toMap(vx, vy);
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, 0, WIDTH, HEIGHT);
    ctx.clip();
    ctx.fillStyle = "rgba(79, 157, 222, 0.12)";
    ctx.strokeStyle = "#4f9dde";
    ctx.lineWidth = 1.5;
    ctx.fillRect(rx, ry, vw * this.map.scale, vh * this.map.scale);
    ctx.strokeRect(rx, ry, vw * this.map.scale, vh * this.map.scale);
    ctx.restore();
  }

  /** Moves the view so that graph point (gx, gy) is at its centre. */
  centreOn(gx, gy) {
    const { ds, canvas } = this.app.canvas;
    ds.offset = [canvas.clientWidth / (2 * ds.scale) - gx, canvas.clientHeight / (2 * ds.scale) - gy];
    this.app.canvas.setDirty(true, true);
    this.drawView();
  }

  installPointer() {
    let dragging = false;
    const at = (e) => {
      if (!this.map) return;
      const r = this.el.getBoundingClientRect();
      this.centreOn(...this.toGraph(e.clientX - r.left, e.clientY - r.top));
    };
    this.el.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      e.stopPropagation();
      dragging = true;
      this.el.setPointerCapture(e.pointerId);
      at(e);
    });
    this.el.addEventListener("pointermove", (e) => {
      if (dragging) at(e);
    });
    const end = (e) => {
      dragging = false;
      if (this.el.hasPointerCapture?.(e.pointerId)) this.el.releasePointerCapture(e.pointerId);
    };
    this.el.addEventListener("pointerup", end);
    this.el.addEventListener("pointercancel", end);
    this.el.addEventListener("wheel", (e) => e.preventDefault(), { passive: false });
  }
}

/**
 * Creates the minimap in `wrap`, hooks it to the canvas's frames and to Settings › Minimap
 * (Alt+M flips that setting); returns it.
 */
export function installMinimap(app, wrap, isTyping) {
  const minimap = new Minimap(app, wrap);
  minimap.setVisible(app.settings.minimap);
  onSettingsChange((s) => minimap.setVisible(s.minimap));
  document.addEventListener("keydown", (e) => {
    if (!e.altKey || e.ctrlKey || e.metaKey || e.code !== "KeyM" || isTyping(e)) return;
    e.preventDefault();
    app.setSetting("minimap", !app.settings.minimap);
  });
  const canvas = app.canvas;
  const previous = canvas.onDrawOverlay;
  canvas.onDrawOverlay = function onDrawOverlay(ctx) {
    previous?.call(this, ctx);
    minimap.afterFrame();
  };
  app.minimap = minimap;
  return minimap;
}
