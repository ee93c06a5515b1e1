// Sweeps on the canvas: right-click a widget › "Sweep this value…" writes the workflow's
// "sweeps" (a list or a range per input, product or zip for the whole workflow), a "⟳ N"
// badge beside each swept widget, "Remove sweep", and the Queue button shows the run count.
// The sweep lives on the graph (`graph.loomSweeps`) and goes in and out with the workflow
// (workflow.js calls sweepsOf / sweepKeys), so it is saved, undone and redone with it.

import { LiteGraph } from "/vendor/litegraph/litegraph.es.js";
import { SHORTCUTS } from "./shortcuts.js";
import { floatPanel } from "./ui.js";

const MODES = ["product", "zip"];
const NUMERIC = new Set(["int", "float", "seed"]);

SHORTCUTS.push(["Sweeps", [
  ["Right-click a widget", "Sweep this value… / Remove sweep"],
  ["Enter (in the sweep dialog)", "apply the sweep"],
]]);

/** The sweep a workflow document carries, as {mode, axes} (axes may be empty). */
export function sweepsOf(wf) {
  const raw = wf?.sweeps;
  let mode = typeof wf?.sweep_mode === "string" ? wf.sweep_mode : "product";
  let axes = raw;
  if (raw && typeof raw === "object" && !Array.isArray(raw)) {
    mode = typeof raw.mode === "string" ? raw.mode : mode;
    axes = raw.axes;
  }
  if (raw != null && !Array.isArray(axes)) return { mode, axes: [], raw: structuredClone(raw) }; // kept for the server to explain
  return { mode, axes: Array.isArray(axes) ? structuredClone(axes) : [] };
}

/** The top-level keys that write a sweep back into a workflow document ({} when none). */
export function sweepKeys(sweeps) {
  if (sweeps?.raw !== undefined) return { sweeps: structuredClone(sweeps.raw), sweep_mode: sweeps.mode };
  if (!sweeps?.axes?.length) return {};
  return { sweeps: structuredClone(sweeps.axes), sweep_mode: sweeps.mode };
}

/** How many values an axis gives (a list, or a range whose stop is included when a step lands on it). */
export function axisCount(values) {
  if (Array.isArray(values)) return values.length;
  if (!values || typeof values !== "object") return 0;
  const { start, stop, step = 1 } = values;
  if (![start, stop, step].every(Number.isFinite) || step === 0 || (stop - start) * step < 0) return 0;
  return Math.floor((stop - start) / step + 1e-9) + 1;
}

/** The values of an axis spelled out (ranges as the server expands them). */
export function axisValues(values) {
  if (Array.isArray(values)) return values;
  const n = axisCount(values);
  const { start, step = 1 } = values ?? {};
  const ints = [values?.start, values?.stop, step].every(Number.isInteger);
  return Array.from({ length: n }, (_, i) => (ints ? start + i * step : Number((start + i * step).toPrecision(12))));
}

/** How many runs a sweep makes (0 without axes). */
export function sweepCount(sweeps) {
  const sizes = (sweeps?.axes ?? []).map((a) => axisCount(a.values));
  if (!sizes.length) return 0;
  return sweeps.mode === "zip" ? Math.min(...sizes) : sizes.reduce((a, b) => a * b, 1);
}

const axisOf = (graph, node, input) => graph.loomSweeps?.axes.find((a) => String(a.node) === String(node.id)
  && a.input === input);

/** "3, 5, 7" or "1..4" or "0.5..2 step 0.5": an axis's values in a few characters. */
export function describeValues(values) {
  if (Array.isArray(values)) return values.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ");
  const { start, stop, step = 1 } = values ?? {};
  return step === 1 ? `${start}..${stop}` : `${start}..${stop} step ${step}`;
}

