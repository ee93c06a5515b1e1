// Subgraphs as workflow documents (no canvas, no DOM): turning a selection into one
// instance, unpacking an instance, a definition's inside as a graph of its own (with an
// "inputs" and an "outputs" node standing for its ports) and back, and the definitions a
// saved subgraph carries. The format is the engine's (docs/engine.md, "Subgraphs").

export const INSTANCE = "subgraph";
export const INPUTS_NODE = "subgraph_inputs";
export const OUTPUTS_NODE = "subgraph_outputs";

export const isLink = (v) => v !== null && typeof v === "object" && !Array.isArray(v)
  && Object.keys(v).length === 2 && "node" in v && "output" in v;

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** `name`, or `name_2`, `name_3`… whichever is not in `taken` (a Set, filled in). */
export function uniqueName(name, taken) {
  let out = name;
  for (let i = 2; taken.has(out); i += 1) out = `${name}_${i}`;
  taken.add(out);
  return out;
}

/** A definition id made from a title: lower-case letters, digits and "_", not in `defs`. */
export function newDefinitionId(title, defs) {
  const base = String(title).toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "") || "subgraph";
  return uniqueName(base.slice(0, 40), new Set(Object.keys(defs ?? {})));
}

/** One more than the largest numeric node id in `nodes` (and `floor`). */
export function nextNumericId(nodes, floor = 0) {
  let max = floor;
  for (const id of Object.keys(nodes)) if (/^\d{1,9}$/.test(id)) max = Math.max(max, Number(id));
  return max + 1;
}

function posOf(entry) {
  const p = entry?.ui?.pos;
  return Array.isArray(p) && p.length === 2 ? [Number(p[0]) || 0, Number(p[1]) || 0] : null;
}

function corner(entries) {
  const ps = entries.map(posOf).filter(Boolean);
  if (!ps.length) return null;
  return [Math.min(...ps.map((p) => p[0])), Math.min(...ps.map((p) => p[1]))];
}

/**
 * Replaces nodes `ids` of document `doc` (a copy is changed and returned) by one instance of a
 * new definition. Links from outside become its inputs (one per distinct source), links to
 * outside its outputs (one per distinct source output). `typeOf(link)` names the type a link
 * carries. Returns {doc, instanceId, sid}.
 */
export function convertNodes(source, ids, { title = "Subgraph", typeOf = () => "*" } = {}) {
  const doc = structuredClone(source);
  const chosen = new Set([...ids].map(String).filter((id) => id in doc.nodes));
  if (!chosen.size) throw new Error("select the nodes to put in the subgraph first");
  const defs = isObject(doc.subgraphs) ? doc.subgraphs : {};
  const sid = newDefinitionId(title, defs);
  const instanceId = String(nextNumericId(doc.nodes));
  const inner = {};
  for (const id of chosen) inner[id] = doc.nodes[id];
  const inNames = new Set();
  const inputs = new Map(); // "node\0output" outside -> port
  for (const [id, entry] of Object.entries(inner)) {
    for (const [name, v] of Object.entries(entry.inputs ?? {})) {
      if (!isLink(v) || chosen.has(String(v.node))) continue;
      const key = `${v.node}\u0000${v.output}`;
      let port = inputs.get(key);
      if (!port) {
        port = { name: uniqueName(name, inNames), type: typeOf(v), to: [], link: v };
        inputs.set(key, port);
      }
      port.to.push({ node: id, input: name });
      delete entry.inputs[name];
    }
  }
  const outNames = new Set();
  const outputs = new Map();
  for (const [id, entry] of Object.entries(doc.nodes)) {
    if (chosen.has(id)) continue;
    for (const [name, v] of Object.entries(entry?.inputs ?? {})) {
      if (!isLink(v) || !chosen.has(String(v.node))) continue;
      const key = `${v.node}\u0000${v.output}`;
      let port = outputs.get(key);
      if (!port) {
        port = { name: uniqueName(String(v.output), outNames), type: typeOf(v),
          from: { node: String(v.node), output: String(v.output) } };
        outputs.set(key, port);
      }
      entry.inputs[name] = { node: instanceId, output: port.name };
    }
  }
  for (const id of chosen) delete doc.nodes[id];
  const at = corner(Object.values(inner));
  doc.nodes[instanceId] = {
    type: INSTANCE, subgraph: sid,
    inputs: Object.fromEntries([...inputs.values()].map((p) => [p.name, p.link])),
    ...(at ? { ui: { pos: at } } : {}),
  };
  defs[sid] = {
    title,
    nodes: inner,
    inputs: [...inputs.values()].map(({ name, type, to }) => ({ name, type, to })),
    outputs: [...outputs.values()],
  };
  doc.subgraphs = defs;
  return { doc, instanceId, sid };
}

