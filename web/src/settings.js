// The settings panel (Ctrl+, or ⚙ in the top bar): link style, snap to grid, confirm on
// delete, theme, default zoom, minimap. Kept in the browser's local storage (`loom.settings`)
// and on the server (`GET/PUT /api/settings` → <home>/user/settings.json); at page load the
// copy changed last wins.

import { LiteGraph } from "/vendor/litegraph/litegraph.es.js";
import { api } from "./api.js";
import { floatPanel, toast } from "./ui.js";

const KEY = "loom.settings";
export const DEFAULTS = { linkStyle: "spline", snapToGrid: false, confirmDelete: false,
  theme: "dark", defaultZoom: 0, minimap: true };
/** Link style → litegraph's LinkRenderType. */
const LINK_MODES = { spline: 2, linear: 1, straight: 0 };
const THEMES = { dark: { background: "#1b1d21" }, light: { background: "#e6e9ed" } };
/** Default zoom choices: 0 = automatic (fit, never below the readable zoom). */
const ZOOMS = [[0, "automatic (fit, readable)"], [0.5, "50 %"], [0.75, "75 %"], [1, "100 %"],
  [1.25, "125 %"], [1.5, "150 %"]];
const PUSH_DELAY_MS = 300;

const listeners = [];

/** Calls `fn(settings)` after every change (and once the server copy is adopted). */
export function onSettingsChange(fn) {
  listeners.push(fn);
}

function readStored() {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? "null");
    return v && typeof v === "object" && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

function store(settings, updated) {
  try {
    localStorage.setItem(KEY, JSON.stringify({ ...settings, updated }));
  } catch {
    // storage disabled: the settings last until the page is closed
  }
}

/** Known keys only, each valid (else its default). */
function normalise(raw) {
  const s = { ...DEFAULTS };
  if (raw.linkStyle in LINK_MODES) s.linkStyle = raw.linkStyle;
  if (raw.theme in THEMES) s.theme = raw.theme;
  for (const k of ["snapToGrid", "confirmDelete", "minimap"]) if (typeof raw[k] === "boolean") s[k] = raw[k];
  const z = Number(raw.defaultZoom);
  if (Number.isFinite(z) && (z === 0 || (z >= 0.1 && z <= 4))) s.defaultZoom = z;
  return s;
}

/** The settings kept in this browser (defaults for what is missing or invalid). */
export function loadSettings() {
  return normalise(readStored());
}

function storedUpdated() {
  const t = Number(readStored().updated);
  return Number.isFinite(t) ? t : 0;
}

function apply(app) {
  const s = app.settings;
  app.canvas.links_render_mode = LINK_MODES[s.linkStyle];
  LiteGraph.alwaysSnapToGrid = s.snapToGrid;
  document.documentElement.dataset.theme = s.theme;
  app.canvas.clear_background_color = THEMES[s.theme].background;
  app.canvas.setDirty(true, true);
  for (const fn of listeners) fn(s);
}

/** The node bounds of the graph (outer boxes, titles included). */
function graphBounds(graph) {
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const n of graph.nodes) {
    x0 = Math.min(x0, n.pos[0]);
    y0 = Math.min(y0, n.pos[1] - th);
    x1 = Math.max(x1, n.pos[0] + n.size[0]);
    y1 = Math.max(y1, n.pos[1] + n.size[1]);
  }
  return [x0, y0, x1, y1];
}

/** Shows a freshly opened workflow at the default zoom: centred if it fits, else from its top-left. */
export function applyDefaultZoom(app) {
  const z = app.settings.defaultZoom;
  if (!z || !app.graph.nodes.length) return;
  const el = app.canvas.canvas;
  const [w, h] = [el.clientWidth || 800, el.clientHeight || 600];
  const [x0, y0, x1, y1] = graphBounds(app.graph);
  const margin = 40;
  const place = (size, lo, hi) => (size - 2 * margin >= (hi - lo) * z
    ? (size / z - (hi - lo)) / 2 - lo
    : margin / z - lo);
  app.canvas.ds.scale = z;
  app.canvas.ds.offset = [place(w, x0, x1), place(h, y0, y1)];
  app.canvas.setDirty(true, true);
}

function row(label, control) {
  const el = document.createElement("label");
  el.className = "setting";
  const text = document.createElement("span");
  text.textContent = label;
  el.append(text, control);
  return el;
}

function select(id, options) {
  const el = document.createElement("select");
  el.id = id;
  for (const [value, label] of options) el.add(new Option(label, String(value)));
  return el;
}

function checkbox(id) {
  const el = document.createElement("input");
  el.type = "checkbox";
  el.id = id;
  return el;
}

