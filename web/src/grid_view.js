// The evaluation studio's grid view: a "Sweeps" side tab lists the sweeps of the history;
// opening one shows its cells' images as a labelled grid (x / y / page axes picked from the
// swept inputs; cells fill in as their runs end), the table (values, metrics, time, seeds,
// human means; CSV download), the plot (metric and series pickers) and "Save grid PNG" (the
// server's grid.png, which carries the workflow and the sweep).

import { api, fileUrl, listRuns } from "./api.js";
import { showTab, toast } from "./ui.js";

const $ = (sel) => document.querySelector(sel);
const ENDED = new Set(["run.finished", "run.failed", "run.interrupted", "run.cancelled"]);
const HIDDEN_COLUMNS = /^human\..+\.(low|high|n)$/;

const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};
const show = (v) => (v === null || v === undefined ? "" : typeof v === "number" ? (Number.isInteger(v) ? String(v)
  : String(Number(v.toPrecision(4)))) : typeof v === "object" ? JSON.stringify(v) : String(v));
const keyOf = (a) => `${a.node}.${a.input}`;
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const sweepUrl = (id, tail = "", query = {}) => {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v)).toString();
  const token = new URLSearchParams(location.search).get("token");
  const full = `/api/sweeps/${encodeURIComponent(id)}${tail}${q ? `?${q}` : ""}`;
  return token ? `${full}${q ? "&" : "?"}token=${encodeURIComponent(token)}` : full;
};

function select(cls, options, value, onChange) {
  const s = el("select", { className: cls });
  for (const [v, text] of options) s.add(new Option(text, v));
  s.value = value ?? "";
  s.addEventListener("change", () => onChange(s.value));
  return s;
}

/** The pages of a grid (as the server's grid.png orders them): [{label, cells}]. */
export function gridPages(cells, keys, x, y, page) {
  const paged = [...(page ? [page] : []), ...keys.filter((k) => ![x, y, page].includes(k))];
  const pages = new Map();
  for (const c of cells) {
    const vals = paged.map((k) => c.values[k]);
    const id = JSON.stringify(vals);
    if (!pages.has(id)) pages.set(id, { label: paged.map((k, i) => `${k} = ${show(vals[i])}`).join(", "), cells: [] });
    pages.get(id).cells.push(c);
  }
  return [...pages.values()];
}

/** The Sweeps tab and the studio panel. */
class GridView {
  constructor(app) {
    this.app = app;
    this.known = new Map(); // sweep id → {id, title, count, created}
    this.open = null; // {id, data, table, x, y, page, n, metric, series}
    this.timer = null;
    this.buildTab();
    this.panel = el("div", { id: "sweep-studio", className: "sweep-studio", hidden: true });
    $("#canvas-wrap").append(this.panel);
  }

  buildTab() {
    const tab = el("button", { textContent: "Sweeps" });
    tab.dataset.tab = "sweeps";
    tab.addEventListener("click", () => {
      showTab("sweeps");
      this.refresh();
    });
    $("#side .tabs").append(tab);
    this.list = el("ul", { id: "sweep-list", className: "run-list sweep-list" });
    const refresh = el("button", { id: "btn-sweeps-refresh", textContent: "Refresh", title: "Reload the sweeps from the history" });
    refresh.addEventListener("click", () => this.refresh());
    $("#side").append(el("section", { id: "tab-sweeps", className: "tab" }, el("div", { className: "tab-tools" }, refresh), this.list));
    this.renderList();
  }

  /** A sweep this page just queued. */
  queued(id, { title, count }) {
    this.known.set(id, { id, title, count, created: Date.now() / 1000 });
    this.renderList();
  }