/** Problems of a sweep (422) as Problems-tab entries that name the cell and its values. */
export function cellProblems(problems) {
  return problems.map((p) => {
    if (p.cell == null) return p;
    const vals = Object.entries(p.values ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ");
    const more = p.cells > 1 ? ` (and ${p.cells - 1} more cell(s))` : "";
    const value = p.value !== undefined && p.value !== null ? ` [value ${JSON.stringify(p.value)}]` : "";
    return { ...p, message: `cell ${p.cell} (${vals}): ${p.message}${value}${more}` };
  });
}

// --- parsing what the dialog holds ------------------------------------------------------------
function parseNumber(text, inp, what) {
  const v = Number(String(text).trim());
  if (String(text).trim() === "" || !Number.isFinite(v)) throw new Error(`${what}: ${JSON.stringify(text)} is not a number`);
  if (inp.type !== "float" && !Number.isInteger(v)) throw new Error(`${what}: ${v} is not a whole number (${inp.name} is an integer)`);
  return v;
}

/** The axis values the dialog's fields describe, or an Error naming what is wrong. */
export function parseAxisValues(inp, { kind, list, start, stop, step, ticked }) {
  if (kind === "ticks") {
    if (!ticked.length) throw new Error("tick at least one value");
    return ticked;
  }
  if (kind === "range") {
    const spec = { start: parseNumber(start, inp, "start"), stop: parseNumber(stop, inp, "stop"),
      step: parseNumber(step || "1", inp, "step") };
    if (spec.step === 0) throw new Error("step must not be 0");
    if ((spec.stop - spec.start) * spec.step < 0) throw new Error(`a step of ${spec.step} never gets from ${spec.start} to ${spec.stop}`);
    return spec;
  }
  const items = NUMERIC.has(inp.type) ? String(list).split(",") : String(list).split("\n");
  const kept = items.map((s) => (NUMERIC.has(inp.type) ? s.trim() : s)).filter((s) => s.trim() !== "");
  if (!kept.length) throw new Error("give at least one value");
  return NUMERIC.has(inp.type) ? kept.map((s, i) => parseNumber(s, inp, `value ${i + 1}`)) : kept;
}

// --- the dialog ------------------------------------------------------------------------------
function field(labelText, el) {
  const label = document.createElement("label");
  label.className = "sweep-field";
  label.append(labelText, el);
  return label;
}

function input(value, cls) {
  const el = document.createElement("input");
  el.type = "text";
  el.value = value ?? "";
  el.className = cls;
  el.spellcheck = false;
  return el;
}

/** Opens the sweep dialog for one widget of one node. */
function openDialog(app, node, widget) {
  document.querySelector("#sweep-dialog")?.remove();
  const graph = app.graph;
  const inp = node.loom.schema.inputs.find((i) => i.name === widget.loomInput);
  const old = axisOf(graph, node, inp.name);
  const panel = floatPanel("sweep-dialog", `Sweep ${node.title} › ${inp.label ?? inp.name}`, "float-panel sweep-dialog");
  const choices = inp.type === "bool" ? [true, false] : widget.type === "combo" ? [...widget.options.values] : null;
  const numeric = NUMERIC.has(inp.type);
  const oldList = Array.isArray(old?.values) ? old.values : null;
  const kindSel = document.createElement("select");
  kindSel.className = "sweep-kind";
  const kinds = choices ? [["ticks", "Tick values"]] : numeric ? [["list", "List"], ["range", "Range"]] : [["list", "List"]];
  for (const [v, t] of kinds) kindSel.add(new Option(t, v));
  kindSel.value = old && !oldList ? "range" : kinds[0][0];
  const listEl = numeric ? input(oldList?.join(", ") ?? String(widget.value), "sweep-list")
    : Object.assign(document.createElement("textarea"), { className: "sweep-list", rows: 4,
      value: oldList?.join("\n") ?? String(widget.value ?? "") });
  const r = !oldList && old ? old.values : { start: widget.value, stop: widget.value, step: widget.options?.step2 ?? 1 };
  const startEl = input(r.start, "sweep-start");
  const stopEl = input(r.stop, "sweep-stop");
  const stepEl = input(r.step ?? 1, "sweep-step");
  const ticks = document.createElement("div");
  ticks.className = "sweep-ticks";
  for (const c of choices ?? []) {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = oldList ? oldList.includes(c) : c === widget.value;
    box.dataset.value = JSON.stringify(c);
    ticks.append(field(box, document.createTextNode(` ${c}`)));
  }
  const listRow = field(numeric ? "Values (comma-separated)" : "Values (one per line)", listEl);
  const rangeRow = document.createElement("div");
  rangeRow.className = "sweep-range";
  rangeRow.append(field("Start", startEl), field("Stop", stopEl), field("Step", stepEl));
  const modeSel = document.createElement("select");
  modeSel.className = "sweep-mode";
  for (const m of MODES) modeSel.add(new Option(m === "product" ? "product (every combination)" : "zip (i-th with i-th)", m));
  modeSel.value = graph.loomSweeps?.mode ?? "product";
  const info = document.createElement("p");
  info.className = "note sweep-info";
  const error = document.createElement("p");
  error.className = "sweep-error";
  const read = () => parseAxisValues(inp, { kind: kindSel.value, list: listEl.value, start: startEl.value,
    stop: stopEl.value, step: stepEl.value,
    ticked: [...ticks.querySelectorAll("input:checked")].map((b) => JSON.parse(b.dataset.value)) });
  const refresh = () => {
    listRow.hidden = kindSel.value !== "list";
    rangeRow.hidden = kindSel.value !== "range";
    ticks.hidden = kindSel.value !== "ticks";
    try {
      const values = read();
      const others = (graph.loomSweeps?.axes ?? []).filter((a) => a !== old);
      const total = sweepCount({ mode: modeSel.value, axes: [...others, { values }] });
      info.textContent = `${axisCount(values)} value(s): ${describeValues(values).slice(0, 80)} · ${total} run(s) per queue`;
      error.textContent = "";
    } catch (err) {
      info.textContent = "";
      error.textContent = err.message;
    }
  };
  const apply = () => {
    let values;
    try {
      values = read();
    } catch (err) {
      error.textContent = err.message;
      return;
    }
    setAxis(app, node, inp.name, values, modeSel.value);
    panel.remove();
  };
  const buttons = document.createElement("div");
  buttons.className = "sweep-buttons";
  const ok = Object.assign(document.createElement("button"), { className: "primary sweep-ok", textContent: "Sweep" });
  ok.addEventListener("click", apply);
  const cancel = Object.assign(document.createElement("button"), { textContent: "Cancel" });
  cancel.addEventListener("click", () => panel.remove());
  buttons.append(ok, cancel);
  if (old) {
    const rm = Object.assign(document.createElement("button"), { className: "danger", textContent: "Remove sweep" });
    rm.addEventListener("click", () => {
      setAxis(app, node, inp.name, null);
      panel.remove();
    });
    buttons.append(rm);
  }
  panel.append(field("Values as ", kindSel), listRow, rangeRow, ticks, field("Combine axes: ", modeSel), info, error, buttons);
  panel.addEventListener("input", refresh);
  panel.addEventListener("change", refresh);
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !(e.target instanceof HTMLTextAreaElement)) {
      e.preventDefault();
      apply();
    } else if (e.key === "Escape") {
      panel.remove();
    }
    e.stopPropagation(); // keys typed here are not canvas shortcuts
  });
  document.body.append(panel);
  panel.hidden = false;
  refresh();
  (kindSel.value === "range" ? startEl : choices ? ticks.querySelector("input") : listEl)?.focus();
}