/**
 * Puts an instance's nodes back in its place (a copy of `doc` is changed and returned), with
 * fresh numeric ids from `firstId` on. Returns {doc, ids}.
 */
export function unpackInstance(source, instanceId, firstId) {
  const doc = structuredClone(source);
  const inst = doc.nodes[instanceId];
  const def = doc.subgraphs?.[inst?.subgraph];
  if (!def) throw new Error(`node ${instanceId} is not a subgraph this workflow defines`);
  let next = Math.max(firstId, nextNumericId(doc.nodes));
  const idMap = {};
  for (const id of Object.keys(def.nodes)) idMap[id] = String(next++);
  const at = posOf(inst);
  const from = corner(Object.values(def.nodes));
  const added = {};
  for (const [id, e] of Object.entries(structuredClone(def.nodes))) {
    const inputs = {};
    for (const [name, v] of Object.entries(e.inputs ?? {})) {
      inputs[name] = isLink(v) && String(v.node) in idMap ? { node: idMap[v.node], output: v.output } : v;
    }
    const entry = { ...e, inputs };
    if (at && from && posOf(e)) {
      entry.ui = { ...e.ui, pos: [posOf(e)[0] - from[0] + at[0], posOf(e)[1] - from[1] + at[1]] };
    }
    if (inst.mode && !entry.mode) entry.mode = inst.mode;
    added[idMap[id]] = entry;
  }
  for (const port of def.inputs ?? []) {
    if (!(port.name in (inst.inputs ?? {}))) continue;
    for (const to of port.to ?? []) {
      if (idMap[to.node]) added[idMap[to.node]].inputs[to.input] = structuredClone(inst.inputs[port.name]);
    }
  }
  const outs = {};
  for (const port of def.outputs ?? []) {
    if (idMap[port.from?.node]) outs[port.name] = { node: idMap[port.from.node], output: port.from.output };
  }
  delete doc.nodes[instanceId];
  for (const entry of Object.values(doc.nodes)) {
    for (const [name, v] of Object.entries(entry?.inputs ?? {})) {
      if (!isLink(v) || String(v.node) !== String(instanceId)) continue;
      if (outs[v.output]) entry.inputs[name] = outs[v.output];
      else delete entry.inputs[name];
    }
  }
  Object.assign(doc.nodes, added);
  return { doc, ids: Object.values(idMap) };
}

/** The inside of definition `sid` as a document the canvas can show and edit. */
export function innerView(defs, sid) {
  const def = defs[sid];
  const nodes = structuredClone(def.nodes);
  const taken = new Set(Object.keys(nodes));
  const inId = uniqueName("inputs", taken);
  const outId = uniqueName("outputs", taken);
  for (const port of def.inputs ?? []) {
    for (const to of port.to ?? []) {
      const entry = nodes[to.node];
      if (!entry) continue;
      entry.inputs = { ...(entry.inputs ?? {}), [to.input]: { node: inId, output: port.name } };
    }
  }
  const ps = Object.values(nodes).map(posOf).filter(Boolean);
  const minX = ps.length ? Math.min(...ps.map((p) => p[0])) : 0;
  const minY = ps.length ? Math.min(...ps.map((p) => p[1])) : 0;
  const maxX = ps.length ? Math.max(...ps.map((p, i) => p[0] + (Object.values(nodes)[i]?.ui?.size?.[0] ?? 240))) : 400;
  nodes[inId] = { type: INPUTS_NODE, ports: (def.inputs ?? []).map(({ name, type }) => ({ name, type })),
    inputs: {}, ui: { pos: def.ui?.inputs ?? [minX - 260, minY] } };
  nodes[outId] = { type: OUTPUTS_NODE, ports: (def.outputs ?? []).map(({ name, type }) => ({ name, type })),
    inputs: Object.fromEntries((def.outputs ?? []).map((p) => [p.name, { ...p.from }])),
    ui: { pos: def.ui?.outputs ?? [maxX + 60, minY] } };
  const doc = { format: "loom.workflow", version: 1, nodes, subgraphs: defs, meta: { title: def.title } };
  if (Array.isArray(def.groups) && def.groups.length) doc.groups = def.groups;
  return doc;
}

