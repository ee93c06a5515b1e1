// Litegraph node classes built from /api/nodes schemas, plus what a node shows
// beyond its widgets: run state, progress, images, text, and problems.

import { LiteGraph, LGraphNode } from "/vendor/litegraph/litegraph.es.js";
import { typeColour } from "./colors.js";
import { openLightbox } from "./ui.js";
import { addInputWidget, disposeNodeDom } from "./widgets.js";

/** Schemas by node type id (filled by registerSchemas). */
export const schemas = new Map();
/** Input slot type string → the set of output type names it accepts (parsed once). */
const acceptSets = new Map();
/** The slot type of an input that no output type can feed (never a type name). */
const ACCEPTS_NOTHING = "(nothing)";

const MIN_WIDTH = 220;
const IMAGE_AREA = 220;

const isWildcard = (type) => type === "*" || type === "" || type === 0 || type == null;

/**
 * The litegraph type of an input slot: the schema's `accepts` (the output type names the
 * server lets feed it) joined by ",". "*" is left out: an Any output feeds every input.
 */
export function inputSlotType(inp) {
  const names = (inp.accepts ?? []).filter((t) => t !== "*");
  return names.length ? names.join(",") : ACCEPTS_NOTHING;
}

/**
 * May an output of type `out` feed an input slot of type `inp` (an `inputSlotType`)?
 * This is `LiteGraph.isValidConnection`. "*" on either side is an Any output or a socket
 * of a node whose type is not installed: it connects to anything.
 */
export function canConnect(out, inp) {
  if (isWildcard(out) || isWildcard(inp)) return true;
  let accepts = acceptSets.get(inp);
  if (!accepts) {
    accepts = new Set(String(inp).split(","));
    acceptSets.set(inp, accepts);
  }
  return accepts.has(String(out));
}

/** The schema's own type name of an input slot (its slot type is its accept list). */
export function inputTypeName(node, slot) {
  const inp = node?.loom?.schema?.inputs.find((i) => i.name === slot?.name);
  return inp ? inp.type : String(slot?.type ?? "*");
}

/** Brings a node's input slot types up to date with its (reloaded) schema. */
export function refreshSlotTypes(node) {
  const schema = node.loom?.schema;
  if (!schema) return;
  for (const slot of node.inputs ?? []) {
    const inp = schema.inputs.find((i) => i.name === slot.name);
    if (inp) slot.type = inputSlotType(inp);
  }
}

/** Fresh per-node UI state (not part of the workflow file). */
export function emptyState(schema) {
  return {
    schema,
    status: null, // running | cached | done | failed
    images: [], // HTMLImageElements of outputs (or a live preview)
    preview: null,
    text: [],
    values: null,
    error: null, // {message, input} of a failed run
    problems: [], // validation problems [{input, message, code}]
    thumbnail: null,
    imageRects: [], // where images were last drawn (node coordinates)
    unknown: null, // the raw entry of a node whose type is not installed
    extraInputs: {}, // inputs kept verbatim (unknown names, literals on sockets)
    version: null, // the version from the file when older than the schema
  };
}

function setupNode(node, schema) {
  node.loom = emptyState(schema);
  node.serialize_widgets = true;
  node.description = schema.description;
  for (const inp of schema.inputs) {
    const colour = typeColour(inp.type); // by the input's own type, not its accept list
    const extra = { color_on: colour, color_off: colour };
    if (inp.label) extra.label = inp.label;
    if (inp.kind === "socket") {
      if (!inp.required) extra.shape = LiteGraph.SlotShape?.HollowCircle ?? 7;
    } else {
      addInputWidget(node, inp);
      extra.widget = { name: inp.name };
    }
    node.addInput(inp.name, inputSlotType(inp), extra);
  }
  for (const out of schema.outputs) node.addOutput(out.name, out.type);
  installDrawing(node);
  const size = node.computeSize();
  node.size = [Math.max(size[0], MIN_WIDTH), size[1] + (schema.output_node ? 40 : 0)];
}

/** Registers (or replaces) one litegraph node class per schema. */
export function registerSchemas(list) {
  for (const type of schemas.keys()) {
    if (LiteGraph.registered_node_types[type]) LiteGraph.unregisterNodeType(type);
  }
  schemas.clear();
  acceptSets.clear();
  for (const schema of list) {
    schemas.set(schema.id, schema);
    const cls = class extends LGraphNode {
      constructor(title) {
        super(title ?? schema.title);
        setupNode(this, schema);
      }
    };
    cls.title = schema.title;
    cls.description = schema.description;
    LiteGraph.registerNodeType(schema.id, cls);
    cls.category = schema.category || "misc";
  }
}

