// Subgraph nodes on the canvas: an instance of a definition (its inputs and outputs are the
// definition's ports; double-click it to edit inside) and, inside, the "Subgraph inputs" and
// "Subgraph outputs" nodes that stand for the ports (their "+" slot adds one). Editing,
// converting and the library live in subgraphs.js; the document transforms in subgraph_docs.js.

import { LiteGraph, LGraphNode } from "/vendor/litegraph/litegraph.es.js";
import { createUnknownNode, emptyState, imageAt, inputSlotType, inputTypeName, schemas } from "./nodes.js";
import * as docs from "./subgraph_docs.js";
import { openLightbox } from "./ui.js";

const { INSTANCE, INPUTS_NODE, OUTPUTS_NODE } = docs;
const MIN_WIDTH = 220;
const PORT_COLOUR = "#2e4a3f";

let template = null;

/** Gives a node the drawing every Loom node has (status, images, problems): nodes.js puts it
 * on each node it creates, so it is borrowed from one. */
function addDrawing(node) {
  template ??= createUnknownNode("template", { type: "template" }, []);
  for (const key of ["onDrawBackground", "onDrawForeground", "onRemoved", "onConnectionsChange"]) {
    node[key] = template[key];
  }
  node.strokeStyles.running = template.strokeStyles.running;
}

/** The litegraph slot type of an input port: what the inner input it feeds accepts. */
function inputPortType(port, def) {
  const to = port.to?.[0];
  const entry = to && def.nodes?.[to.node];
  const inp = schemas.get(entry?.type)?.inputs.find((i) => i.name === to.input);
  return inp ? inputSlotType(inp) : "*";
}

/** Sets up an instance node for definition `sid` (slots, schema, what export writes). */
function setupInstance(node, sid, def) {
  const schema = {
    id: INSTANCE, title: def.title || sid, category: "subgraphs", output_node: false,
    description: `Subgraph "${def.title || sid}" — double-click to edit inside`,
    inputs: (def.inputs ?? []).map((p) => ({ name: p.name, type: p.type ?? "*", kind: "socket", required: true,
      accepts: inputPortType(p, def).split(",") })),
    outputs: (def.outputs ?? []).map((p) => ({ name: p.name, type: p.type ?? "*" })),
  };
  const keep = node.loom;
  node.loom = { ...emptyState(schema), ...(keep ? { status: keep.status, images: keep.images } : {}) };
  node.loom.entryExtra = { subgraph: sid };
  node.properties.subgraph = sid;
  node.title = node.title && node.title !== "Subgraph" ? node.title : schema.title;
  node.inputs = [];
  node.outputs = [];
  schema.inputs.forEach((inp, i) => node.addInput(inp.name, inputPortType(def.inputs[i], def)));
  for (const out of schema.outputs) node.addOutput(out.name, out.type);
  const size = node.computeSize();
  node.size = [Math.max(size[0], MIN_WIDTH), size[1] + 40];
}

/** A subgraph instance as litegraph knows it: pasted and cloned copies find their definition. */
export class LoomSubgraphNode extends LGraphNode {
  constructor(title) {
    super(title ?? "Subgraph");
    this.loom = emptyState(null);
    addDrawing(this);
  }

  onConfigure(info) {
    const sid = info?.properties?.subgraph;
    const def = window.loom?.graph?.loomSubgraphs?.[sid];
    if (!def) return;
    const title = this.title;
    const { inputs, outputs } = this;
    setupInstance(this, sid, def);
    this.title = title;
    this.inputs = inputs;
    this.outputs = outputs;
  }

  onDblClick(e, pos) {
    if (pos[1] < 0) return; // the title: rename (titles.js)
    const image = imageAt(this, pos[0], pos[1]);
    if (image) openLightbox(image.src, this.title);
    else setTimeout(() => window.loom?.subgraphs?.enter(this), 0); // after litegraph's own handling
  }
}
LoomSubgraphNode.title = "Subgraph";
LoomSubgraphNode.skip_list = true; // not in litegraph's own "Add Node" menu