/** Sets (values) or removes (null) the sweep of one input; undoable. */
export function setAxis(app, node, input, values, mode) {
  const graph = app.graph;
  const sweeps = graph.loomSweeps ?? { mode: "product", axes: [] };
  delete sweeps.raw;
  const axes = sweeps.axes.filter((a) => !(String(a.node) === String(node.id) && a.input === input));
  if (values != null) {
    const at = sweeps.axes.findIndex((a) => String(a.node) === String(node.id) && a.input === input);
    const axis = { node: String(node.id), input, values };
    if (at >= 0) axes.splice(at, 0, axis);
    else axes.push(axis);
  }
  graph.loomSweeps = { mode: mode ?? sweeps.mode ?? "product", axes };
  app.canvas.setDirty(true, true);
  app.history.record();
  updateQueueLabel(app);
}

// --- menu, badge, queue label -----------------------------------------------------------------
const insideSubgraph = () => document.querySelector("#subgraph-crumbs")?.hidden === false;
const sweepable = (node, w) => w?.loomInput && node.loom?.schema && !node.loom.unknown
  && node.getSlotFromWidget?.(w)?.link == null;

function menuItems(app, node, widget) {
  if (!node.loom?.schema || node.loom.unknown || insideSubgraph()) return [];
  if (sweepable(node, widget)) {
    const items = [{ content: "Sweep this value…", callback: () => openDialog(app, node, widget) }];
    if (axisOf(app.graph, node, widget.loomInput)) {
      items.push({ content: "Remove sweep", callback: () => setAxis(app, node, widget.loomInput, null) });
    }
    return items;
  }
  const widgets = (node.widgets ?? []).filter((w) => sweepable(node, w));
  if (!widgets.length) return [];
  return [{ content: "Sweep an input", has_submenu: true, callback: (_v, _o, e, menu) => {
    new LiteGraph.ContextMenu(widgets.map((w) => ({ content: `${w.label ?? w.loomInput}${axisOf(app.graph, node, w.loomInput) ? " ⟳" : ""}`,
      callback: () => openDialog(app, node, w) })), { event: e, parentMenu: menu });
  } }];
}

