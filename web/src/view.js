// Fitting the view: "Fit" shows everything; opening a workflow keeps the text readable.

import { LiteGraph } from "/vendor/litegraph/litegraph.es.js";

/** The smallest on-screen text size (CSS px) a freshly opened workflow may show. */
export const READABLE_TEXT_PX = 11;

/** The scale at which the smallest node text (widgets, titles) is READABLE_TEXT_PX on screen. */
export function readableScale() {
  return READABLE_TEXT_PX / Math.min(LiteGraph.NODE_TEXT_SIZE, LiteGraph.NODE_SUBTEXT_SIZE);
}

function bounds(graph) {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  const titleH = LiteGraph.NODE_TITLE_HEIGHT;
  for (const n of graph.nodes) {
    const [w0, h0] = n.flags.collapsed ? [n._collapsed_width ?? 120, 0] : n.size;
    x0 = Math.min(x0, n.pos[0]);
    y0 = Math.min(y0, n.pos[1] - titleH);
    x1 = Math.max(x1, n.pos[0] + w0);
    y1 = Math.max(y1, n.pos[1] + h0);
  }
  for (const g of graph.groups) {
    x0 = Math.min(x0, g.pos[0]);
    y0 = Math.min(y0, g.pos[1]);
    x1 = Math.max(x1, g.pos[0] + g.size[0]);
    y1 = Math.max(y1, g.pos[1] + g.size[1]);
  }
  return [x0, y0, x1, y1];
}

/**
 * Zooms and pans to the workflow. `readable: false` (Fit, ".") shows every node, however small;
 * `readable: true` (opening a workflow) never zooms out below readableScale(): on an axis where
 * the workflow is then larger than the view it starts at the top-left corner instead of centring.
 */
export function fitView(app, { readable = false } = {}) {
  const el = app.canvas.canvas;
  const w = el.clientWidth || 800;
  const h = el.clientHeight || 600;
  if (!app.graph.nodes.length) {
    app.canvas.ds.scale = 1;
    app.canvas.ds.offset = [0, 0];
    return;
  }
  const [x0, y0, x1, y1] = bounds(app.graph);
  const margin = 40;
  let scale = Math.min(1.25, Math.max(0.1, Math.min((w - 2 * margin) / (x1 - x0), (h - 2 * margin) / (y1 - y0))));
  if (readable) scale = Math.max(scale, readableScale());
  const place = (size, lo, hi) => (size / scale >= hi - lo + (2 * margin) / scale
    ? (size / scale - (hi - lo)) / 2 - lo // fits: centred
    : margin / scale - lo); // too big: from its start
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = [place(w, x0, x1), place(h, y0, y1)];
  app.canvas.setDirty(true, true);
}
