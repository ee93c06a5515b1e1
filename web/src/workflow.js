// The canvas graph <-> the one workflow format (DESIGN.md "Workflow file").
// ui.pos and ui.size describe a node's outer box, title bar included (litegraph's own pos
// and size leave the title out), so layouts written by hand line up with groups.

import { LiteGraph, LGraphGroup } from "/vendor/litegraph/litegraph.es.js";
import { isColour } from "./node_colours.js";
import { createUnknownNode, schemas } from "./nodes.js";
import { createSubgraphNode } from "./subgraphs.js";
import { sweepKeys, sweepsOf } from "./sweeps.js";
import { setThumbnail } from "./widgets.js";

export const FORMAT = "loom.workflow";

/** A node entry's "mode" ⇄ litegraph's node.mode (absent = active = ALWAYS). */
const MODE_OF = { bypass: 4, mute: 2 };
const MODE_NAME = { 4: "bypass", 2: "mute" };

/** Writes a node's mode into its entry (removes the key when it is active). */
function writeMode(entry, node) {
  delete entry.mode;
  const name = MODE_NAME[node.mode] ?? node.loom?.otherMode;
  if (name) entry.mode = name;
  return entry;
}

const isLink = (v) => v !== null && typeof v === "object" && !Array.isArray(v)
  && Object.keys(v).length === 2 && "node" in v && "output" in v;

const round = (n) => Math.round(Number(n) * 10) / 10;

/** Workflow ids are strings; plain integers become litegraph's numeric ids. */
function toNodeId(id) {
  return /^[1-9]\d{0,8}$/.test(id) ? Number(id) : id;
}

/** A readable error for a file that is not a Loom workflow. */
export class WorkflowError extends Error {}

/** Checks the envelope of a parsed workflow (per-node problems are the server's job). */
export function checkWorkflow(data) {
  if (!data || typeof data !== "object" || Array.isArray(data)) {
    throw new WorkflowError("a workflow is a JSON object");
  }
  if ((data.format ?? FORMAT) !== FORMAT) {
    throw new WorkflowError(`not a Loom workflow: format is ${JSON.stringify(data.format)}`);
  }
  if (!data.nodes || typeof data.nodes !== "object" || Array.isArray(data.nodes)) {
    throw new WorkflowError('a workflow needs "nodes": an object of node id → node');
  }
  return data;
}

function uiOf(node, schema) {
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  const ui = {
    pos: [round(node.pos[0]), round(node.pos[1] - th)],
    size: [round(node.size[0]), round(node.size[1] + th)],
  };
  const title = schema?.title ?? node.loom?.unknown?.ui?.title;
  if (node.title && node.title !== title && !node.loom?.unknown) ui.title = node.title;
  if (node.loom?.unknown?.ui?.title) ui.title = node.title;
  if (node.flags?.collapsed) ui.collapsed = true;
  if (node.pinned) ui.pinned = true;
  if (node.color) ui.color = node.color;
  if (node.bgcolor && !node.loom?.unknown) ui.bgcolor = node.bgcolor;
  const seeds = {};
  for (const w of node.widgets ?? []) if (w.loomControlFor) seeds[w.loomControlFor] = w.value;
  if (Object.keys(seeds).length) ui.seed_control = seeds;
  return ui;
}

