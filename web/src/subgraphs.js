// Subgraphs on the canvas: "Convert to subgraph" (Ctrl+Shift+E or the node menu) makes one
// node of the selection; double-click it to edit inside (a breadcrumb leads back; undo works
// inside); "Unpack subgraph" puts the nodes back; "Save subgraph to library" stores it in the
// server's user folder, and the palette lists saved subgraphs to insert again.
// Document transforms live in subgraph_docs.js; the engine expands instances (docs/engine.md).

import { api, listWorkflows } from "./api.js";
import { isTyping, SHORTCUTS } from "./shortcuts.js";
import * as docs from "./subgraph_docs.js";
import { LoomSubgraphNode } from "./subgraph_nodes.js";
import { toast } from "./ui.js";

export { createSubgraphNode } from "./subgraph_nodes.js"; // for workflow.js

const { INSTANCE, INPUTS_NODE, OUTPUTS_NODE } = docs;

SHORTCUTS.find(([section]) => section === "Nodes")?.[1].push(
  ["Ctrl+Shift+E", "convert the selection to a subgraph (double-click it to edit inside)"]);

// --- editing ---------------------------------------------------------------------------------
/** Installs subgraphs; `exportView()` is the workflow of what the canvas shows. */
export function installSubgraphs(app, exportView) {
  let edit = null; // null at the top; else {root: the whole workflow, path: [{node, sid, title}]}
  const load = app.load; // loads a document into the canvas (subgraphs' own view changes)
  const crumbs = document.createElement("nav");
  crumbs.id = "subgraph-crumbs";
  crumbs.hidden = true;
  document.querySelector("#canvas-wrap").append(crumbs);

  const view = () => ({ offset: [...app.canvas.ds.offset], scale: app.canvas.ds.scale });

  /** The whole workflow: the top level, with the definition edited now taken from the canvas. */
  const exportRoot = () => {
    const shown = exportView();
    if (!edit) return docs.pruneDefinitions(shown);
    const defs = { ...(shown.subgraphs ?? {}) };
    const { sid } = edit.path.at(-1);
    defs[sid] = docs.definitionFromView(shown, defs[sid] ?? edit.root.subgraphs[sid]);
    return docs.pruneDefinitions({ ...edit.root, subgraphs: defs });
  };

  const show = (doc, opts = {}) => load(doc, { keepHistory: true, fit: false, view: view(), ...opts });

  const renderCrumbs = () => {
    crumbs.hidden = !edit;
    if (!edit) return crumbs.replaceChildren();
    const items = [{ label: "Workflow", depth: 0 },
      ...edit.path.map((f, i) => ({ label: f.title, depth: i + 1 }))];
    crumbs.replaceChildren(...items.flatMap((it, i) => {
      const b = document.createElement("button");
      b.textContent = it.label;
      b.dataset.depth = String(it.depth);
      b.disabled = i === items.length - 1;
      b.addEventListener("click", () => leave(it.depth));
      return i ? [Object.assign(document.createElement("span"), { textContent: "›" }), b] : [b];
    }));
  };

  /** Shows the inside of `path` (instance ids from the top) of workflow `root`; false if gone. */
  const showPath = (root, path) => {
    let nodes = root.nodes;
    const frames = [];
    for (const id of path) {
      const entry = nodes?.[id];
      const def = entry?.type === INSTANCE ? root.subgraphs?.[entry.subgraph] : null;
      if (!def) return false;
      frames.push({ node: id, sid: entry.subgraph, title: entry.ui?.title || def.title || entry.subgraph });
      nodes = def.nodes;
    }
    edit = frames.length ? { root, path: frames } : null;
    show(frames.length ? docs.innerView(root.subgraphs, frames.at(-1).sid) : root);
    renderCrumbs();
    return true;
  };

  const enter = (node) => {
    const root = exportRoot();
    const path = [...(edit?.path.map((f) => f.node) ?? []), String(node.id)];
    app.history.record();
    if (showPath(root, path)) app.fitView?.();
  };

  /** Goes up to `depth` (0: the top level). */
  const leave = (depth = 0) => {
    if (!edit) return;
    const root = exportRoot();
    showPath(root, edit.path.slice(0, depth).map((f) => f.node));
    app.fitView?.();
    app.history.record();
  };

  const selection = () => Object.values(app.canvas.selected_nodes ?? {})
    .filter((n) => n.type !== INPUTS_NODE && n.type !== OUTPUTS_NODE);

  /** The type a link of a shown workflow carries (its source's output slot type). */
  const typeOf = (link) => {
    const origin = app.nodeById(link.node);
    const out = origin?.outputs?.find((o) => o.name === link.output);
    return typeof out?.type === "string" && out.type ? out.type : "*";
  };

  const apply = (doc, select) => {
    show(doc);
    const node = select && app.nodeById(select);
    if (node) app.canvas.selectNode(node);
    app.canvas.setDirty(true, true);
    app.history.record();
  };

  const convert = () => {
    const nodes = selection();
    if (!nodes.length) {
      toast("Select the nodes to put in a subgraph first", "warn");
      return null;
    }
    const shown = exportView();
    const n = Object.keys(shown.subgraphs ?? {}).length + 1;
    const { doc, instanceId } = docs.convertNodes(shown, nodes.map((x) => String(x.id)),
      { title: `Subgraph ${n}`, typeOf });
    apply(doc, instanceId);
    toast(`${nodes.length} node(s) are now one subgraph: double-click it to edit inside`, "ok");
    return instanceId;
  };

  const unpack = (node) => {
    const shown = exportView();
    const { doc, ids } = docs.unpackInstance(shown, String(node.id), (app.graph.state?.lastNodeId ?? 0) + 1);
    apply(doc, null);
    app.canvas.selectNodes(ids.map((id) => app.nodeById(id)).filter(Boolean));
    return ids;
  };

  // --- the library: saved subgraphs are user workflows marked meta.subgraph -------------------
  let saved = [];
  const refreshSaved = async () => {
    try {
      saved = (await listWorkflows()).filter((w) => w.subgraph && w.source === "saved");
    } catch {
      saved = [];
    }
    return saved;
  };

  const saveToLibrary = async (node) => {
    const defs = app.graph.loomSubgraphs ?? {};
    const sid = node.properties.subgraph;
    const file = docs.subgraphFile({ ...defs, ...exportRoot().subgraphs }, sid);
    file.meta.title = node.title;
    const slug = String(node.title).replace(/[^A-Za-z0-9_.-]+/g, "_").replace(/^[_.]+|[_.]+$/g, "");
    const name = `subgraph-${slug || sid}`.slice(0, 90); // a name the server's workflow store takes
    try {
      await api(`/api/workflows/${encodeURIComponent(name)}`, { method: "PUT", json: file });
      await refreshSaved();
      toast(`Saved "${node.title}" to the library: find it in the node search`, "ok");
      return name;
    } catch (err) {
      toast(`Could not save the subgraph: ${err.message}`, "error");
      return null;
    }
  };

  const insertSaved = async (name, pos) => {
    const file = await api(`/api/workflows/${encodeURIComponent(name)}`);
    const shown = exportView();
    shown.subgraphs = { ...(shown.subgraphs ?? {}) };
    const sid = docs.mergeDefinitions(shown.subgraphs, file);
    const id = String(docs.nextNumericId(shown.nodes, app.graph.state?.lastNodeId ?? 0));
    shown.nodes[id] = { type: INSTANCE, subgraph: sid, inputs: {},
      ui: { pos: [Math.round(pos[0]), Math.round(pos[1])], ...(file.meta?.title ? { title: file.meta.title } : {}) } };
    apply(shown, id);
    return id;
  };

  hookPalette(app, () => saved, (item, pos) => insertSaved(item.savedSubgraph, pos).catch((err) => {
    toast(`Could not insert the subgraph: ${err.message}`, "error");
  }));
  refreshSaved();

  // --- wiring: menus, keys, loading, history, ids of inner nodes --------------------------------
  const nodeMenu = app.canvas.getNodeMenuOptions.bind(app.canvas);
  app.canvas.getNodeMenuOptions = (node) => {
    const items = nodeMenu(node);
    const extra = [];
    if (node.type !== INPUTS_NODE && node.type !== OUTPUTS_NODE) {
      extra.push({ content: "Convert to subgraph (Ctrl+Shift+E)", callback: () => {
        if (!app.canvas.selected_nodes?.[node.id]) app.canvas.selectNode(node);
        convert();
      } });
    }
    if (node instanceof LoomSubgraphNode && node.loom?.entryExtra) {
      extra.push({ content: "Edit subgraph (double-click)", callback: () => enter(node) },
        { content: "Unpack subgraph", callback: () => unpack(node) },
        { content: "Save subgraph to library", callback: () => saveToLibrary(node) });
    }
    return extra.length ? [...extra, null, ...items] : items;
  };

  document.addEventListener("keydown", (e) => {
    if (!(e.ctrlKey || e.metaKey) || !e.shiftKey || e.altKey || e.key.toLowerCase() !== "e") return;
    if (isTyping(e) || app.palette?.isOpen) return;
    e.preventDefault();
    convert();
  });

  app.exportWorkflow = exportRoot;
  app.load = (wf, opts = {}) => { // opening another workflow leaves the subgraph first
    if (edit) showPath(exportRoot(), []);
    return load(wf, opts);
  };
  const restore = app.history.restore;
  app.history.snapshot = () => JSON.stringify(exportRoot());
  app.history.restore = (wf) => { // undo and redo inside a subgraph stay inside it
    const path = edit?.path.map((f) => f.node) ?? [];
    edit = null;
    restore(wf);
    if (!path.length || !showPath(wf, path)) renderCrumbs();
  };
  const byId = app.nodeById;
  app.nodeById = (id) => { // run events and problems name inner nodes "instance/inner"
    const s = String(id);
    if (!s.includes("/")) return byId(s);
    const prefix = edit ? `${edit.path.map((f) => f.node).join("/")}/` : "";
    if (!s.startsWith(prefix)) return null;
    return byId(s.slice(prefix.length).split("/")[0]);
  };
  app.subgraphs = { convert, enter, leave, unpack, saveToLibrary, insertSaved, refreshSaved,
    get path() { return edit ? edit.path.map((f) => f.node) : []; } };
  return app.subgraphs;
}


