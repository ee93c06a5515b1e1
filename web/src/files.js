// Opening and saving workflows: files, PNGs, drag and drop, the server's library.

import { api, listWorkflows } from "./api.js";
import { isComfyFile, openComfy } from "./comfy.js";
import { schemas } from "./nodes.js";
import { isPng, workflowFromPng } from "./png.js";
import { toast } from "./ui.js";
import { uploadIntoWidget } from "./widgets.js";

const $ = (sel) => document.querySelector(sel);
const DEFAULT_NAME = "text_to_image";

function safeName(text) {
  const name = String(text || "").trim().replace(/[^\w\-.]+/g, "_").replace(/^[_.]+|[_.]+$/g, "");
  return (name || "workflow").slice(0, 80);
}

/** Reads a dropped or chosen file as a workflow (JSON or a Loom PNG). */
export async function workflowFromFile(file) {
  const buffer = await file.arrayBuffer();
  if (isPng(buffer)) return workflowFromPng(buffer);
  const text = new TextDecoder().decode(buffer);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file.name} is neither a workflow JSON file nor a Loom PNG (${err.message})`);
  }
}

async function openFile(app, file) {
  const buffer = await file.arrayBuffer();
  if (await isComfyFile(buffer)) return openComfy(app, buffer, file.name);
  try {
    const wf = await workflowFromFile(file);
    app.load(wf);
    toast(`Opened ${file.name}`, "ok");
  } catch (err) {
    toast(`Cannot open ${file.name}: ${err.message}`, "error");
  }
}

/** Opens a workflow by name from /api/workflows. */
export async function openNamed(app, name) {
  const wf = await api(`/api/workflows/${encodeURIComponent(name)}`);
  app.load(wf.workflow && wf.workflow.nodes ? wf.workflow : wf);
}

/** Opens the default workflow (text_to_image, else the first example). */
export async function openDefault(app) {
  try {
    const list = await listWorkflows();
    const pick = list.find((w) => w.name === DEFAULT_NAME) ?? list.find((w) => w.source === "example") ?? list[0];
    if (pick) {
      await openNamed(app, pick.name);
      return;
    }
  } catch (err) {
    toast(`Could not open the default workflow: ${err.message}`, "warn");
  }
  app.load({ format: "loom.workflow", version: 1, nodes: {} });
}

/** Fills the Workflows… menu. */
export async function loadExamplesList(app) {
  const select = $("#examples");
  try {
    const list = await listWorkflows();
    const keep = select.options[0];
    select.replaceChildren(keep);
    const groups = new Map();
    for (const w of list) {
      const label = w.source === "saved" || w.source === "user" ? "Saved" : "Examples";
      if (!groups.has(label)) {
        const og = document.createElement("optgroup");
        og.label = label;
        groups.set(label, og);
      }
      const opt = document.createElement("option");
      opt.value = w.name;
      opt.textContent = w.title && w.title !== w.name ? `${w.title} (${w.name})` : w.name;
      groups.get(label).append(opt);
    }
    select.append(...groups.values());
  } catch (err) {
    toast(`Could not list workflows: ${err.message}`, "warn");
  }
}

function download(name, text) {
  const blob = new Blob([text], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function nodeWithImageInputAt(app, e) {
  const rect = app.canvas.canvas.getBoundingClientRect();
  const [gx, gy] = app.canvas.ds.convertCanvasToOffset([e.clientX - rect.left, e.clientY - rect.top]);
  const node = app.graph.getNodeOnPos(gx, gy);
  const widget = node?.widgets?.find((w) => w.loomInput
    && node.loom?.schema?.inputs.find((i) => i.name === w.loomInput)?.type === "image_file");
  return { node, widget, pos: [gx, gy] };
}

async function dropImage(app, e, file) {
  const { node, widget, pos } = nodeWithImageInputAt(app, e);
  if (node && widget) {
    await uploadIntoWidget(node, widget, file);
    return;
  }
  const schema = [...schemas.values()].find((s) => s.inputs.some((i) => i.type === "image_file"));
  if (!schema) {
    toast("No installed node takes an uploaded image", "warn");
    return;
  }
  const added = app.addNode(schema.id, pos);
  const w = added?.widgets?.find((x) => schema.inputs.find((i) => i.name === x.loomInput)?.type === "image_file");
  if (w) await uploadIntoWidget(added, w, file);
}

function installDrop(app) {
  const wrap = $("#canvas-wrap");
  const hint = $("#drop-hint");
  let depth = 0;
  wrap.addEventListener("dragenter", (e) => {
    if (!e.dataTransfer?.types.includes("Files")) return;
    depth += 1;
    hint.hidden = false;
  });
  wrap.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) hint.hidden = true;
  });
  wrap.addEventListener("dragover", (e) => {
    if (e.dataTransfer?.types.includes("Files")) e.preventDefault();
  });
  wrap.addEventListener("drop", async (e) => {
    depth = 0;
    hint.hidden = true;
    const file = e.dataTransfer?.files?.[0];
    if (!file) return;
    e.preventDefault();
    const buffer = await file.arrayBuffer();
    if (await isComfyFile(buffer)) {
      await openComfy(app, buffer, file.name);
      return;
    }
    if (isPng(buffer)) {
      try {
        app.load(await workflowFromPng(buffer));
        toast(`Opened the workflow inside ${file.name}`, "ok");
        return;
      } catch {
        // a plain PNG: treat it as an image to upload below
      }
    }
    if (file.type.startsWith("image/")) {
      await dropImage(app, e, file);
      return;
    }
    await openFile(app, file);
  });
}

/** Wires the file buttons, the workflow menu, drag and drop, and the title. */
export function initFiles(app) {
  const input = $("#file-input");
  $("#btn-load").addEventListener("click", () => input.click());
  input.addEventListener("change", async () => {
    const file = input.files?.[0];
    input.value = "";
    if (file) await openFile(app, file);
  });
  $("#btn-save").addEventListener("click", () => {
    const wf = app.exportWorkflow();
    download(`${safeName(app.meta.title)}.json`, `${JSON.stringify(wf, null, 2)}\n`);
    app.history.markSaved();
  });
  $("#btn-save-server").addEventListener("click", async () => {
    const name = prompt("Save as (name in the library):", safeName(app.meta.title));
    if (!name) return;
    try {
      await api(`/api/workflows/${encodeURIComponent(safeName(name))}`, { method: "PUT", json: app.exportWorkflow() });
      app.history.markSaved();
      toast(`Saved ${safeName(name)} to the library`, "ok");
      loadExamplesList(app);
    } catch (err) {
      toast(`Save failed: ${err.message}`, "error");
    }
  });
  $("#btn-new").addEventListener("click", () => {
    app.load({ format: "loom.workflow", version: 1, nodes: {}, meta: { title: "Untitled workflow" } });
  });
  const select = $("#examples");
  select.addEventListener("change", async () => {
    const name = select.value;
    select.value = "";
    if (!name) return;
    try {
      await openNamed(app, name);
    } catch (err) {
      toast(`Cannot open ${name}: ${err.message}`, "error");
    }
  });
  $("#wf-title").addEventListener("dblclick", () => {
    const title = prompt("Workflow title:", app.meta.title ?? "");
    if (title === null) return;
    app.meta = { ...app.meta, title };
    $("#wf-title").textContent = title || "Untitled workflow";
    app.history.record();
  });
  installDrop(app);
}
