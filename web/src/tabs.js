// Workflow tabs: several open workflows, each with its own undo history, view, title and
// unsaved mark, in a strip above the canvas. Only the shown tab lives in the litegraph graph;
// the others are kept as their undo history (or, until first shown after a reload, their
// JSON). Tabs are kept in local storage (`loom.tabs`) and come back after a reload.
//
// Runs: a run remembers the tab it was queued from. While that tab is shown its events paint
// its nodes as before; while another tab is shown they go to the queue list and the Gallery
// only, and the results (images, text, values) are put on the tab's nodes when it is shown again.

import { fileUrl } from "./api.js";
import { History } from "./history.js";
import { addToGallery, toast } from "./ui.js";

const STORE_KEY = "loom.tabs"; // the index: [{key, title, view}] and which one is shown
const TAB_KEY = "loom.tab."; // + key: one tab's {json, saved}, written only when it changed
const SHOWN_KEYS = ["status", "images", "text", "values", "error", "problems"];
const UNTITLED = "Untitled workflow";
const emptyWorkflow = () => ({ format: "loom.workflow", version: 1, nodes: {}, meta: { title: UNTITLED } });
/** Stands in for the graph while an event of a run from a hidden tab is handled. */
const OFFSTAGE = Object.freeze({ nodes: [], groups: [], getNodeById: () => null });

let lastId = 0;