const PLUS = "+"; // the free slot of a ports node: link it to add a port

/** A subgraph's inputs or outputs, shown inside it as a node; its last slot ("+") adds one. */
function portsNode(entry) {
  const isIn = entry.type === INPUTS_NODE;
  const ports = Array.isArray(entry.ports) ? entry.ports.filter((p) => typeof p?.name === "string") : [];
  const node = new LGraphNode(isIn ? "Subgraph inputs" : "Subgraph outputs");
  node.type = entry.type;
  const schema = { id: entry.type, title: node.title, category: "subgraphs", output_node: false,
    description: isIn ? "What the subgraph's inputs bring in (link + to add one)"
      : "What the subgraph gives out (link + to add one)",
    inputs: isIn ? [] : ports.map((p) => ({ name: p.name, type: p.type ?? "*", kind: "socket", required: false,
      accepts: [p.type ?? "*"] })),
    outputs: isIn ? ports.map((p) => ({ name: p.name, type: p.type ?? "*" })) : [] };
  node.loom = emptyState(schema);
  node.loom.entryExtra = { ports: ports.map(({ name, type }) => ({ name, type })) };
  for (const p of ports) {
    if (isIn) node.addOutput(p.name, p.type ?? "*");
    else node.addInput(p.name, p.type ?? "*");
  }
  const addPlus = () => (isIn ? node.addOutput(PLUS, "*", { label: "+ add input" })
    : node.addInput(PLUS, "*", { label: "+ add output" }));
  addPlus();
  node.block_delete = true;
  node.bgcolor = PORT_COLOUR;
  addDrawing(node);
  const draw = node.onConnectionsChange;
  node.onConnectionsChange = function onPortsChange(side, index, connected, link, slot) {
    draw?.call(this, side, index, connected, link, slot);
    if (!connected || !link || slot?.name !== PLUS) return;
    const other = this.graph?.getNodeById(isIn ? link.target_id : link.origin_id);
    const end = isIn ? other?.inputs?.[link.target_slot] : other?.outputs?.[link.origin_slot];
    if (!end) return;
    const type = isIn ? inputTypeName(other, end) : String(end.type || "*");
    const name = docs.uniqueName(end.name, new Set(this.loom.entryExtra.ports.map((p) => p.name)));
    Object.assign(slot, { name, type, label: undefined });
    this.loom.entryExtra.ports.push({ name, type });
    (isIn ? this.loom.schema.outputs : this.loom.schema.inputs).push({ name, type, kind: "socket", accepts: [type] });
    addPlus();
    this.setSize([Math.max(this.size[0], this.computeSize()[0]), this.computeSize()[1]]);
  };
  node.size = [Math.max(node.computeSize()[0], 180), node.computeSize()[1]];
  return node;
}

/**
 * The canvas node for a workflow entry that is a subgraph instance or a ports node (called by
 * workflow.js while importing), else null. `defs`: the workflow's "subgraphs".
 */
export function createSubgraphNode(entry, defs) {
  if (entry?.type === INPUTS_NODE || entry?.type === OUTPUTS_NODE) return portsNode(entry);
  if (entry?.type !== INSTANCE || typeof entry.subgraph !== "string") return null;
  const def = defs?.[entry.subgraph];
  if (!def || typeof def !== "object" || !def.nodes) return null; // an unknown-node stand-in
  const node = LiteGraph.createNode(INSTANCE);
  setupInstance(node, entry.subgraph, def);
  const literals = {};
  for (const [name, v] of Object.entries(entry.inputs ?? {})) if (!docs.isLink(v)) literals[name] = v;
  node.loom.extraInputs = literals;
  return node;
}

LiteGraph.registerNodeType(INSTANCE, LoomSubgraphNode);