/** Every type name the schemas mention (for colours). */
export function allTypes() {
  const out = new Set();
  for (const s of schemas.values()) {
    for (const i of s.inputs) out.add(i.type);
    for (const o of s.outputs) out.add(o.type);
  }
  return out;
}

/** A stand-in for a node whose type is not installed; keeps its entry for saving. */
export function createUnknownNode(id, entry, usedOutputs) {
  const node = new LGraphNode(entry.ui?.title ?? `${entry.type} (missing)`);
  node.type = String(entry.type ?? "unknown");
  node.loom = emptyState(null);
  node.loom.unknown = structuredClone(entry);
  const inputs = entry.inputs && typeof entry.inputs === "object" ? entry.inputs : {};
  for (const [name, v] of Object.entries(inputs)) {
    if (v && typeof v === "object" && "node" in v && "output" in v) node.addInput(name, "*");
  }
  for (const name of usedOutputs) node.addOutput(name, "*");
  node.loom.problems = [{
    input: null, code: "unknown_type",
    message: `unknown node type ${JSON.stringify(entry.type)} (is its plugin installed?)`,
  }];
  node.has_errors = true;
  node.bgcolor = "#402525";
  installDrawing(node);
  node.size = [Math.max(node.computeSize()[0], MIN_WIDTH), node.computeSize()[1] + 40];
  return node;
}

// --- drawing ---------------------------------------------------------------------------
function contentTop(node) {
  let top = 0;
  for (const w of node.widgets ?? []) {
    if (w.hidden) continue;
    top = Math.max(top, (w.y ?? 0) + (w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT + 4));
  }
  const rows = Math.max(
    node.inputs.filter((i) => !i.widget).length,
    node.outputs.length,
  );
  return Math.max(top, rows * LiteGraph.NODE_SLOT_HEIGHT + 6);
}

function wrap(ctx, text, width) {
  const lines = [];
  for (const para of String(text).split("\n")) {
    let line = "";
    for (const word of para.split(" ")) {
      const next = line ? `${line} ${word}` : word;
      if (ctx.measureText(next).width > width && line) {
        lines.push(line);
        line = word;
      } else {
        line = next;
      }
    }
    lines.push(line);
  }
  return lines;
}

function drawImages(ctx, images, x, y, w, h) {
  const ready = images.filter((im) => im.complete && im.naturalWidth > 0);
  const rects = [];
  if (!ready.length || h < 16) return rects;
  const n = ready.length;
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const cw = w / cols;
  const ch = h / rows;
  ready.forEach((im, i) => {
    const s = Math.min(cw / im.naturalWidth, ch / im.naturalHeight);
    const dw = im.naturalWidth * s;
    const dh = im.naturalHeight * s;
    const cx = x + (i % cols) * cw + (cw - dw) / 2;
    const cy = y + Math.floor(i / cols) * ch + (ch - dh) / 2;
    ctx.imageSmoothingEnabled = s < 1;
    ctx.drawImage(im, cx, cy, dw, dh);
    rects.push({ image: im, rect: [cx, cy, dw, dh] });
  });
  ctx.imageSmoothingEnabled = true;
  return rects;
}

const TEXT_FONT = "12px system-ui, sans-serif";
const LINE_H = 14;
let measureCtx = null;

/** The lines of text and values a node shows, wrapped to its width. */
function textLines(node, ctx, width) {
  const st = node.loom;
  const lines = [...st.text];
  if (st.values) for (const [k, v] of Object.entries(st.values)) lines.push(`${k}: ${formatValue(v)}`);
  return lines.flatMap((text) => wrap(ctx, text, width));
}

/** The images a node shows now: a live preview, its outputs, or its input thumbnail. */
function shownImages(st) {
  if (st.status === "running" && st.preview) return [st.preview];
  if (!st.images.length && st.thumbnail) return [st.thumbnail];
  return st.images;
}

function drawContent(node, ctx) {
  const st = node.loom;
  if (!st || node.flags.collapsed) return;
  const pad = 8;
  const width = node.size[0] - 2 * pad;
  let y = contentTop(node) + 4;
  const messages = [];
  if (st.error) messages.push(st.error.message);
  for (const p of st.problems) messages.push(p.input ? `${p.input}: ${p.message}` : p.message);
  ctx.save();
  ctx.font = TEXT_FONT;
  ctx.textAlign = "left";
  if (messages.length) drawMessages(ctx, messages, node.size[1] + 22, Math.max(width, 200));
  const lines = textLines(node, ctx, width);
  if (lines.length) {
    ctx.fillStyle = "#cfd8dc";
    for (const line of lines) {
      y += LINE_H;
      ctx.fillText(line, pad, y);
    }
    y += 6;
  }
  ctx.restore();
  st.contentBottom = y;
  const images = shownImages(st);
  st.imageRects = images.length ? drawImages(ctx, images, pad, y, width, node.size[1] - y - pad) : [];
}