/** The workflow JSON of what the canvas shows. */
export function exportWorkflow(graph, meta = {}) {
  const nodes = {};
  for (const node of graph.nodes) {
    const id = String(node.id);
    const st = node.loom ?? {};
    if (st.unknown) {
      nodes[id] = writeMode({ ...structuredClone(st.unknown), ui: { ...(st.unknown.ui ?? {}), ...uiOf(node, null) } },
        node);
      continue;
    }
    const schema = st.schema ?? schemas.get(node.type);
    if (!schema) continue;
    const inputs = { ...structuredClone(st.extraInputs ?? {}) };
    for (const slot of node.inputs) {
      if (slot.link == null) continue;
      const link = graph.getLink(slot.link);
      const origin = link && graph.getNodeById(link.origin_id);
      if (!origin) continue;
      inputs[slot.name] = { node: String(origin.id), output: origin.outputs[link.origin_slot]?.name };
    }
    for (const w of node.widgets ?? []) {
      if (!w.loomInput || w.loomInput in inputs) continue;
      const inp = schema.inputs.find((i) => i.name === w.loomInput);
      const value = w.value;
      if (value === null || value === undefined) continue;
      if (value === "" && inp && ["model_file", "image_file", "combo"].includes(inp.type)) continue;
      inputs[w.loomInput] = value;
    }
    nodes[id] = writeMode({ type: node.type, ...structuredClone(st.entryExtra ?? {}), // a subgraph's own keys
      version: st.version ?? schema.version, inputs, ui: uiOf(node, schema) },
      node);
  }
  const groups = graph.groups.map((g) => {
    const out = { title: g.title, bounding: Array.from(g._bounding, round) };
    if (g.color) out.color = g.color;
    return out;
  });
  const wf = { format: FORMAT, version: 1, nodes };
  if (groups.length) wf.groups = groups;
  if (meta && Object.keys(meta).length) wf.meta = structuredClone(meta);
  if (Object.keys(graph.loomSubgraphs ?? {}).length) wf.subgraphs = structuredClone(graph.loomSubgraphs);
  Object.assign(wf, sweepKeys(graph.loomSweeps)); // "sweeps", "sweep_mode" (sweeps.js)
  return wf;
}

function setWidgetValues(node, schema, inputs) {
  const extra = {};
  for (const [name, value] of Object.entries(inputs)) {
    if (isLink(value)) continue;
    const inp = schema.inputs.find((i) => i.name === name);
    const widget = node.widgets?.find((w) => w.loomInput === name);
    if (!inp || inp.kind === "socket" || !widget) {
      extra[name] = value;
      continue;
    }
    if (widget.type === "combo" && !widget.options.values.includes(value) && value !== "") {
      widget.options.values = [...widget.options.values, value];
    }
    widget.value = value;
    if (inp.type === "image_file") setThumbnail(node, value);
  }
  return extra;
}

function applyUi(node, ui, warnings = []) {
  if (!ui || typeof ui !== "object") return;
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  if (Array.isArray(ui.pos) && ui.pos.length === 2) {
    node.pos = [Number(ui.pos[0]) || 0, (Number(ui.pos[1]) || 0) + th];
  }
  if (Array.isArray(ui.size) && ui.size.length === 2) {
    const min = node.computeSize();
    const body = (Number(ui.size[1]) || 0) - th;
    node.size = [Math.max(Number(ui.size[0]) || 0, 80), Math.max(body, Math.min(min[1], 60))];
  }
  if (typeof ui.title === "string" && ui.title) node.title = ui.title;
  if (ui.collapsed) node.flags.collapsed = true;
  for (const key of ["color", "bgcolor"]) { // node colours (node_colours.js): checked, never drawn blindly
    if (ui[key] === undefined) continue;
    if (isColour(ui[key])) node[key] = ui[key];
    else warnings.push(`${node.title}: ui.${key} ${JSON.stringify(ui[key]).slice(0, 40)} is not a colour; left out`);
  }
  if (ui.seed_control && typeof ui.seed_control === "object") {
    for (const w of node.widgets ?? []) {
      const mode = ui.seed_control[w.loomControlFor];
      if (w.loomControlFor && w.options.values.includes(mode)) w.value = mode;
    }
  }
}

/**
 * Replaces the graph's contents with a workflow; returns warnings (links that could
 * not be drawn). Unknown node types become red stand-ins that keep their entry.
 */
