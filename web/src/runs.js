// Runs: the queue/history panel and WebSocket events painted onto nodes.

import { api, fileUrl, listRuns } from "./api.js";
import { growNode } from "./layout.js";
import { layoutImages } from "./nodes.js";
import { showProblems } from "./problems.js";
import { addToGallery, toast } from "./ui.js";

const $ = (sel) => document.querySelector(sel);
const FINAL = new Set(["finished", "failed", "interrupted", "cancelled"]);

function loadImage(url, node) {
  const img = new Image();
  img.onload = () => {
    if (node) layoutImages(node); // placed even while the node is off-screen
    node?.setDirtyCanvas(true, false);
  };
  img.src = url;
  return img;
}

function timeOf(run) {
  const t = run.created ?? run.created_at ?? run.queued_at ?? run.started_at;
  if (!t) return "";
  const d = typeof t === "number" ? new Date(t < 1e12 ? t * 1000 : t) : new Date(t);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString();
}

/** Tracks runs and reflects their events on the canvas and in the side panel. */
export class Runs {
  constructor(app) {
    this.app = app;
    this.runs = new Map();
    this.current = null;
    this.total = 0;
    this.done = 0;
    this.doneNodes = new Set();
    this.runningNode = null;
    this.step = null;
    this.renderTimer = null;
    $("#btn-refresh-runs").addEventListener("click", () => this.refresh());
  }

  node(id) {
    return id == null ? null : this.app.nodeById(id);
  }

  upsert(run) {
    const old = this.runs.get(run.id) ?? {};
    const merged = { ...old, ...run };
    this.runs.set(run.id, merged);
    this.scheduleRender();
    return merged;
  }

  /** Reloads the queue and history from the server. */
  async refresh() {
    try {
      const list = await listRuns(50);
      for (const r of list) {
        const id = r.id ?? r.run;
        if (!id) continue;
        const local = this.runs.get(id);
        this.upsert({ ...r, id, status: r.status ?? local?.status, title: local?.title ?? r.title
          ?? r.workflow?.meta?.title });
      }
    } catch (err) {
      toast(`Could not load the queue: ${err.message}`, "warn");
    }
  }

  scheduleRender() {
    if (this.renderTimer) return;
    this.renderTimer = requestAnimationFrame(() => {
      this.renderTimer = null;
      this.render();
    });
  }

  render() {
    const list = $("#run-list");
    const runs = [...this.runs.values()].sort((a, b) => (b.seq ?? 0) - (a.seq ?? 0)
      || String(b.created ?? "").localeCompare(String(a.created ?? "")));
    const order = { running: 0, queued: 1 };
    runs.sort((a, b) => (order[a.status] ?? 2) - (order[b.status] ?? 2));
    list.replaceChildren(...runs.slice(0, 100).map((r) => this.renderRun(r)));
    if (!runs.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "Nothing queued yet. Press Queue (Ctrl+Enter).";
      list.append(li);
    }
    this.renderProgress();
  }

  renderRun(r) {
    const li = document.createElement("li");
    li.className = r.status ?? "";
    li.dataset.run = r.id;
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = `${r.title || "Run"} · ${String(r.id).slice(0, 8)}`;
    const right = document.createElement("span");
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = r.status === "queued" && r.position != null ? `queued #${r.position + 1}` : r.status ?? "";
    right.append(status);
    if (FINAL.has(r.status) && r.status !== "cancelled") {
      const open = document.createElement("button");
      open.textContent = "Open";
      open.title = "Open the workflow of this run on the canvas";
      open.addEventListener("click", () => this.openRun(r.id));
      right.append(" ", open);
    }
    if (r.status === "queued" || r.status === "running") {
      const b = document.createElement("button");
      b.textContent = r.status === "queued" ? "Cancel" : "Stop";
      b.title = r.status === "queued" ? "Remove this run from the queue" : "Interrupt this run";
      b.addEventListener("click", () => this.cancel(r.id));
      right.append(" ", b);
    }
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = timeOf(r);
    li.append(what, right, when);
    const err = r.error?.message ?? (typeof r.error === "string" ? r.error : r.message);
    if (r.status === "failed" && err) {
      const msg = document.createElement("span");
      msg.className = "msg";
      msg.textContent = r.error?.node ? `${r.error.node}: ${err}` : err;
      li.append(msg);
    }
    return li;
  }

