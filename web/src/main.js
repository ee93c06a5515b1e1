// Boot: load node schemas, build the canvas, restore or fetch a workflow, wire the UI.

import { LiteGraph, LGraphCanvas } from "/vendor/litegraph/litegraph.es.js";
import { api, EventSocket } from "./api.js";
import { createCanvas, explainRefusedLinks } from "./canvas.js";
import { applyTypeColours } from "./colors.js";
import { initFiles, loadExamplesList, openDefault } from "./files.js";
import { History, storedView, storedWorkflow, storeView } from "./history.js";
import { HistoryPanel } from "./history_panel.js";
import { growNode, tidyAfterLoad } from "./layout.js";
import { installMaskPainter } from "./mask_painter.js";
import { installModeDrawing } from "./modes.js";
import { allTypes, refreshSlotTypes, registerSchemas, schemas } from "./nodes.js";
import { Palette } from "./palette.js";
import { clearInputProblems, clearProblems } from "./problems.js";
import { Runs } from "./runs.js";
import { installSettings } from "./settings.js";
import { installShortcuts, isTyping } from "./shortcuts.js";
import { installTitleEditor } from "./titles.js";
import { emptyGallery, initLightbox, initTabs, toast } from "./ui.js";
import { widgetHooks } from "./widgets.js";
import { exportWorkflow, importWorkflow } from "./workflow.js";
import { fitView as fitWorkflow } from "./view.js";
import { installGroupTitles } from "./groups.js";
import { installLibrary } from "./library.js";
import { installMinimap } from "./minimap.js";
import { installTabs } from "./tabs.js";
import { installToolbox, keepSelection } from "./toolbox.js";
import { installColourMenu } from "./node_colours.js";
import { installCanvasComparer, installGalleryCompare } from "./comparer.js";
import { installSubgraphs } from "./subgraphs.js";
import { makeQueue } from "./queueing.js";
import { installSweeps } from "./sweeps.js";
import { installGridView } from "./grid_view.js";
import { installRatings } from "./ratings.js";

const $ = (sel) => document.querySelector(sel);

/** Everything the modules share. Exposed as `window.loom` for tests and debugging. */
const app = {
  graph: null,
  canvas: null,
  meta: {},
  history: null,
  runs: null,
  historyPanel: null,
  palette: null,
  socket: null,
  ready: false,
  exportWorkflow: () => exportWorkflow(app.graph, app.meta),
  load: (wf, opts) => loadWorkflow(wf, opts),
  queue: (opts) => queue(opts),
  nodeSchemas: schemas,
  nodeById: (id) => app.graph.getNodeById(/^[1-9]\d{0,8}$/.test(String(id)) ? Number(id) : id),
};
window.loom = app;

/** Replaces the canvas contents with a workflow. */
function loadWorkflow(wf, { fit = true, keepHistory = false, view = null } = {}) {
  if (!keepHistory && app.history.stack.length) app.history.record(); // keep unrecorded edits undoable
  const shown = keepHistory ? displayState() : null;
  const { warnings, meta } = importWorkflow(app.graph, wf);
  if (!keepHistory) tidyAfterLoad(app); // nodes taller than the file says: push them apart
  app.meta = meta;
  setTitle(meta.title);
  if (shown) restoreDisplayState(shown);
  else clearProblems(app);
  if (view) {
    app.canvas.ds.offset = [...view.offset];
    app.canvas.ds.scale = view.scale;
  } else if (fit) {
    fitWorkflow(app, { readable: true });
  }
  app.canvas.setDirty(true, true);
  if (!keepHistory) {
    // opening a workflow is itself undoable: Ctrl+Z brings the previous one back
    app.history.record();
    app.history.markSaved();
  }
  // the first draw may grow nodes whose widgets did not fit: not an edit
  requestAnimationFrame(() => requestAnimationFrame(() => {
    if (!keepHistory) tidyAfterLoad(app);
    app.history.absorb();
  }));
  for (const w of warnings.slice(0, 3)) toast(w, "warn");
  const missing = app.graph.nodes.filter((n) => n.loom?.unknown);
  if (missing.length) {
    toast(`${missing.length} node(s) of unknown type: ${[...new Set(missing.map((n) => n.type))].join(", ")}`, "error");
  }
  return warnings;
}

const SHOWN_KEYS = ["status", "images", "text", "values", "error", "problems"];

/** What nodes show from runs (kept across undo/redo, which rebuild the graph). */
function displayState() {
  const out = new Map();
  for (const n of app.graph.nodes) {
    if (!n.loom || n.loom.unknown) continue;
    out.set(String(n.id), { type: n.type, hasErrors: n.has_errors,
      state: Object.fromEntries(SHOWN_KEYS.map((k) => [k, n.loom[k]])) });
  }
  return out;
}

function restoreDisplayState(shown) {
  for (const n of app.graph.nodes) {
    const old = shown.get(String(n.id));
    if (!old || old.type !== n.type || !n.loom) continue;
    Object.assign(n.loom, old.state);
    n.has_errors = old.hasErrors;
  }
}

