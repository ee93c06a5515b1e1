// History: past runs kept by the server (GET /api/runs), with status, duration, a thumbnail of
// the first output image, Open / Re-queue / Delete, paged with "More"; refills the gallery.

import { api, fileUrl } from "./api.js";
import { addToGallery, toast } from "./ui.js";

const $ = (sel) => document.querySelector(sel);
const DONE = "finished,failed,interrupted,cancelled";
const PAGE = 20;
const GALLERY_RUNS = 8; // runs whose images go back into the gallery on load
const ENDED = new Set(["run.finished", "run.failed", "run.interrupted", "run.cancelled"]);

/** "0.4 s", "12.3 s", "2 m 05 s" from epoch seconds; "" when unknown. */
export function duration(run) {
  if (run.started == null || run.finished == null) return "";
  const s = Math.max(0, run.finished - run.started);
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} m ${String(Math.round(s % 60)).padStart(2, "0")} s`;
}

function whenOf(run) {
  const t = run.finished ?? run.started ?? run.created;
  return t ? new Date(t * 1000).toLocaleString() : "";
}

/** The images of a run's result, output nodes in order: [{node, kind, path}]. */
function imagesOf(detail) {
  const out = [];
  for (const [node, ui] of Object.entries(detail?.result?.ui ?? {})) {
    for (const im of Array.isArray(ui?.images) ? ui.images : []) {
      if (im?.path) out.push({ node, kind: im.kind ?? "output", path: im.path });
    }
  }
  return out;
}

function button(text, title, fn) {
  const b = document.createElement("button");
  b.textContent = text;
  b.title = title;
  b.addEventListener("click", fn);
  return b;
}

export class HistoryPanel {
  constructor(app) {
    this.app = app;
    this.list = $("#history-list");
    this.more = $("#btn-history-more");
    this.next = null;
    this.details = new Map(); // run id → promise of GET /api/runs/{id}
    this.shown = new Set();
    this.observer = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        this.observer.unobserve(e.target);
        this.fillThumb(e.target);
      }
    });
    this.more.addEventListener("click", () => this.loadPage());
    $("#btn-history-refresh").addEventListener("click", () => this.reload());
  }

  detail(id) {
    if (!this.details.has(id)) {
      const p = api(`/api/runs/${encodeURIComponent(id)}`);
      p.catch(() => this.details.delete(id));
      this.details.set(id, p);
    }
    return this.details.get(id);
  }

  /** First page from the server; the gallery gets the images of the newest runs back. */
  async reload() {
    this.list.replaceChildren();
    this.shown.clear();
    this.next = null;
    const runs = await this.loadPage(true);
    await this.refillGallery(runs ?? []);
  }

  async loadPage(first = false) {
    const before = first ? "" : this.next ? `&before=${encodeURIComponent(this.next)}` : null;
    if (before === null) return [];
    try {
      const res = await api(`/api/runs?status=${DONE}&limit=${PAGE}${before}`);
      const runs = res?.runs ?? [];
      for (const run of runs) this.append(run);
      this.next = res?.next ?? null;
      this.more.hidden = !this.next;
      this.renderEmpty();
      return runs;
    } catch (err) {
      toast(`Could not load the history: ${err.message}`, "warn");
      return [];
    }
  }

  async refillGallery(runs) {
    const items = [];
    for (const run of runs.filter((r) => r.status === "finished").slice(0, GALLERY_RUNS)) {
      try {
        items.push(...this.galleryItems(run.id, await this.detail(run.id)));
      } catch {
        // a run deleted meanwhile: nothing to show
      }
    }
    this.addNew(items); // newest run first, as addToGallery keeps a batch's order on top
  }

  galleryItems(id, detail) {
    const title = detail?.workflow?.nodes ?? {};
    return imagesOf(detail).map((im) => ({
      url: fileUrl(im.kind, im.path),
      kind: im.kind,
      caption: `${title[im.node]?.ui?.title ?? im.node} · ${im.path}`,
      run: id,
    }));
  }

  /** Adds gallery items whose image is not there yet. */
  addNew(items) {
    const have = new Set([...document.querySelectorAll("#gallery img")].map((i) => i.getAttribute("src")));
    const fresh = items.filter((it) => !have.has(it.url) && have.add(it.url));
    if (fresh.length) addToGallery(fresh);
  }

  renderEmpty() {
    this.list.querySelector(".empty")?.remove();
    if (this.list.querySelector("li[data-run]")) return;
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "Finished runs appear here.";
    this.list.append(li);
  }

  entry(run) {
    const li = document.createElement("li");
    li.className = `history-entry ${run.status ?? ""}`;
    li.dataset.run = run.id;
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = `${run.title || "Run"} · ${String(run.id).slice(0, 8)}`;
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = run.status ?? "";
    const dur = document.createElement("span");
    dur.className = "duration";
    dur.textContent = duration(run);
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = whenOf(run);
    const tools = document.createElement("span");
    tools.className = "tools";
    tools.append(
      button("Open", "Open this run's workflow and its images", () => this.open(run.id)),
      button("Re-queue", "Queue this run's workflow again", () => this.requeue(run.id)),
      button("Delete", "Delete this run from the history", () => this.remove(run.id, li)));
    const info = document.createElement("div");
    info.className = "info";
    info.append(what, status, dur, when, tools);
    li.append(thumb, info);
    const err = run.error?.message ?? (typeof run.error === "string" ? run.error : null);
    if (run.status === "failed" && err) {
      const msg = document.createElement("span");
      msg.className = "msg";
      msg.textContent = run.error?.node ? `${run.error.node}: ${err}` : err;
      info.append(msg);
    }
    return li;
  }

  append(run, top = false) {
    if (!run?.id || this.shown.has(run.id)) return;
    this.shown.add(run.id);
    const li = this.entry(run);
    if (top) this.list.prepend(li);
    else this.list.append(li);
    this.observer.observe(li);
  }

  async fillThumb(li) {
    try {
      const detail = await this.detail(li.dataset.run);
      const first = imagesOf(detail)[0];
      if (!first) {
        li.querySelector(".thumb").classList.add("none");
        return;
      }
      const img = document.createElement("img");
      img.src = fileUrl(first.kind, first.path);
      img.alt = first.path;
      img.loading = "lazy";
      li.querySelector(".thumb").replaceChildren(img);
    } catch {
      li.querySelector(".thumb").classList.add("none");
    }
  }

  async open(id) {
    await this.app.runs.openRun(id);
    try {
      this.addNew(this.galleryItems(id, await this.detail(id)));
    } catch {
      // openRun already said what went wrong
    }
  }

  async requeue(id) {
    try {
      const detail = await this.detail(id);
      if (!detail?.workflow) throw new Error("the server kept no workflow for this run");
      const res = await api("/api/runs", { method: "POST", json: detail.workflow });
      toast(`Queued again as ${String(res?.id ?? "").slice(0, 8)}`, "ok", 2500);
    } catch (err) {
      toast(`Could not queue run ${String(id).slice(0, 8)} again: ${err.message}`, "error");
    }
  }

  async remove(id, li) {
    try {
      await api(`/api/runs/${encodeURIComponent(id)}`, { method: "DELETE" });
      li.remove();
      this.shown.delete(id);
      this.details.delete(id);
      this.app.runs.runs.delete(id);
      this.app.runs.scheduleRender();
      this.renderEmpty();
    } catch (err) {
      toast(`Could not delete run ${String(id).slice(0, 8)}: ${err.message}`, "error");
    }
  }

  /** A run that just ended goes on top (its summary comes from the server). */
  handle(ev) {
    if (!ENDED.has(ev?.type) || !ev.run) return;
    api(`/api/runs/${encodeURIComponent(ev.run)}`).then((run) => {
      this.details.set(ev.run, Promise.resolve(run));
      this.append(run, true);
      this.renderEmpty();
    }).catch(() => {});
  }
}