  /** Collects sweeps from the history (each run made by a sweep carries `sweep: {id, cell}`). */
  async refresh() {
    try {
      for (const r of await listRuns(500)) {
        const sid = r.sweep?.id;
        if (!sid) continue;
        const k = this.known.get(sid) ?? { id: sid, title: r.title, count: 0, created: r.created };
        k.created = Math.min(k.created ?? r.created, r.created ?? k.created);
        k.seen = (k.seen ?? new Set()).add(r.id);
        k.count = Math.max(k.count ?? 0, k.seen.size); // runs of it in the history
        this.known.set(sid, k);
      }
    } catch (err) {
      toast(`Could not load the sweeps: ${err.message}`, "warn");
    }
    this.renderList();
  }

  renderList() {
    const items = [...this.known.values()].sort((a, b) => (b.created ?? 0) - (a.created ?? 0));
    this.list.replaceChildren(...items.map((s) => {
      const li = el("li", { className: "sweep-entry" });
      li.dataset.sweep = s.id;
      const open = el("button", { textContent: "Open", title: "Show the grid, the table and the plot" });
      open.addEventListener("click", () => this.show(s.id));
      li.append(el("span", { className: "what", textContent: `${s.title || "Sweep"} · ${s.id.slice(0, 8)}` }),
        el("span", {}, el("span", { className: "status", textContent: s.count ? `${s.count} runs` : "" }), " ", open));
      return li;
    }));
    if (!items.length) this.list.append(el("li", { className: "empty", textContent: "Sweeps appear here. Right-click a widget › Sweep this value…, then Queue." }));
  }

  // --- the studio ---------------------------------------------------------------------------
  /** Opens a sweep in the studio panel. */
  async show(id) {
    this.open = { id, data: null, table: null, x: null, y: null, page: null, n: 0, metric: null, series: undefined };
    this.panel.hidden = false;
    this.panel.replaceChildren(el("p", { className: "note", textContent: "Loading the sweep…" }));
    await this.reload();
  }

  close() {
    this.open = null;
    this.panel.hidden = true;
    this.panel.replaceChildren();
    this.app.ratings?.detach?.(this.panel);
  }

  async reload() {
    const o = this.open;
    if (!o) return;
    try {
      const [data, table] = await Promise.all([api(`/api/sweeps/${encodeURIComponent(o.id)}`), api(`/api/sweeps/${encodeURIComponent(o.id)}/table`)]);
      if (this.open !== o) return;
      o.data = data;
      o.table = table;
      const keys = data.axes.map(keyOf);
      o.x ??= keys[0];
      if (o.y === null) o.y = keys.find((k) => k !== o.x) ?? "";
      this.known.set(o.id, { ...(this.known.get(o.id) ?? {}), id: o.id, title: data.title, count: data.count, created: data.created });
      this.render();
    } catch (err) {
      toast(`Cannot open sweep ${o.id}: ${err.message}`, "error");
    }
  }