const NO_DRAW = { drawImage() {}, imageSmoothingEnabled: true };

/** Where a node's images go, without drawing (a node off-screen is not drawn, but its images
 * have a place as soon as they load). The next draw recomputes it. */
export function layoutImages(node) {
  const st = node.loom;
  if (!st || node.flags.collapsed) return;
  const pad = 8;
  const y = st.contentBottom ?? contentTop(node) + 4;
  const images = shownImages(st);
  st.imageRects = images.length ? drawImages(NO_DRAW, images, pad, y, node.size[0] - 2 * pad, node.size[1] - y - pad) : [];
}

/** The image drawn on a node at a point relative to the node, if any. */
export function imageAt(node, x, y) {
  for (const { image, rect } of node.loom?.imageRects ?? []) {
    if (x >= rect[0] && y >= rect[1] && x <= rect[0] + rect[2] && y <= rect[1] + rect[3]) return image;
  }
  return null;
}

/** Problems and errors in a red box under the node (outside it, so no layout changes). */
function drawMessages(ctx, messages, top, width) {
  const lines = messages.flatMap((m) => wrap(ctx, m, width - 12));
  const h = lines.length * 15 + 8;
  ctx.fillStyle = "rgba(70, 22, 24, 0.95)";
  ctx.beginPath();
  ctx.roundRect(0, top, width + 16, h, 5);
  ctx.fill();
  ctx.fillStyle = "#ffb4ab";
  lines.forEach((line, i) => ctx.fillText(line, 8, top + 16 + i * 15));
}

function formatValue(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(5);
  return typeof v === "string" ? v : JSON.stringify(v);
}

function drawBadge(node, ctx) {
  const st = node.loom;
  if (!st?.status || st.status === "running") return;
  const label = { cached: "cached", done: "✓", failed: "failed" }[st.status];
  if (!label) return;
  ctx.save();
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "right";
  ctx.fillStyle = st.status === "failed" ? "#ff8a80" : st.status === "cached" ? "#90caf9" : "#81c784";
  const x = node.flags.collapsed ? (node._collapsed_width ?? 100) - 8 : node.size[0] - 8;
  ctx.fillText(label, x, -LiteGraph.NODE_TITLE_HEIGHT * 0.32);
  ctx.restore();
}

function installDrawing(node) {
  node.strokeStyles.running = function running() {
    if (this.loom?.status === "running") return { color: "#5fd37f", lineWidth: 3, padding: 5 };
    return undefined;
  };
  node.onDrawBackground = function onDrawBackground(ctx) {
    drawContent(this, ctx);
  };
  node.onDrawForeground = function onDrawForeground(ctx) {
    drawBadge(this, ctx);
  };
  node.onDblClick = function onDblClick(e, pos) {
    const image = imageAt(this, pos[0], pos[1]);
    if (image) openLightbox(image.src, this.title);
  };
  node.onRemoved = function onRemoved() {
    disposeNodeDom(this);
  };
  node.onConnectionsChange = function onConnectionsChange(side, index, connected, link, slot) {
    // a link is drawn in its input's colour (its litegraph type is the input's accept list)
    if (side === LiteGraph.INPUT && connected && link && slot?.color_on) link.color = slot.color_on;
  };
}

/**
 * Grows a node so its text, values and images fit inside it (only ever grows, never fights
 * the user); returns whether it grew.
 */
export function makeRoomForContent(node) {
  const st = node.loom;
  if (!st || node.flags.collapsed) return false;
  const images = shownImages(st).length > 0;
  const width = images ? Math.max(node.size[0], 240) : node.size[0];
  measureCtx ??= document.createElement("canvas").getContext("2d");
  measureCtx.font = TEXT_FONT;
  const lines = textLines(node, measureCtx, width - 16).length;
  const text = lines ? lines * LINE_H + 6 : 0;
  const need = contentTop(node) + 4 + text + (images ? IMAGE_AREA : 4);
  if (node.size[1] >= need && node.size[0] >= width) return false;
  node.setSize([width, Math.max(node.size[1], need)]);
  return true;
}