/** One open workflow. */
class Tab {
  constructor({ title = UNTITLED, json = null, saved = null, view = null, key = null } = {}) {
    lastId += 1;
    this.id = lastId;
    this.key = key ?? `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    this.stored = key ? { json, saved } : null; // what its storage key holds
    this.title = title;
    this.json = json; // the workflow JSON while hidden and not yet shown since the reload
    this.saved = saved; // that JSON as last saved or opened (dirty when it differs)
    this.view = view;
    this.history = null; // its History, once shown
    this.display = null; // what its nodes showed from runs when it was hidden
    this.pending = new Map(); // node id → results of runs that ended while it was hidden
  }

  get dirty() {
    return this.history ? this.history.dirty : this.json !== this.saved;
  }

  currentJson() {
    return this.history ? this.history.stack[this.history.index] : this.json;
  }
}

function titleOf(json) {
  try {
    const t = JSON.parse(json)?.meta?.title;
    return typeof t === "string" && t ? t : UNTITLED;
  } catch {
    return UNTITLED;
  }
}

function readJson(key) {
  try {
    return JSON.parse(localStorage.getItem(key) ?? "null");
  } catch {
    return null;
  }
}

/** The kept tabs ({key, title, view, json, saved}) and the index of the shown one, or null. */
function readStored() {
  const v = readJson(STORE_KEY);
  if (!v || !Array.isArray(v.tabs)) return null;
  const tabs = [];
  for (const t of v.tabs) {
    const body = typeof t?.key === "string" ? readJson(TAB_KEY + t.key) : null;
    if (typeof body?.json === "string") tabs.push({ ...t, json: body.json, saved: body.saved });
  }
  const active = Math.min(Math.max(0, Number(v.active) || 0), tabs.length - 1);
  return tabs.length ? { tabs, active } : null;
}

/** Drops the stored bodies of tabs that are no longer open. */
function forgetOthers(keys) {
  try {
    for (let i = localStorage.length - 1; i >= 0; i -= 1) {
      const k = localStorage.key(i);
      if (k?.startsWith(TAB_KEY) && !keys.has(k.slice(TAB_KEY.length))) localStorage.removeItem(k);
    }
  } catch {
    // storage disabled
  }
}

function captureDisplay(graph) {
  const out = new Map();
  for (const n of graph.nodes) {
    if (!n.loom || n.loom.unknown) continue;
    out.set(String(n.id), { type: n.type, hasErrors: n.has_errors,
      state: Object.fromEntries(SHOWN_KEYS.map((k) => [k, n.loom[k]])) });
  }
  return out;
}

export class Tabs {
  constructor(app) {
    this.app = app;
    this.tabs = [];
    this.active = null;
    this.runTab = new Map(); // run id → the tab it was queued from
    this.persistTimer = null;
    this.onHistoryChange = app.history.onChange; // the top bar's undo/redo/dirty buttons
    this.baseLoad = app.load;
    this.strip = document.createElement("nav");
    this.strip.id = "wf-tabs";
    this.strip.className = "wf-tabs";
    this.strip.setAttribute("aria-label", "Open workflows");
    document.querySelector("main").before(this.strip);
  }

  /** Builds the tabs: the shown workflow (already on the canvas) plus those kept from before. */
  restore(fresh) {
    const stored = fresh ? null : readStored();
    const app = this.app;
    if (!stored) {
      this.active = this.adopt(new Tab({ title: app.meta.title || UNTITLED }), app.history);
      this.tabs = [this.active];
    } else {
      this.tabs = stored.tabs.map((t) => new Tab({ title: typeof t.title === "string" ? t.title : titleOf(t.json),
        json: t.json, saved: typeof t.saved === "string" ? t.saved : t.json, view: t.view ?? null, key: t.key }));
      const shown = this.tabs[stored.active];
      const wasDirty = shown.json !== shown.saved;
      this.active = this.adopt(shown, app.history);
      shown.title = app.meta.title || UNTITLED;
      if (wasDirty) {
        app.history.savedJson = shown.saved; // the unsaved mark survives the reload
        app.history.onChange();
      }
      shown.json = null;
    }
    this.render();
    this.persist();
    forgetOthers(new Set(this.tabs.map((t) => t.key)));
  }

  /** Makes `history` the tab's own and hooks its changes to the strip. */
  adopt(tab, history) {
    tab.history = history;
    history.onChange = () => {
      this.onHistoryChange();
      if (tab === this.active) tab.title = this.app.meta.title || UNTITLED;
      this.render();
      this.persistSoon();
    };
    return tab;
  }

  newHistory() {
    const h = this.app.history;
    return new History(h.snapshot, h.restore, () => {});
  }

  /** Keeps the shown tab's state (undo history, view, what its nodes show) before hiding it. */
  stash() {
    const { app } = this;
    const tab = this.active;
    if (!tab) return;
    app.history.record();
    const ds = app.canvas.ds;
    tab.view = { offset: [...ds.offset], scale: ds.scale };
    tab.display = captureDisplay(app.graph);
    tab.title = app.meta.title || UNTITLED;
  }

  /** Puts a tab's workflow on the canvas and makes its history the current one. */
  show(tab) {
    const { app } = this;
    this.active = tab;
    const json = tab.currentJson() ?? JSON.stringify(emptyWorkflow());
    const own = tab.history;
    app.history = this.newHistory(); // opening records into a scratch history, not the tab's
    try {
      this.baseLoad(JSON.parse(json), { view: tab.view, fit: !tab.view });
    } catch (err) {
      toast(`This tab's workflow could not be shown: ${err.message}`, "error");
      this.baseLoad(emptyWorkflow(), {});
    } finally {
      if (own) {
        app.history = own;
      } else {
        const h = this.newHistory();
        const loaded = app.history.stack[app.history.index] ?? json;
        h.stack = [loaded];
        h.index = 0;
        h.savedJson = tab.saved === tab.json || tab.saved == null ? loaded : tab.saved;
        tab.json = null;
        this.adopt(tab, h);
        app.history = h;
      }
    }
    this.restoreDisplay(tab);
    app.canvas.setDirty(true, true);
    app.history.onChange();
  }

  restoreDisplay(tab) {
    const { app } = this;
    for (const n of app.graph.nodes) {
      const old = tab.display?.get(String(n.id));
      if (old && old.type === n.type && n.loom) {
        Object.assign(n.loom, old.state);
        n.has_errors = old.hasErrors;
      }
      if (n.loom?.status === "running") n.loom.status = null; // its run went on while hidden
    }
    tab.display = null;
    for (const [id, { ui, run, status }] of tab.pending) {
      const node = app.nodeById(id);
      if (!node?.loom || node.loom.unknown) continue;
      node.loom.status = status;
      app.runs.applyUi(node, ui, run, false);
    }
    tab.pending.clear();
  }

  /** Shows another tab. */
  activate(tab) {
    if (!tab || tab === this.active) return;
    this.stash();
    this.show(tab);
    this.render();
    this.persistSoon();
  }

  /** Opens a new tab with an empty workflow (or `wf`). */
  open(wf = null, opts = {}) {
    const { app } = this;
    this.stash();
    const tab = new Tab({ title: wf?.meta?.title || UNTITLED });
    this.tabs.splice(this.tabs.indexOf(this.active) + 1, 0, tab);
    this.active = tab;
    app.history = this.newHistory();
    this.adopt(tab, app.history);
    const out = this.baseLoad(wf ?? emptyWorkflow(), opts);
    tab.title = app.meta.title || UNTITLED;
    this.render();
    this.persistSoon();
    return out;
  }

  /** Closes a tab (asking first when it has unsaved changes); the last one leaves an empty tab. */
  close(tab) {
    if (!tab) return false;
    if (tab.dirty && !window.confirm(`"${tab.title}" has unsaved changes. Close it anyway?`)) return false;
    const at = this.tabs.indexOf(tab);
    this.tabs.splice(at, 1);
    clearTimeout(tab.history?.timer); // a pending snapshot must not land in a closed tab
    try {
      localStorage.removeItem(TAB_KEY + tab.key);
    } catch {
      // storage disabled
    }
    for (const [run, t] of this.runTab) if (t === tab) this.runTab.delete(run);
    if (tab === this.active) {
      this.active = null;
      if (this.tabs.length) {
        this.show(this.tabs[Math.min(at, this.tabs.length - 1)]);
      } else {
        const fresh = new Tab();
        this.tabs.push(fresh);
        this.show(fresh);
      }
    }
    this.render();
    this.persist();
    return true;
  }

  /** Where `app.load` opens a workflow: here when this tab is empty and unmodified (or `wf` is
   * empty: the New button empties the current tab, undoably), else in a new tab. */
  replacesCurrent(wf) {
    const empty = !wf?.nodes || !Object.keys(wf.nodes).length;
    return empty || (this.app.graph.nodes.length === 0 && !this.app.history.dirty);
  }

  /** Remembers which tab a queued run belongs to. */
  claimRun(runId) {
    if (runId && this.active) this.runTab.set(runId, this.active);
  }

  /** Handles an event of a run queued from a hidden tab: no node of the canvas is touched. */
  handleHidden(handle, ev, tab) {
    const { app } = this;
    const graph = app.graph;
    app.graph = OFFSTAGE;
    try {
      handle(ev);
    } finally {
      app.graph = graph;
    }
    if ((ev.type === "node.finished" || ev.type === "node.cached") && ev.node != null) {
      const ui = ev.ui ?? {};
      tab.pending.set(String(ev.node), { ui, run: ev.run, status: ev.type === "node.cached" ? "cached" : "done" });
      const images = Array.isArray(ui.images) ? ui.images : [];
      if (images.length) {
        addToGallery(images.map((im) => ({ url: fileUrl(im.kind ?? "output", im.path), kind: im.kind ?? "output",
          caption: `${tab.title} › ${ev.node} · ${im.path}`, run: ev.run })));
      }
    }
  }

  persistSoon() {
    clearTimeout(this.persistTimer);
    this.persistTimer = setTimeout(() => this.persist(), 200);
  }

  /** Writes the index (titles, views, order) and the body of each tab that changed since. */
  persist() {
    clearTimeout(this.persistTimer);
    const ds = this.app.canvas.ds;
    const index = this.tabs.map((t) => ({ key: t.key, title: t.title,
      view: t === this.active ? { offset: [...ds.offset], scale: ds.scale } : t.view }));
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify({ active: this.tabs.indexOf(this.active), tabs: index }));
      for (const t of this.tabs) {
        const json = t.currentJson();
        const saved = t.history ? t.history.savedJson : t.saved;
        if (t.stored && t.stored.json === json && t.stored.saved === saved) continue;
        localStorage.setItem(TAB_KEY + t.key, JSON.stringify({ json, saved }));
        t.stored = { json, saved };
      }
    } catch {
      // storage full or disabled: the tabs last until the page is closed
    }
  }

  render() {
    const make = (tag, className, text) => Object.assign(document.createElement(tag), { className, textContent: text });
    const items = this.tabs.map((t) => {
      const b = make("div", `wf-tab${t === this.active ? " active" : ""}${t.dirty ? " dirty" : ""}`, "");
      b.dataset.tab = String(t.id);
      b.title = `${t.title}${t.dirty ? " (unsaved changes)" : ""}`;
      b.setAttribute("role", "tab");
      b.setAttribute("aria-selected", String(t === this.active));
      const x = Object.assign(make("button", "close", "×"), { title: "Close this tab (Alt+W)" });
      x.addEventListener("click", (e) => {
        e.stopPropagation();
        this.close(t);
      });
      b.addEventListener("click", () => this.activate(t));
      b.addEventListener("auxclick", (e) => e.button === 1 && this.close(t));
      b.append(make("span", "name", t.title), make("span", "mark", "●"), x);
      return b;
    });
    const add = Object.assign(make("button", "new-tab", "+"), { id: "btn-new-tab", title: "New tab (Alt+T)" });
    add.addEventListener("click", () => this.open());
    this.strip.replaceChildren(...items, add);
  }

  /** Shows the tab `step` places to the right (negative: left), wrapping around. */
  cycle(step) {
    const n = this.tabs.length;
    if (n > 1) this.activate(this.tabs[(this.tabs.indexOf(this.active) + step + n) % n]);
  }
}