export function importWorkflow(graph, data) {
  const wf = checkWorkflow(data);
  const warnings = [];
  graph.clear();
  graph.loomSubgraphs = wf.subgraphs && typeof wf.subgraphs === "object" ? structuredClone(wf.subgraphs) : {};
  graph.loomSweeps = sweepsOf(wf);
  const entries = Object.entries(wf.nodes);
  const usedOutputs = new Map();
  for (const [, entry] of entries) {
    for (const v of Object.values(entry?.inputs ?? {})) {
      if (isLink(v)) {
        const set = usedOutputs.get(String(v.node)) ?? new Set();
        set.add(String(v.output));
        usedOutputs.set(String(v.node), set);
      }
    }
  }
  let maxId = 0;
  let x = 40;
  for (const [id, entry] of entries) {
    if (!entry || typeof entry !== "object") {
      warnings.push(`node ${id}: not an object, skipped`);
      continue;
    }
    const schema = schemas.get(entry.type);
    let node = createSubgraphNode(entry, graph.loomSubgraphs); // a subgraph (subgraphs.js) or null
    if (node) {
      // its slots come from the definition; literal inputs are kept in node.loom.extraInputs
    } else if (schema) {
      node = LiteGraph.createNode(entry.type);
      const inputs = entry.inputs && typeof entry.inputs === "object" ? entry.inputs : {};
      node.loom.extraInputs = setWidgetValues(node, schema, inputs);
      if (Number.isInteger(entry.version) && entry.version !== schema.version) node.loom.version = entry.version;
    } else {
      node = createUnknownNode(id, entry, usedOutputs.get(id) ?? []);
    }
    node.id = toNodeId(id);
    node.mode = MODE_OF[entry.mode] ?? 0;
    if (typeof entry.mode === "string" && !(entry.mode in MODE_OF) && entry.mode !== "active") {
      node.loom.otherMode = entry.mode; // a mode this page does not know: kept for the server
    }
    if (typeof node.id === "number") maxId = Math.max(maxId, node.id);
    if (entry.ui?.pos) {
      applyUi(node, entry.ui, warnings);
    } else {
      node.pos = [x, 80 + LiteGraph.NODE_TITLE_HEIGHT];
      x += node.size[0] + 40;
      applyUi(node, entry.ui, warnings);
    }
    graph.add(node, true);
    if (entry.ui?.pinned) node.pin(true); // litegraph pins only a node in a graph
  }
  for (const [id, entry] of entries) {
    const target = graph.getNodeById(toNodeId(id));
    if (!target || target.loom?.unknown && !target.inputs.length) continue;
    for (const [name, v] of Object.entries(entry?.inputs ?? {})) {
      if (!isLink(v)) continue;
      const origin = graph.getNodeById(toNodeId(String(v.node)));
      const inIndex = target.findInputSlot(name);
      const outIndex = origin ? origin.findOutputSlot(String(v.output)) : -1;
      const ok = origin && inIndex >= 0 && outIndex >= 0 && origin.connect(outIndex, target, inIndex);
      if (!ok) {
        warnings.push(`${id}.${name}: link from ${v.node}.${v.output} could not be drawn`);
        if (!target.loom.unknown) target.loom.extraInputs[name] = v;
      }
    }
  }
  for (const g of Array.isArray(wf.groups) ? wf.groups : []) {
    if (!Array.isArray(g?.bounding) || g.bounding.length !== 4) continue;
    const group = new LGraphGroup(String(g.title ?? "Group"));
    group.configure({ id: -1, title: String(g.title ?? "Group"), bounding: g.bounding.map(Number),
      color: g.color, font_size: 24, flags: {} });
    graph.add(group);
  }
  for (const node of graph.nodes) {
    // lay out slots and widgets now (as the first draw would), so a node too small for its
    // widgets grows here and not later, when it would look like an edit
    node._setConcreteSlots?.();
    node.arrange?.();
  }
  graph.state.lastNodeId = Math.max(graph.state.lastNodeId ?? 0, maxId);
  graph.updateExecutionOrder();
  graph.setDirtyCanvas(true, true);
  return { warnings, meta: wf.meta && typeof wf.meta === "object" ? wf.meta : {} };
}