function setTitle(title) {
  $("#wf-title").textContent = title || "Untitled workflow";
  document.title = title ? `${title} · Loom` : "Loom";
}

/** Zooms and pans so every node is visible (Fit, ".", the menu). */
const fitView = () => fitWorkflow(app);
app.fitView = fitView;

// --- queueing (queueing.js) ----------------------------------------------------------
const queue = makeQueue(app);

// --- adding nodes -------------------------------------------------------------------
function addNode(schema, pos, filter) {
  const node = LiteGraph.createNode(schema.id);
  if (!node) return null;
  node.pos = [pos[0], pos[1] + LiteGraph.NODE_TITLE_HEIGHT]; // the title bar lands where you clicked
  app.graph.add(node);
  if (filter?.node) {
    const from = filter.node;
    if (filter.wantsInput) {
      const idx = node.inputs.findIndex((i) => LiteGraph.isValidConnection(filter.type, i.type) && i.link == null);
      if (idx >= 0) from.connect(filter.slot, node, idx);
    } else {
      const idx = node.outputs.findIndex((o) => LiteGraph.isValidConnection(o.type, filter.type));
      if (idx >= 0) node.connect(idx, from, filter.slot);
    }
  }
  app.canvas.selectNode(node);
  app.canvas.setDirty(true, true);
  app.history.record();
  return node;
}
app.addNode = (type, pos = [100, 100]) => addNode(schemas.get(type), pos, null);

function openPalette(e, filter = null) {
  const x = e?.clientX ?? innerWidth / 2 - 200;
  const y = e?.clientY ?? innerHeight / 3;
  const rect = app.canvas.canvas.getBoundingClientRect();
  const pos = app.canvas.ds.convertCanvasToOffset([x - rect.left, y - rect.top]);
  app.palette.open(x, y, pos, filter);
}

function installPalette() {
  app.palette = new Palette($("#palette"), addNode);
  app.palette.onClose = () => app.canvas.canvas.focus({ preventScroll: true });
  app.canvas.showSearchBox = (e) => {
    openPalette(e);
    return $("#palette");
  };
  app.canvas.canvas.addEventListener("litegraph:canvas", (e) => {
    if (e.detail?.subType !== "empty-release") return;
    const link = e.detail.linkReleaseContext?.links?.[0];
    const event = e.detail.originalEvent;
    if (!link?.node) return;
    const fromOutput = link.output != null || (link.input == null && link.node.outputs?.[link.slot]);
    const slot = fromOutput ? link.node.outputs[link.slot] : link.node.inputs[link.slot];
    if (!slot) return;
    openPalette(event, { node: link.node, slot: link.slot, type: slot.type, wantsInput: Boolean(fromOutput) });
  });
}

// --- change tracking ----------------------------------------------------------------
function installChangeTracking() {
  const el = app.canvas.canvas;
  el.addEventListener("pointerup", () => app.history.schedule(150));
  document.addEventListener("keyup", () => app.history.schedule(300));
  let version = app.graph._version;
  setInterval(() => {
    if (app.graph._version !== version && !app.canvas.pointer.isDown) {
      version = app.graph._version;
      app.history.schedule(50);
    }
    storeView(app.canvas.ds);
  }, 700);
  widgetHooks.changed = (node, name) => {
    clearInputProblems(node, name);
    app.canvas.setDirty(true, false);
    app.history.schedule(300);
  };
  widgetHooks.toast = toast;
  widgetHooks.grow = (node) => growNode(app, node, { undoable: false });
  app.graph.onConnectionChange = (node) => {
    if (node?.loom) node.loom.problems = node.loom.problems.filter((p) => p.code !== "missing_input");
    app.history.schedule(100);
  };
}

function updateButtons() {
  $("#empty-hint").hidden = app.graph.nodes.length > 0;
  $("#btn-undo").disabled = !app.history.canUndo;
  $("#btn-redo").disabled = !app.history.canRedo;
  $("#dirty-dot").hidden = !app.history.dirty;
}

// --- boot ---------------------------------------------------------------------------
async function loadSchemas() {
  const list = await api("/api/nodes");
  const items = Array.isArray(list) ? list : list?.nodes ?? [];
  registerSchemas(items);
  applyTypeColours(LGraphCanvas, app.canvas, allTypes());
  return items;
}

/** Re-reads /api/nodes: new plugins, and fresh model and upload lists in every combo. */
async function refreshNodeDefs() {
  try {
    await loadSchemas();
  } catch (err) {
    toast(`Could not reload the node list: ${err.message}`, "error");
    return;
  }
  for (const node of app.graph.nodes) {
    const schema = schemas.get(node.type);
    if (!schema || !node.loom || node.loom.unknown) continue;
    node.loom.schema = schema;
    refreshSlotTypes(node); // a new plugin may add output types an input accepts
    for (const w of node.widgets ?? []) {
      const inp = schema.inputs.find((i) => i.name === w.loomInput);
      if (w.type !== "combo" || !inp?.choices) continue;
      const values = [...inp.choices];
      if (w.value !== "" && w.value != null && !values.includes(w.value)) values.push(w.value);
      w.options.values = values;
    }
  }
  app.canvas.setDirty(true, true);
  toast(`Node list reloaded: ${schemas.size} node types`, "ok");
}
app.refreshNodeDefs = refreshNodeDefs;