/**
 * Installs the tabs once the first workflow is on the canvas: restores the kept tabs, routes
 * `app.load` (open here or in a new tab) and run events (by the tab a run came from).
 */
export function installTabs(app, isTyping) {
  const tabs = new Tabs(app);
  tabs.restore(new URLSearchParams(location.search).has("fresh"));
  const baseLoad = tabs.baseLoad;
  app.load = (wf, opts = {}) => {
    if (opts.keepHistory || tabs.replacesCurrent(wf)) return baseLoad(wf, opts);
    return tabs.open(wf, opts);
  };
  const handle = app.runs.handle.bind(app.runs);
  app.runs.handle = (ev) => {
    const tab = ev?.run ? tabs.runTab.get(ev.run) : null;
    if (tab && tab !== tabs.active && tabs.tabs.includes(tab)) tabs.handleHidden(handle, ev, tab);
    else handle(ev);
  };
  window.addEventListener("pagehide", () => tabs.persist());
  document.addEventListener("keydown", (e) => {
    if (!e.altKey || e.ctrlKey || e.metaKey || isTyping(e)) return;
    const action = { KeyT: () => tabs.open(), KeyW: () => tabs.close(tabs.active),
      BracketRight: () => tabs.cycle(1), BracketLeft: () => tabs.cycle(-1) }[e.code];
    if (!action) return;
    e.preventDefault();
    action();
  });
  app.tabs = tabs;
  return tabs;
}
