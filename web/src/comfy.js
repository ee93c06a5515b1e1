// ComfyUI files on the canvas: recognise a dropped or loaded ComfyUI JSON or PNG, have the
// server convert it (POST /api/convert), open the result and show the report in a panel.
// Nodes Loom has no counterpart for arrive as placeholders (red stand-ins that keep their data).

import { api } from "./api.js";
import { isPng, pngText } from "./png.js";
import { toast } from "./ui.js";

const ORDER = { problem: 0, unmapped: 1, changed: 2, note: 3, dissolved: 4, mapped: 5 };
const STYLE = `
#import-report { position: fixed; left: 12px; bottom: 12px; width: min(520px, 60vw); max-height: 46vh;
  display: flex; flex-direction: column; z-index: 55; background: var(--panel); color: var(--text);
  border: 1px solid var(--line); border-radius: 6px; box-shadow: 0 6px 24px #0008; font-size: 12px; }
#import-report header { display: flex; gap: 8px; align-items: center; padding: 6px 8px;
  border-bottom: 1px solid var(--line); }
#import-report header .title { font-weight: 600; flex: 1; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
#import-report header .state { font-weight: 600; }
#import-report header .state.complete { color: var(--ok); }
#import-report header .state.incomplete { color: var(--warn); }
#import-report .counts { padding: 4px 8px; color: var(--muted); }
#import-report ul { list-style: none; margin: 0; padding: 0 8px 8px; overflow: auto; }
#import-report li { padding: 3px 4px; border-bottom: 1px solid #ffffff0d; cursor: default; }
#import-report li[data-node] { cursor: pointer; }
#import-report li[data-node]:hover { background: var(--panel-2); }
#import-report .kind { display: inline-block; min-width: 70px; color: var(--muted); }
#import-report li.problem .kind { color: var(--bad); }
#import-report li.unmapped .kind { color: var(--warn); }
#import-report li.changed .kind { color: #c9a0ff; }
#import-report .where { font-weight: 600; margin-right: 4px; }`;

/** Whether parsed JSON is a ComfyUI workflow: its UI format or its API format. */
export function looksLikeComfy(data) {
  if (!data || typeof data !== "object" || Array.isArray(data) || "format" in data) return false;
  if (Array.isArray(data.nodes)) return true;
  const nodes = data.prompt && typeof data.prompt === "object" ? data.prompt : data;
  return Object.values(nodes).some((v) => v && typeof v === "object" && typeof v.class_type === "string");
}

/** Whether a file's bytes hold a ComfyUI workflow (a PNG with ComfyUI's chunks and no Loom one). */
export async function isComfyFile(buffer) {
  if (isPng(buffer)) {
    const text = await pngText(buffer).catch(() => ({}));
    return !("loom.workflow" in text) && ("workflow" in text || "prompt" in text);
  }
  try {
    return looksLikeComfy(JSON.parse(new TextDecoder().decode(buffer)));
  } catch {
    return false;
  }
}

function stem(name) {
  return String(name || "ComfyUI workflow").replace(/\.(json|png)$/i, "");
}

function element(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

function focusNode(app, id) {
  const node = app.nodeById?.(id);
  if (!node) return;
  app.canvas.selectNode?.(node);
  app.canvas.centerOnNode?.(node);
  app.canvas.setDirty(true, true);
}

/** Shows a conversion report in a panel over the canvas (replacing the previous one). */
export function showReport(app, report, name) {
  if (!document.querySelector("#import-report-style")) {
    const style = element("style");
    style.id = "import-report-style";
    style.textContent = STYLE;
    document.head.append(style);
  }
  document.querySelector("#import-report")?.remove();
  const panel = element("aside");
  panel.id = "import-report";
  const head = element("header");
  const complete = Boolean(report?.complete);
  head.append(element("span", "title", `${name}: ${report?.source ?? "imported"}`),
    element("span", `state ${complete ? "complete" : "incomplete"}`,
      complete ? "every node mapped" : "some nodes not mapped"));
  const close = element("button", "close", "×");
  close.title = "Close the report";
  close.addEventListener("click", () => panel.remove());
  head.append(close);
  const counts = Object.entries(report?.counts ?? {}).map(([k, v]) => `${v} ${k}`).join(" · ");
  const list = element("ul");
  const entries = [...(report?.entries ?? [])].sort((a, b) => (ORDER[a.kind] ?? 9) - (ORDER[b.kind] ?? 9));
  for (const e of entries) {
    const li = element("li", e.kind);
    li.append(element("span", "kind", e.kind));
    if (e.node != null) li.append(element("span", "where", `${e.node} ${e.type ?? ""}`.trim()));
    li.append(element("span", "msg", e.message ?? ""));
    const target = Array.isArray(e.loom) && e.loom.length ? e.loom[0] : null;
    if (target != null) {
      li.dataset.node = target;
      li.addEventListener("click", () => focusNode(app, target));
    }
    list.append(li);
  }
  panel.append(head, element("div", "counts", counts), list);
  document.body.append(panel);
  return panel;
}

/** Converts a ComfyUI file on the server, opens the result and shows the report. */
export async function openComfy(app, buffer, name) {
  try {
    const res = await api("/api/convert", { method: "POST", body: new Blob([buffer]) });
    const wf = res.workflow;
    const title = wf.meta?.title;
    if (!title || title === "Imported ComfyUI workflow") wf.meta = { ...(wf.meta ?? {}), title: stem(name) };
    app.load(wf);
    showReport(app, res.report, name);
    const complete = Boolean(res.report?.complete);
    toast(complete ? `Converted ${name} from ComfyUI` : `Converted ${name} from ComfyUI; some nodes have no `
      + "Loom counterpart yet (see the report)", complete ? "ok" : "warn");
  } catch (err) {
    if (err.body?.report) showReport(app, err.body.report, name);
    toast(`Cannot open ${name}: ${err.message}`, "error");
  }
}