function drawBadges(app, node, ctx) {
  const axes = app.graph.loomSweeps?.axes;
  if (!axes?.length || node.flags?.collapsed) return;
  for (const w of node.widgets ?? []) {
    const axis = w.loomInput && axisOf(app.graph, node, w.loomInput);
    if (!axis || w.y == null) continue;
    const text = `⟳ ${axisCount(axis.values)}`;
    ctx.save();
    ctx.font = "bold 11px system-ui, sans-serif";
    const width = ctx.measureText(text).width + 10;
    const x = node.size[0] + 4;
    const y = w.y + 2;
    ctx.fillStyle = "#c9802e";
    ctx.beginPath();
    if (ctx.roundRect) ctx.roundRect(x, y, width, 16, 8);
    else ctx.rect(x, y, width, 16);
    ctx.fill();
    ctx.fillStyle = "#fff";
    ctx.textBaseline = "middle";
    ctx.fillText(text, x + 5, y + 8.5);
    ctx.restore();
  }
}

let lastLabel = "";
/** "Queue 18 ▶" while the workflow has a sweep (runs per press, × the batch count). */
export function updateQueueLabel(app) {
  const btn = document.querySelector("#btn-queue");
  const cells = sweepCount(app.graph?.loomSweeps);
  const batch = Math.max(1, Math.min(100, Number(document.querySelector("#batch")?.value) || 1));
  const label = cells ? `Queue ${cells * batch} ▶` : "Queue ▶";
  if (!btn || label === lastLabel) return;
  lastLabel = label;
  btn.textContent = label;
  btn.title = cells ? `Queue the sweep: ${cells} run(s)${batch > 1 ? ` × ${batch}` : ""} (Ctrl+Enter)` : "Queue the workflow (Ctrl+Enter)";
}

/** Installs the widget menu items, the badges and the queue label. */
export function installSweeps(app) {
  const canvas = app.canvas;
  let menuWidget = null;
  const processMenu = canvas.processContextMenu;
  canvas.processContextMenu = function sweepContextMenu(node, event) {
    menuWidget = node && event ? node.getWidgetOnPos?.(event.canvasX, event.canvasY, true) ?? null : null;
    return processMenu.call(this, node, event);
  };
  const nodeMenu = canvas.getNodeMenuOptions.bind(canvas);
  canvas.getNodeMenuOptions = (node) => {
    const items = nodeMenu(node);
    const extra = menuItems(app, node, menuWidget);
    menuWidget = null;
    return extra.length ? [...extra, null, ...items] : items;
  };
  const drawNode = canvas.drawNode;
  canvas.drawNode = function drawSweepNode(node, ctx) {
    drawNode.call(this, node, ctx);
    drawBadges(app, node, ctx);
  };
  setInterval(() => updateQueueLabel(app), 300);
  document.querySelector("#batch")?.addEventListener("input", () => updateQueueLabel(app));
  app.sweeps = { sweepsOf, sweepKeys, sweepCount, setAxis: (node, input, values, mode) => setAxis(app, node, input, values, mode),
    open: (node, name) => openDialog(app, node, node.widgets.find((w) => w.loomInput === name)) };
}
