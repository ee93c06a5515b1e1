// The settings panel (Ctrl+, or ⚙ in the top bar): link style, snap to grid, confirm on
// delete. Kept in the browser's local storage.

import { LiteGraph } from "/vendor/litegraph/litegraph.es.js";
import { floatPanel } from "./ui.js";

const KEY = "loom.settings";
const DEFAULTS = { linkStyle: "spline", snapToGrid: false, confirmDelete: false };
/** Link style → litegraph's LinkRenderType. */
const LINK_MODES = { spline: 2, linear: 1, straight: 0 };

function readStored() {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? "null");
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

function store(settings) {
  try {
    localStorage.setItem(KEY, JSON.stringify(settings));
  } catch {
    // storage disabled: the settings last until the page is closed
  }
}

/** The settings (defaults for what is missing or invalid). */
export function loadSettings() {
  const s = { ...DEFAULTS, ...readStored() };
  if (!(s.linkStyle in LINK_MODES)) s.linkStyle = DEFAULTS.linkStyle;
  s.snapToGrid = Boolean(s.snapToGrid);
  s.confirmDelete = Boolean(s.confirmDelete);
  return s;
}

function apply(app) {
  const s = app.settings;
  app.canvas.links_render_mode = LINK_MODES[s.linkStyle];
  LiteGraph.alwaysSnapToGrid = s.snapToGrid;
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

function buildPanel(app) {
  const panel = floatPanel("settings", "Settings");

  const style = document.createElement("select");
  style.id = "set-link-style";
  for (const name of Object.keys(LINK_MODES)) style.add(new Option(name, name));
  style.value = app.settings.linkStyle;
  const snap = document.createElement("input");
  snap.type = "checkbox";
  snap.id = "set-snap";
  snap.checked = app.settings.snapToGrid;
  const confirmDel = document.createElement("input");
  confirmDel.type = "checkbox";
  confirmDel.id = "set-confirm-delete";
  confirmDel.checked = app.settings.confirmDelete;
  const changed = () => {
    app.settings = { linkStyle: style.value, snapToGrid: snap.checked, confirmDelete: confirmDel.checked };
    store(app.settings);
    apply(app);
  };
  for (const el of [style, snap, confirmDel]) el.addEventListener("change", changed);
  const note = document.createElement("p");
  note.className = "note";
  note.textContent = "Kept in this browser.";
  panel.append(row("Link style", style), row("Snap to grid", snap),
    row("Confirm before deleting nodes", confirmDel), note);
  document.body.append(panel);
  return panel;
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

/** Loads and applies the settings; returns a function that opens or closes the panel. */
export function installSettings(app, isTyping) {
  app.settings = loadSettings();
  apply(app);
  const panel = buildPanel(app);
  installConfirmDelete(app, isTyping);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !panel.hidden) panel.hidden = true;
  });
  return () => {
    panel.hidden = !panel.hidden;
    if (!panel.hidden) panel.querySelector("select").focus();
  };
}