/** Lists saved subgraphs in the node palette (first, when the search matches them). */
function hookPalette(app, list, insert) {
  const palette = app.palette;
  const refresh = palette.refresh.bind(palette);
  palette.refresh = () => {
    refresh();
    if (palette.filter) return;
    const words = palette.input.value.toLowerCase().split(/\s+/).filter(Boolean);
    const hits = list().filter((w) => {
      const text = `${w.title ?? ""} ${w.name} subgraph`.toLowerCase();
      return words.every((word) => text.includes(word));
    }).map((w) => ({ id: INSTANCE, title: w.title ?? w.name, description: "saved subgraph",
      category: "subgraphs", savedSubgraph: w.name }));
    if (!hits.length) return;
    const old = palette.results.length ? [...palette.list.children] : [];
    palette.results.unshift(...hits);
    const lis = hits.map((s) => {
      const li = document.createElement("li");
      li.append(...[["t", `⧉ ${s.title}`], ["d", s.description], ["c", s.category]].map(([cls, text]) => (
        Object.assign(document.createElement("span"), { className: cls, textContent: text }))));
      li.dataset.subgraph = s.savedSubgraph;
      li.title = `saved subgraph "${s.savedSubgraph}"`;
      return li;
    });
    palette.list.replaceChildren(...lis, ...old);
    [...palette.list.children].forEach((li, i) => { li.dataset.index = String(i); });
    palette.highlight();
  };
  const onPick = palette.onPick;
  palette.onPick = (schema, pos, filter) => (schema.savedSubgraph ? insert(schema, pos) : onPick(schema, pos, filter));
}