  renderProgress() {
    const box = $("#run-progress");
    const running = this.current && this.runs.get(this.current)?.status === "running";
    box.hidden = !running;
    if (!running) return;
    let frac = this.total ? this.done / this.total : 0;
    if (this.step && this.total) frac += this.step.value / Math.max(1, this.step.total) / this.total;
    box.querySelector(".fill").style.width = `${Math.min(100, frac * 100).toFixed(1)}%`;
    const step = this.step ? ` · step ${this.step.value}/${this.step.total}` : "";
    box.querySelector(".label").textContent = `${this.done}/${this.total} nodes${step}`;
  }

  /** Loads the workflow a past run used (and shows its images on the output nodes). */
  async openRun(id) {
    try {
      const run = await api(`/api/runs/${encodeURIComponent(id)}`);
      if (!run?.workflow) throw new Error("the server kept no workflow for this run");
      this.app.load(run.workflow);
      for (const [nid, ui] of Object.entries(run.result?.ui ?? {})) {
        const node = this.node(nid);
        if (node?.loom) this.applyUi(node, ui, id, false);
      }
      this.app.canvas.setDirty(true, true);
    } catch (err) {
      toast(`Cannot open run ${String(id).slice(0, 8)}: ${err.message}`, "error");
    }
  }

  async cancel(id) {
    try {
      await api(`/api/runs/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch (err) {
      toast(`Could not cancel: ${err.message}`, "error");
    }
  }

  async interrupt() {
    try {
      const res = await api("/api/interrupt", { method: "POST" });
      if (res && res.interrupted === null) toast("Nothing is running", "info", 2000);
    } catch (err) {
      toast(`Could not interrupt: ${err.message}`, "error");
    }
  }

  // --- events -------------------------------------------------------------------
  handle(ev) {
    const fn = {
      "run.queued": this.onQueued,
      "run.started": this.onStarted,
      "node.started": this.onNodeStarted,
      "node.progress": this.onProgress,
      "node.cached": this.onNodeDone,
      "node.finished": this.onNodeDone,
      "node.failed": this.onNodeFailed,
      "run.finished": this.onRunEnded,
      "run.failed": this.onRunEnded,
      "run.interrupted": this.onRunEnded,
      "run.cancelled": this.onRunEnded,
      binary: this.onBinary,
    }[ev.type];
    if (fn) fn.call(this, ev);
    this.app.canvas.setDirty(true, false);
  }

  onQueued(ev) {
    this.upsert({ id: ev.run, status: "queued", position: ev.position ?? null, created: ev.created });
  }

  onStarted(ev) {
    this.current = ev.run;
    this.upsert({ id: ev.run, status: "running", position: null });
    const toRun = ev.to_execute ?? ev.executing ?? [];
    const cached = ev.cached ?? [];
    this.total = toRun.length + cached.length;
    this.doneNodes = new Set();
    this.done = 0;
    this.step = null;
    for (const node of this.app.graph.nodes) {
      if (!node.loom) continue;
      node.loom.status = null;
      node.loom.error = null;
      node.loom.preview = null;
      node.progress = undefined;
      if (!node.loom.unknown && !node.loom.problems.length) node.has_errors = false;
    }
  }

  onNodeStarted(ev) {
    if (ev.run !== this.current) return;
    const node = this.node(ev.node);
    this.runningNode = ev.node;
    this.step = null;
    if (!node) return;
    node.loom.status = "running";
    node.progress = 0.001;
  }

  onProgress(ev) {
    if (ev.run !== this.current) return;
    const node = this.node(ev.node);
    this.step = { value: ev.value, total: ev.total };
    this.renderProgress();
    if (!node) return;
    node.progress = ev.total ? Math.max(0.001, ev.value / ev.total) : undefined;
    const url = typeof ev.preview === "string" ? ev.preview : ev.preview?.url
      ?? (ev.preview?.path ? fileUrl(ev.preview.kind ?? "preview", ev.preview.path) : null);
    if (url) this.setPreview(node, url);
  }

  onBinary(ev) {
    const node = this.node(this.runningNode);
    if (!node || node.loom.status !== "running") return;
    const blob = ev.blob.type ? ev.blob : ev.blob.slice(8, ev.blob.size, "image/png");
    this.setPreview(node, URL.createObjectURL(blob), true);
  }

  setPreview(node, url, revoke = false) {
    const img = new Image();
    img.onload = () => {
      const old = node.loom.preview;
      node.loom.preview = img;
      if (old?.dataset?.revoke) URL.revokeObjectURL(old.src);
      growNode(this.app, node);
      node.setDirtyCanvas(true, false);
    };
    if (revoke) img.dataset.revoke = "1";
    img.src = url;
  }

  onNodeDone(ev) {
    if (ev.run === this.current) {
      this.doneNodes.add(String(ev.node)); // executed or cached, each node once
      this.done = this.doneNodes.size;
      this.total = Math.max(this.total, this.done);
    }
    this.step = null;
    this.renderProgress();
    const node = this.node(ev.node);
    if (!node || ev.run !== this.current) return;
    node.loom.status = ev.type === "node.cached" ? "cached" : "done";
    node.progress = undefined;
    node.loom.preview = null;
    this.applyUi(node, ev.ui ?? {}, ev.run);
  }

  applyUi(node, ui, run, gallery = true) {
    const images = Array.isArray(ui.images) ? ui.images : [];
    node.loom.text = Array.isArray(ui.text) ? ui.text.map(String) : [];
    node.loom.values = ui.values && typeof ui.values === "object" ? ui.values : null;
    if (images.length) {
      node.loom.images = images.map((im) => loadImage(fileUrl(im.kind ?? "output", im.path), node));
      if (gallery) addToGallery(images.map((im) => ({
        url: fileUrl(im.kind ?? "output", im.path),
        kind: im.kind ?? "output",
        caption: `${node.title} · ${im.path}`,
        run,
      })));
    }
    growNode(this.app, node); // room for what it shows: nodes it would cover move (undoable)
  }

  onNodeFailed(ev) {
    const node = this.node(ev.node);
    if (!node) return;
    node.loom.status = "failed";
    node.loom.error = { message: `${ev.error_type ? `${ev.error_type}: ` : ""}${ev.message ?? "failed"}` };
    node.progress = undefined;
    node.has_errors = true;
  }

  onRunEnded(ev) {
    const status = { "run.finished": "finished", "run.failed": "failed",
      "run.interrupted": "interrupted", "run.cancelled": "cancelled" }[ev.type];
    const error = ev.type === "run.failed" ? { node: ev.node ?? null, message: ev.message ?? ev.error ?? "" } : undefined;
    this.upsert({ id: ev.run, status, position: null, ...(error ? { error } : {}) });
    if (ev.run === this.current) {
      if (ev.counts) this.done = (Number(ev.counts.executed) || 0) + (Number(ev.counts.cached) || 0);
      this.runningNode = null;
      this.step = null;
      for (const node of this.app.graph.nodes) {
        if (node.loom?.status === "running") node.loom.status = status === "failed" ? "failed" : null;
        node.progress = undefined;
        if (node.loom) node.loom.preview = null;
      }
    }
    if (status === "failed" && Array.isArray(ev.problems) && ev.problems.length) {
      showProblems(this.app, ev.problems);
      toast(`Run failed validation: ${ev.problems.length} problem(s)`, "error");
    } else if (status === "failed") {
      const where = ev.node ? `node ${ev.node}: ` : "";
      toast(`Run failed — ${where}${ev.message ?? ""}`, "error");
      const node = this.node(ev.node);
      if (node && !node.loom.error) {
        node.loom.error = { message: ev.message ?? "failed" };
        node.has_errors = true;
      }
    } else if (status === "interrupted") {
      toast("Run interrupted", "warn");
    }
    for (const r of this.runs.values()) {
      if (r.status === "queued" && r.position != null && r.position > 0 && FINAL.has(status)) r.position -= 1;
    }
    this.scheduleRender();
  }
}