/** Sends the settings to the server a moment after the last change. */
class ServerCopy {
  constructor(app) {
    this.app = app;
    this.timer = null;
    this.warned = false;
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.push(), PUSH_DELAY_MS);
  }

  async push() {
    clearTimeout(this.timer);
    const { app } = this;
    const settings = Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, app.settings[k]]));
    try {
      await api("/api/settings", { method: "PUT", json: { settings, updated: app.settingsUpdated } });
      this.warned = false;
    } catch (err) {
      if (!this.warned) toast(`Settings are kept in this browser only: ${err.message}`, "warn");
      this.warned = true;
    }
  }

  /** At load: adopts the server's copy when it is newer, else sends ours when it is newer. */
  async sync(onAdopt) {
    let remote;
    try {
      remote = await api("/api/settings");
    } catch {
      return; // an older server without the route, or offline: this browser's copy stands
    }
    const theirs = Number(remote?.updated) || 0;
    if (theirs > this.app.settingsUpdated) {
      this.app.settings = normalise(remote.settings ?? {});
      this.app.settingsUpdated = theirs;
      store(this.app.settings, theirs);
      onAdopt();
    } else if (this.app.settingsUpdated > theirs) {
      await this.push();
    }
  }
}

/** Takes new values (from the panel or a shortcut): stored here, applied, sent to the server. */
function change(app, server, values) {
  app.settings = normalise({ ...app.settings, ...values });
  app.settingsUpdated = Date.now() / 1000;
  store(app.settings, app.settingsUpdated);
  apply(app);
  server.schedule();
}

function buildPanel(app, server) {
  const panel = floatPanel("settings", "Settings");
  const style = select("set-link-style", Object.keys(LINK_MODES).map((k) => [k, k]));
  const theme = select("set-theme", [["dark", "dark"], ["light", "light"]]);
  const zoom = select("set-default-zoom", ZOOMS);
  const snap = checkbox("set-snap");
  const confirmDel = checkbox("set-confirm-delete");
  const minimap = checkbox("set-minimap");
  const show = () => {
    const s = app.settings;
    style.value = s.linkStyle;
    theme.value = s.theme;
    zoom.value = String(s.defaultZoom);
    snap.checked = s.snapToGrid;
    confirmDel.checked = s.confirmDelete;
    minimap.checked = s.minimap;
  };
  const changed = () => change(app, server, { linkStyle: style.value, theme: theme.value,
    defaultZoom: Number(zoom.value), snapToGrid: snap.checked, confirmDelete: confirmDel.checked,
    minimap: minimap.checked });
  for (const el of [style, theme, zoom, snap, confirmDel, minimap]) el.addEventListener("change", changed);
  show();
  const note = document.createElement("p");
  note.className = "note";
  note.textContent = "Kept in this browser and on the server (user/settings.json).";
  panel.append(row("Theme", theme), row("Link style", style), row("Default zoom (opening a workflow)", zoom),
    row("Snap to grid", snap), row("Confirm before deleting nodes", confirmDel), row("Minimap", minimap), note);
  document.body.append(panel);
  return { panel, show };
}

/** Asks before Delete/Backspace removes selected nodes, when the setting is on. */
function installConfirmDelete(app, isTyping) {
  document.addEventListener("keydown", (e) => {
    if (!app.settings.confirmDelete || (e.key !== "Delete" && e.key !== "Backspace")) return;
    if (isTyping(e) || e.target !== app.canvas.canvas) return;
    const count = Object.keys(app.canvas.selected_nodes ?? {}).length;
    if (!count) return;
    if (!window.confirm(`Delete ${count} node${count === 1 ? "" : "s"}?`)) {
      e.preventDefault();
      e.stopImmediatePropagation(); // litegraph's own key handler never sees it
    }
  }, true);
}

/** Opening a workflow (not undo, not a restored view) shows it at the default zoom. */
function wrapLoad(app) {
  const load = app.load;
  app.load = (wf, opts = {}) => {
    const out = load(wf, opts);
    if (!opts.view && opts.fit !== false && !opts.keepHistory) applyDefaultZoom(app);
    return out;
  };
}

/**
 * Loads and applies the settings, then checks the server's copy (`app.settingsSync` is that
 * promise); returns a function that opens or closes the panel.
 */
export function installSettings(app, isTyping) {
  app.settings = loadSettings();
  app.settingsUpdated = storedUpdated();
  apply(app);
  const server = new ServerCopy(app);
  const { panel, show } = buildPanel(app, server);
  installConfirmDelete(app, isTyping);
  wrapLoad(app);
  /** Changes one setting (e.g. Alt+M: the minimap), as the panel would. */
  app.setSetting = (key, value) => {
    change(app, server, { [key]: value });
    show();
  };
  app.settingsSync = server.sync(() => {
    show();
    apply(app);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !panel.hidden) panel.hidden = true;
  });
  return () => {
    panel.hidden = !panel.hidden;
    if (!panel.hidden) panel.querySelector("select").focus();
  };
}