let serverInfo = "";

function setConnected(ok) {
  $("#conn").classList.toggle("ok", ok);
  $("#conn").title = ok ? `Connected to the server${serverInfo}` : "Not connected — retrying…";
  if (ok && app.ready) app.runs.refresh();
}

/** Reports plugins that failed to load, and shows the device in the connection tooltip. */
async function checkSystem() {
  try {
    const sys = await api("/api/system");
    if (typeof sys?.device === "string") serverInfo = ` · ${sys.device}${sys.dtype ? ` ${sys.dtype}` : ""}`;
    $("#conn").title = `Connected to the server${serverInfo}`;
    const errors = Array.isArray(sys?.plugin_errors) ? sys.plugin_errors : [];
    if (errors.length) {
      const names = errors.map((e) => `${e.plugin}: ${e.error}`).join("\n");
      toast(`${errors.length} node plugin(s) failed to load:\n${names}`, "warn", 12000);
    }
  } catch {
    // /api/system is informative only
  }
}

function addTopbarButtons(toggleSettings, toggleHelp) {
  const group = $("#btn-fit").parentElement;
  for (const [id, text, title, fn] of [["btn-settings", "⚙", "Settings (Ctrl+,)", toggleSettings],
    ["btn-help", "?", "Keyboard shortcuts (?)", toggleHelp]]) {
    const b = document.createElement("button");
    b.id = id;
    b.textContent = text;
    b.title = title;
    b.addEventListener("click", fn);
    group.append(b);
  }
}

async function boot() {
  initTabs();
  initLightbox();
  emptyGallery();
  const { graph, canvas } = createCanvas($("#graph-canvas"), $("#dom-widgets"));
  app.graph = graph;
  app.canvas = canvas;
  app.history = new History(() => JSON.stringify(exportWorkflow(app.graph, app.meta)),
    (wf) => keepSelection(app, () => loadWorkflow(wf, { fit: false, keepHistory: true,
      view: { offset: [...canvas.ds.offset], scale: canvas.ds.scale } })),
    updateButtons);
  app.runs = new Runs(app);
  app.historyPanel = new HistoryPanel(app);
  for (let attempt = 0; ; attempt += 1) {
    try {
      await loadSchemas();
      break;
    } catch (err) {
      if (attempt === 0) toast(`Cannot load the node list: ${err.message} — retrying…`, "error", 8000);
      await new Promise((r) => setTimeout(r, Math.min(5000, 1000 * (attempt + 1))));
    }
  }
  installPalette();
  installModeDrawing(canvas);
  installGroupTitles();
  const toggleSettings = installSettings(app, isTyping);
  const toggleHelp = installShortcuts(app, { queue, fitView, openPalette, toggleSettings });
  installTitleEditor(app);
  installMaskPainter(app);
  installMinimap(app, $("#canvas-wrap"), isTyping);
  installLibrary(app, isTyping);
  installToolbox(app);
  installColourMenu(app);
  installCanvasComparer(canvas);
  installGalleryCompare();
  installSubgraphs(app, () => exportWorkflow(app.graph, app.meta)); // before tabs copy app.history
  installSweeps(app);
  installGridView(app);
  installRatings(app);
  addTopbarButtons(toggleSettings, toggleHelp);
  explainRefusedLinks(canvas, (msg) => toast(msg, "warn"));
  const stored = storedWorkflow();
  let loaded = false;
  if (stored && !new URLSearchParams(location.search).has("fresh")) {
    try {
      loadWorkflow(stored, { fit: !storedView(), view: storedView() });
      loaded = true;
    } catch (err) {
      toast(`The workflow kept in this browser could not be restored: ${err.message}`, "warn");
    }
  }
  if (!loaded) await openDefault(app);
  installChangeTracking();
  installTabs(app, isTyping); // after the first workflow is on the canvas
  initFiles(app);
  loadExamplesList(app);
  $("#btn-queue").addEventListener("click", () => queue());
  $("#btn-interrupt").addEventListener("click", () => app.runs.interrupt());
  $("#btn-undo").addEventListener("click", () => app.history.undo());
  $("#btn-redo").addEventListener("click", () => app.history.redo());
  $("#btn-fit").addEventListener("click", () => fitView());
  app.socket = new EventSocket((ev) => {
    app.runs.handle(ev);
    app.historyPanel.handle(ev);
  }, setConnected);
  app.socket.connect();
  await app.runs.refresh();
  app.runs.render();
  await app.historyPanel.reload(); // past runs and their images, kept by the server
  checkSystem();
  updateButtons();
  app.ready = true;
  document.body.dataset.ready = "1";
}

boot().catch((err) => {
  toast(`The page failed to start: ${err.message}`, "error", 30000);
  throw err;
});
