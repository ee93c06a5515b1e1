// Layout: node boxes never overlap. A workflow opened with overlapping nodes (text areas
// taller than the file says, hand-edited positions) is pushed apart deterministically, and a
// node that grows to show results pushes the nodes it would cover down or right.

import { LiteGraph } from "/vendor/litegraph/litegraph.es.js";
import { makeRoomForContent } from "./nodes.js";

const GAP = 20;
const MAX_MOVES = 400;

/** A node's outer box [x, y, w, h], title bar included (graph coordinates). */
export function nodeBox(node) {
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  const w = node.flags?.collapsed ? (node._collapsed_width ?? 120) : node.size[0];
  const h = node.flags?.collapsed ? th : node.size[1] + th;
  return [node.pos[0], node.pos[1] - th, w, h];
}

const intersects = (a, b) => a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];

const order = (a, b) => {
  const [ba, bb] = [nodeBox(a), nodeBox(b)];
  return ba[1] - bb[1] || ba[0] - bb[0] || String(a.id).localeCompare(String(b.id));
};

/**
 * Moves nodes until no two boxes intersect; returns the nodes moved. Nodes are placed top to
 * bottom (then left to right); `first` (a node that just grew) is placed before all others
 * and never moves. A node that hits a placed one moves right or down, whichever is shorter.
 * Groups grow to keep the nodes that were inside them.
 */
export function pushApart(graph, first = null) {
  const nodes = [...graph.nodes].filter((n) => !n.pinned || n === first).sort(order);
  const fixed = graph.nodes.filter((n) => n.pinned && n !== first);
  if (first) {
    nodes.splice(nodes.indexOf(first), 1);
    nodes.unshift(first);
  }
  const members = groupMembers(graph);
  const placed = fixed.map(nodeBox);
  const moved = [];
  for (const node of nodes) {
    const box = nodeBox(node);
    let dx = 0;
    let dy = 0;
    for (let i = 0; i < MAX_MOVES && node !== first; i += 1) {
      const hit = placed.find((p) => intersects(p, box));
      if (!hit) break;
      const right = hit[0] + hit[2] + GAP - box[0];
      const down = hit[1] + hit[3] + GAP - box[1];
      if (right < down) {
        box[0] += right;
        dx += right;
      } else {
        box[1] += down;
        dy += down;
      }
    }
    if (dx || dy) {
      node.pos = [node.pos[0] + dx, node.pos[1] + dy];
      moved.push(node);
    }
    placed.push(box);
  }
  if (moved.length || first) fitGroups(members);
  return moved;
}

/** Which nodes each group frames (its box holds the node's centre). */
function groupMembers(graph) {
  return graph.groups.map((g) => {
    const [gx, gy, gw, gh] = g._bounding;
    const inside = graph.nodes.filter((n) => {
      const [x, y, w, h] = nodeBox(n);
      const cx = x + w / 2;
      const cy = y + h / 2;
      return cx >= gx && cx <= gx + gw && cy >= gy && cy <= gy + gh;
    });
    return { group: g, inside };
  });
}

/** Grows each group (never shrinks it) so it still frames its nodes. */
function fitGroups(members) {
  const pad = 10;
  for (const { group, inside } of members) {
    const b = group._bounding;
    for (const n of inside) {
      const [x, y, w, h] = nodeBox(n);
      const right = Math.max(b[0] + b[2], x + w + pad);
      const bottom = Math.max(b[1] + b[3], y + h + pad);
      b[2] = right - b[0];
      b[3] = bottom - b[1];
    }
  }
}

/**
 * Makes room on a node for what it shows (images, text, values) and pushes the nodes it
 * would cover. A grown node that moved others is an undoable step when `undoable`; growing
 * alone is folded into the current step (not an edit).
 */
export function growNode(app, node, { undoable = true } = {}) {
  if (!node?.graph) return;
  const before = `${node.size[0]},${node.size[1]}`;
  makeRoomForContent(node);
  if (`${node.size[0]},${node.size[1]}` === before) return;
  const moved = pushApart(app.graph, node);
  app.canvas.setDirty(true, true);
  if (moved.length && undoable) app.history.record();
  else app.history.absorb();
}

/** Pushes overlapping nodes apart after a workflow is opened (part of opening it). */
export function tidyAfterLoad(app) {
  if (pushApart(app.graph).length) app.canvas.setDirty(true, true);
}
