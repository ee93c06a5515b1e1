// Keyboard shortcuts, and the help panel that lists them ("?" or the ? button).

import { groupSelection } from "./canvas.js";
import { BYPASS, MUTE, toggleMode } from "./modes.js";
import { floatPanel } from "./ui.js";

/** Every shortcut, for the help panel (docs/canvas.md lists the same). */
export const SHORTCUTS = [
  ["Run", [
    ["Ctrl+Enter", "queue the workflow (× N queues N runs)"],
    ["Ctrl+Shift+Enter", "queue it first, before the runs already waiting"],
    ["Ctrl+Alt+Enter", "interrupt the running run"],
  ]],
  ["Nodes", [
    ["Double-click canvas / Tab", "add a node (search palette)"],
    ["Double-click a title", "rename the node"],
    ["Ctrl+B", "bypass the selected nodes (again: active)"],
    ["Ctrl+M", "mute the selected nodes (again: active)"],
    ["Delete", "delete the selection"],
    ["Ctrl+C / Ctrl+V", "copy / paste"],
    ["Ctrl+Shift+V", "paste keeping input links"],
    ["Ctrl+D", "duplicate the selection"],
    ["Alt+drag", "clone a node"],
    ["Ctrl+G", "group the selection"],
    ["Alt+C", "collapse the selected nodes"],
    ["Ctrl+A", "select all nodes"],
  ]],
  ["Workflow", [
    ["Ctrl+Z", "undo"],
    ["Ctrl+Shift+Z / Ctrl+Y", "redo"],
    ["Ctrl+S", "save (download the .json)"],
    ["Ctrl+O", "load a .json or a Loom PNG"],
    ["Alt+T / Alt+W", "new tab / close the tab (asks when it has unsaved changes)"],
    ["Alt+] / Alt+[", "next / previous tab"],
  ]],
  ["View", [
    [".", "fit the whole workflow in view"],
    ["Alt+= / Alt+-", "zoom in / out"],
    ["Wheel", "zoom"],
    ["Drag empty canvas / Space+drag", "pan"],
    ["Ctrl+,", "settings"],
    ["N", "node library (drag a node onto the canvas, or click it)"],
    ["Alt+M", "show or hide the minimap"],
    ["?", "this list"],
    ["Esc", "close a panel"],
  ]],
];

/** Is the user typing into a field (where keys belong to the field)? */
export function isTyping(e) {
  const t = e.target;
  return t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
}

function buildHelp() {
  const panel = floatPanel("shortcuts", "Keyboard shortcuts", "float-panel wide");
  for (const [section, rows] of SHORTCUTS) {
    const h = document.createElement("h4");
    h.textContent = section;
    const table = document.createElement("table");
    for (const [keys, what] of rows) {
      const tr = table.insertRow();
      const k = document.createElement("kbd");
      k.textContent = keys;
      tr.insertCell().append(k);
      tr.insertCell().textContent = what;
    }
    panel.append(h, table);
  }
  document.body.append(panel);
  return panel;
}

/** Zooms by a factor around the middle of the canvas. */
function zoom(app, factor) {
  const el = app.canvas.canvas;
  const ds = app.canvas.ds;
  ds.changeScale(ds.scale * factor, [el.clientWidth / 2, el.clientHeight / 2]);
  app.canvas.setDirty(true, true);
}

function duplicateSelection(app) {
  if (!app.canvas.selectedItems.size) return;
  app.canvas.copyToClipboard();
  const [mx, my] = app.canvas.graph_mouse;
  app.canvas.pasteFromClipboard({ position: [mx + 20, my + 20] });
  app.history.record();
}

/**
 * Installs the document's key handler. `actions`: queue(opts), fitView(), openPalette(),
 * toggleSettings(). Returns a function that opens or closes the help panel.
 */
export function installShortcuts(app, actions) {
  const help = buildHelp();
  const toggleHelp = () => {
    help.hidden = !help.hidden;
  };
  document.addEventListener("keydown", (e) => {
    const mod = e.ctrlKey || e.metaKey;
    if (mod && e.key === "Enter") {
      e.preventDefault();
      if (e.altKey) app.runs.interrupt();
      else actions.queue({ front: e.shiftKey });
      return;
    }
    if (e.key === "Escape" && !help.hidden) {
      help.hidden = true;
      return;
    }
    if (mod && e.key === ",") {
      e.preventDefault();
      actions.toggleSettings();
      return;
    }
    if (isTyping(e) || app.palette.isOpen) return;
    const k = e.key.toLowerCase();
    if (mod && k === "z" && !e.shiftKey) {
      e.preventDefault();
      app.history.undo();
    } else if (mod && (k === "y" || (k === "z" && e.shiftKey))) {
      e.preventDefault();
      app.history.redo();
    } else if (mod && k === "s") {
      e.preventDefault();
      document.querySelector("#btn-save").click();
    } else if (mod && k === "o") {
      e.preventDefault();
      document.querySelector("#btn-load").click();
    } else if (mod && k === "g") {
      e.preventDefault();
      if (groupSelection(app.canvas)) app.history.record();
    } else if (mod && k === "d") {
      e.preventDefault();
      duplicateSelection(app);
    } else if (mod && !e.shiftKey && !e.altKey && (k === "b" || k === "m")) {
      e.preventDefault();
      toggleMode(app, k === "b" ? BYPASS : MUTE);
    } else if (e.altKey && !mod && (e.key === "=" || e.key === "+" || e.code === "Equal" || e.code === "NumpadAdd")) {
      e.preventDefault();
      zoom(app, 1.1);
    } else if (e.altKey && !mod && (e.key === "-" || e.code === "Minus" || e.code === "NumpadSubtract")) {
      e.preventDefault();
      zoom(app, 1 / 1.1);
    } else if (e.altKey && k === "c") {
      e.preventDefault();
      for (const n of Object.values(app.canvas.selected_nodes)) n.collapse();
      app.canvas.setDirty(true, true);
      app.history.record();
    } else if (!mod && !e.altKey && document.activeElement === app.canvas.canvas
      && (e.key === "Tab" || (e.key === " " && e.shiftKey))) {
      e.preventDefault();
      actions.openPalette(null);
    } else if (!mod && e.key === ".") {
      actions.fitView();
    } else if (!mod && !e.altKey && e.key === "?") {
      e.preventDefault();
      toggleHelp();
    }
  });
  return toggleHelp;
}