/** The definition an edited inside view stands for (`old`: the definition before). */
export function definitionFromView(view, old) {
  const nodes = {};
  let inId = null;
  let inNode = null;
  let outNode = null;
  for (const [id, e] of Object.entries(view.nodes)) {
    if (e.type === INPUTS_NODE) [inId, inNode] = [id, e];
    else if (e.type === OUTPUTS_NODE) outNode = e;
    else nodes[id] = structuredClone(e);
  }
  const inputs = (inNode?.ports ?? old.inputs ?? []).map(({ name, type }) => ({ name, type, to: [] }));
  for (const [id, e] of Object.entries(nodes)) {
    for (const [name, v] of Object.entries(e.inputs ?? {})) {
      if (!isLink(v) || String(v.node) !== inId) continue;
      inputs.find((p) => p.name === v.output)?.to.push({ node: id, input: name });
      delete e.inputs[name];
    }
  }
  const outputs = [];
  for (const { name, type } of outNode?.ports ?? old.outputs ?? []) {
    const v = outNode?.inputs?.[name];
    if (!isLink(v) || !(String(v.node) in nodes)) continue; // an unlinked output port is dropped
    outputs.push({ name, type, from: { node: String(v.node), output: v.output } });
  }
  const def = { title: old.title, nodes, inputs, outputs };
  const ui = {};
  if (inNode?.ui?.pos) ui.inputs = inNode.ui.pos;
  if (outNode?.ui?.pos) ui.outputs = outNode.ui.pos;
  if (Object.keys(ui).length) def.ui = ui;
  if (view.groups?.length) def.groups = view.groups;
  return def;
}

/** The definition ids that `nodes` use, directly or through other definitions. */
export function usedDefinitions(nodes, defs) {
  const seen = new Set();
  const todo = [nodes];
  while (todo.length) {
    for (const e of Object.values(todo.pop() ?? {})) {
      const sid = e?.type === INSTANCE ? e.subgraph : null;
      if (typeof sid !== "string" || seen.has(sid) || !isObject(defs?.[sid])) continue;
      seen.add(sid);
      todo.push(defs[sid].nodes);
    }
  }
  return seen;
}

/** `doc` with only the definitions its nodes use (none: no "subgraphs" key). */
export function pruneDefinitions(doc) {
  if (!isObject(doc.subgraphs)) return doc;
  const used = usedDefinitions(doc.nodes, doc.subgraphs);
  const out = { ...doc };
  delete out.subgraphs;
  if (used.size) out.subgraphs = Object.fromEntries([...used].map((sid) => [sid, doc.subgraphs[sid]]));
  return out;
}

/** A workflow file holding definition `sid` (and those it uses), for the library. */
export function subgraphFile(defs, sid) {
  const nodes = { 1: { type: INSTANCE, subgraph: sid, inputs: {}, ui: { pos: [0, 0] } } };
  const used = usedDefinitions(nodes, defs);
  return { format: "loom.workflow", version: 1, nodes,
    subgraphs: Object.fromEntries([...used].map((k) => [k, defs[k]])),
    meta: { title: defs[sid].title, subgraph: true, subgraph_id: sid } };
}

/**
 * Adds the definitions of a saved subgraph file to `defs` (changed in place); an id already
 * used for a different definition gets a new one. Returns the id of the file's subgraph.
 */
export function mergeDefinitions(defs, file) {
  const theirs = isObject(file?.subgraphs) ? file.subgraphs : {};
  const root = file?.meta?.subgraph_id ?? Object.values(file?.nodes ?? {}).find((e) => e?.type === INSTANCE)?.subgraph;
  if (typeof root !== "string" || !isObject(theirs[root])) throw new Error("this file holds no subgraph");
  const taken = new Set([...Object.keys(defs), ...Object.keys(theirs)]);
  const rename = {};
  for (const sid of usedDefinitions({ r: { type: INSTANCE, subgraph: root } }, theirs)) {
    const same = defs[sid] && JSON.stringify(defs[sid]) === JSON.stringify(theirs[sid]);
    rename[sid] = !defs[sid] || same ? sid : uniqueName(sid, taken);
  }
  for (const [sid, to] of Object.entries(rename)) {
    const def = structuredClone(theirs[sid]);
    for (const e of Object.values(def.nodes ?? {})) {
      if (e?.type === INSTANCE && rename[e.subgraph]) e.subgraph = rename[e.subgraph];
    }
    defs[to] = def;
  }
  return rename[root];
}