  scheduleReload() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload(), 250);
  }

  /** Run events: a cell of the open sweep that ended fills in. */
  handle(ev) {
    if (ev?.type === "run.queued" && ev.sweep?.id && !this.known.has(ev.sweep.id)) {
      this.known.set(ev.sweep.id, { id: ev.sweep.id, title: "", count: 0, created: ev.created });
      this.renderList();
    }
    if (!ENDED.has(ev?.type) || !this.open?.data) return;
    if (this.open.data.cells.some((c) => c.run === ev.run)) this.scheduleReload();
  }

  render() {
    const o = this.open;
    const keys = o.data.axes.map(keyOf);
    const axisOptions = keys.map((k) => [k, k]);
    const remaining = (not) => [["", "—"], ...axisOptions.filter(([k]) => !not.includes(k))];
    const done = o.data.counts?.finished ?? 0;
    const closeBtn = el("button", { className: "close", textContent: "×", title: "Close (Esc)" });
    closeBtn.addEventListener("click", () => this.close());
    const pages = gridPages(o.data.cells, keys, o.x, o.y || null, o.page || null);
    o.n = Math.min(o.n, pages.length - 1);
    const save = el("a", { className: "button sweep-save", textContent: "Save grid PNG", download: `sweep-${o.id}-grid.png`,
      href: sweepUrl(o.id, "/grid.png", { x: o.x, y: o.y, page: o.page, n: String(o.n) }),
      title: "The labelled grid as one PNG; it carries the workflow and the sweep (drop it on the canvas to open it)" });
    const head = el("div", { className: "studio-head" },
      el("h3", { textContent: `${o.data.title || "Sweep"} · ${o.id}` }),
      el("span", { className: "note", textContent: `${o.data.mode} · ${done}/${o.data.count} finished` }),
      el("label", {}, "x ", select("grid-x", axisOptions, o.x, (v) => this.setAxes(v, o.y === v ? "" : o.y, o.page === v ? "" : o.page))),
      el("label", {}, "y ", select("grid-y", remaining([o.x]), o.y, (v) => this.setAxes(o.x, v, o.page === v ? "" : o.page))),
      el("label", {}, "page ", select("grid-page", remaining([o.x, o.y]), o.page, (v) => this.setAxes(o.x, o.y, v))),
      save, el("span", { className: "studio-rate" }), closeBtn);
    const body = el("div", { className: "studio-body" });
    const grid = el("div", { className: "sweep-grid" });
    pages.forEach((p, i) => grid.append(this.renderPage(p, i, pages.length)));
    body.append(grid, this.renderTable(), this.renderPlot());
    this.panel.replaceChildren(head, body);
    this.app.ratings?.attach?.(this.panel, ".sweep-grid figure[data-run]", head.querySelector(".studio-rate"), { sweep: o.id });
  }

  setAxes(x, y, page) {
    Object.assign(this.open, { x, y, page, n: 0 });
    this.render();
  }

  renderPage(page, index, count) {
    const o = this.open;
    const xs = [...new Map(o.data.cells.map((c) => [JSON.stringify(c.values[o.x]), c.values[o.x]])).values()];
    const ys = o.y ? [...new Map(o.data.cells.map((c) => [JSON.stringify(c.values[o.y]), c.values[o.y]])).values()] : [null];
    const table = el("table", { className: "grid-page" });
    const headRow = table.createTHead().insertRow();
    headRow.append(el("th", { className: "corner", textContent: o.y ? `${o.y} ↓ / ${o.x} →` : `${o.x} →` }));
    for (const xv of xs) headRow.append(el("th", { textContent: show(xv) }));
    const tbody = table.createTBody();
    for (const yv of ys) {
      const tr = tbody.insertRow();
      tr.append(el("th", { textContent: o.y ? show(yv) : "" }));
      for (const xv of xs) {
        const td = tr.insertCell();
        const cells = page.cells.filter((c) => same(c.values[o.x], xv) && (!o.y || same(c.values[o.y], yv)));
        for (const c of cells) td.append(this.renderCell(c));
      }
    }
    const wrap = el("section", { className: `grid-page-wrap${index === o.n ? " current" : ""}` });
    if (count > 1) {
      const label = el("h4", { textContent: `Page ${index + 1}/${count}: ${page.label}`, title: "Click: this page is the one \"Save grid PNG\" saves" });
      label.addEventListener("click", () => {
        o.n = index;
        this.render();
      });
      wrap.append(label);
    }
    wrap.append(table);
    return wrap;
  }

  renderCell(c) {
    const box = el("div", { className: `sweep-cell ${c.status}` });
    box.dataset.cell = String(c.cell);
    box.title = `cell ${c.cell}: ${Object.entries(c.values).map(([k, v]) => `${k}=${show(v)}`).join(", ")} · ${c.status}`;
    if (!c.images?.length) {
      box.append(el("div", { className: "cell-status", textContent: c.error?.message ?? c.status }));
      return box;
    }
    box.style.setProperty("--cols", String(Math.ceil(Math.sqrt(c.images.length))));
    c.images.forEach((im, i) => {
      const url = fileUrl(im.kind ?? "output", im.path);
      const fig = el("figure", {}, el("img", { src: url, alt: im.path, loading: "lazy" }));
      Object.assign(fig.dataset, { run: c.run, cell: String(c.cell), index: String(i), path: im.path });
      box.append(fig);
    });
    return box;
  }

  renderTable() {
    const o = this.open;
    const rows = o.table?.rows ?? [];
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !HIDDEN_COLUMNS.test(k)
      && !(k === "error" && rows.every((r) => !r.error)));
    const table = el("table", { className: "sweep-table" });
    const hr = table.createTHead().insertRow();
    for (const c of cols) hr.append(el("th", { textContent: c }));
    const tb = table.createTBody();
    for (const r of rows) {
      const tr = tb.insertRow();
      for (const c of cols) {
        let text = show(r[c]);
        if (c.startsWith("human.") && r[c] != null && r[`${c}.n`]) text += ` (n=${r[`${c}.n`]})`;
        tr.insertCell().textContent = text;
      }
    }
    const csv = el("a", { className: "button sweep-csv", textContent: "CSV", href: sweepUrl(o.id, "/table.csv"),
      download: `sweep-${o.id}.csv`, title: "Download the table as CSV" });
    const corr = Object.entries(o.table?.correlations ?? {}).flatMap(([crit, per]) => Object.entries(per)
      .filter(([, rho]) => rho != null).map(([m, rho]) => `${crit} ~ ${m}: ρ = ${show(rho)}`));
    return el("section", { className: "studio-table" }, el("h4", {}, "Table ", csv), table,
      corr.length ? el("p", { className: "note", textContent: `Rank correlation of human means with metrics: ${corr.join("; ")}` }) : "");
  }

  renderPlot() {
    const o = this.open;
    const keys = o.data.axes.map(keyOf);
    const rows = (o.table?.rows ?? []).filter((r) => r.status === "finished"); // the plot leaves the others out
    const numeric = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !keys.includes(k)
      && !["cell"].includes(k) && !HIDDEN_COLUMNS.test(k) && rows.some((r) => typeof r[k] === "number"));
    const section = el("section", { className: "studio-plot" });
    if (!numeric.length) {
      section.append(el("h4", { textContent: "Plot" }), el("p", { className: "note", textContent: rows.length ? "No metric yet: add a metric node (FID, KID, judge accuracy…) or rate the images." : "The plot appears when a cell has finished." }));
      return section;
    }
    const metrics = o.table?.metrics ?? [];
    o.metric = numeric.includes(o.metric) ? o.metric : metrics.find((m) => numeric.includes(m)) ?? numeric[0];
    if (o.series === undefined) o.series = o.y || null; // one line per y value, until a series is picked
    if (o.series && (o.series === o.x || !keys.includes(o.series))) o.series = null;
    const img = el("img", { className: "plot", alt: `${o.metric} against ${o.x}`,
      src: sweepUrl(o.id, "/plot.png", { x: o.x, metric: o.metric, series: o.series, v: String(Date.now()) }) });
    section.append(el("h4", {}, "Plot ",
      el("label", {}, "metric ", select("plot-metric", numeric.map((k) => [k, k]), o.metric, (v) => {
        o.metric = v;
        this.render();
      })),
      el("label", {}, " series ", select("plot-series", [["", "—"], ...keys.filter((k) => k !== o.x).map((k) => [k, k])], o.series, (v) => {
        o.series = v || null;
        this.render();
      }))), img);
    return section;
  }
}

/** Installs the Sweeps tab and the studio; run events reach it through app.runs.handle. */
export function installGridView(app) {
  const view = new GridView(app);
  app.grid = view;
  const handle = app.runs.handle.bind(app.runs);
  app.runs.handle = (ev) => {
    handle(ev);
    view.handle(ev);
  };
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && view.open && !document.querySelector(".rating-overlay:not([hidden])")) view.close();
  });
  view.refresh();
}
