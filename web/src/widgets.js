// Widgets built from input schemas: numbers, text, multiline text (a DOM textarea),
// combos, toggles, seeds with "after run" control, and image inputs with upload.

import { fileUrl, uploadImage } from "./api.js";

export const SEED_CONTROLS = ["randomize", "increment", "decrement", "fixed"];
const SEED_MAX = 2 ** 53 - 1;

/** Decimal places implied by a step (0.01 → 2). */
function decimals(step) {
  if (!step || Number.isInteger(step)) return 0;
  const text = String(step);
  if (text.includes("e-")) return Number(text.split("e-")[1]);
  return text.split(".")[1]?.length ?? 0;
}

function roundTo(value, places) {
  const f = 10 ** places;
  return Math.round(value * f) / f;
}

/** Hooks the app gives widgets: a change callback and the canvas for DOM widgets. */
export const widgetHooks = {
  changed: (_node, _name) => {},
  toast: (_msg, _kind) => {},
  grow: (_node) => {}, // make room on a node for a thumbnail that just loaded
  paintMask: (_node, _widget) => {}, // open the mask painter (mask_painter.js)
  canvas: null,
  container: null,
};

// --- DOM textareas that follow the canvas transform -----------------------------
const drawn = new Set();
const allDom = new Set();

/** Called at the start of each canvas frame. */
export function domFrameStart() {
  drawn.clear();
}

/** Called at the end of each canvas frame: hides textareas whose node was not drawn. */
export function domFrameEnd() {
  for (const el of allDom) {
    if (!drawn.has(el) && el.style.display !== "none") el.style.display = "none";
  }
}

/** Removes the DOM elements of a node's widgets (node deleted or graph cleared). */
export function disposeNodeDom(node) {
  for (const w of node.widgets ?? []) {
    if (w.element) {
      w.element.remove();
      allDom.delete(w.element);
    }
  }
}

function textareaWidget(node, inp, value) {
  const el = document.createElement("textarea");
  el.value = value ?? "";
  el.placeholder = inp.help || inp.name;
  el.spellcheck = false;
  el.dataset.node = String(node.id);
  el.dataset.input = inp.name;
  el.style.display = "none";
  widgetHooks.container.appendChild(el);
  allDom.add(el);
  let last = "";
  const widget = {
    type: "loom_textarea",
    name: inp.name,
    label: inp.label,
    tooltip: inp.help,
    options: { multiline: true },
    y: 0,
    element: el,
    get value() {
      return el.value;
    },
    set value(v) {
      el.value = v ?? "";
    },
    computeLayoutSize() {
      return { minHeight: 56, maxHeight: 100000, minWidth: 120 };
    },
    draw(ctx, n, width, y) {
      const canvas = widgetHooks.canvas;
      if (!canvas) return;
      const { scale, offset } = canvas.ds;
      const h = Math.max(20, (this.computedHeight ?? 60) - 6);
      const x = (n.pos[0] + 10 + offset[0]) * scale;
      const top = (n.pos[1] + y + 2 + offset[1]) * scale;
      const key = `${x.toFixed(1)},${top.toFixed(1)},${scale},${width},${h}`;
      if (key !== last) {
        el.style.transform = `translate(${x}px, ${top}px) scale(${scale})`;
        el.style.width = `${width - 20}px`;
        el.style.height = `${h}px`;
        last = key;
      }
      const linked = n.getSlotFromWidget?.(this)?.link != null;
      if (el.disabled !== linked) el.disabled = linked;
      if (el.style.display === "none") el.style.display = "";
      drawn.add(el);
    },
  };
  el.addEventListener("input", () => widgetHooks.changed(node, inp.name));
  el.addEventListener("pointerdown", () => widgetHooks.canvas?.selectNode?.(node));
  return widget;
}

// --- image inputs -----------------------------------------------------------------
function pickFile(accept) {
  return new Promise((resolve) => {
    const input = document.createElement("input");
    input.type = "file";
    input.accept = accept;
    input.addEventListener("change", () => resolve(input.files?.[0] ?? null));
    input.click();
  });
}

/** Uploads a file into a node's image widget and selects it. */
export async function uploadIntoWidget(node, widget, file) {
  try {
    const name = await uploadImage(file);
    const values = widget.options.values;
    if (!values.includes(name)) values.push(name);
    widget.value = name;
    setThumbnail(node, name);
    widgetHooks.changed(node, widget.name);
    widgetHooks.toast(`Uploaded ${name}`, "ok");
  } catch (err) {
    widgetHooks.toast(`Upload failed: ${err.message}`, "error");
  }
}

/** Shows the chosen upload as the node's thumbnail. */
export function setThumbnail(node, name) {
  if (!name) {
    node.loom.thumbnail = null;
  } else {
    const img = new Image();
    img.onload = () => {
      if (node.loom.thumbnail === img) widgetHooks.grow(node);
      node.setDirtyCanvas(true, false);
    };
    img.onerror = () => {
      if (node.loom.thumbnail === img) node.loom.thumbnail = null;
      node.setDirtyCanvas(true, false);
    };
    img.src = fileUrl("upload", name);
    node.loom.thumbnail = img;
  }
  node.setDirtyCanvas(true, false);
}

// --- building the widget of one input ----------------------------------------------
function numberOptions(inp, isInt) {
  const step = inp.step ?? (isInt ? 1 : 0.01);
  const opts = { step2: step, precision: isInt ? 0 : Math.max(decimals(step), 1) };
  if (inp.min != null) opts.min = inp.min;
  if (inp.max != null) opts.max = inp.max;
  return opts;
}

/** Adds the widget(s) for one widget input and returns the main widget. */
export function addInputWidget(node, inp) {
  const changed = () => widgetHooks.changed(node, inp.name);
  const dflt = inp.default;
  let w;
  switch (inp.type) {
    case "int":
    case "seed": {
      const opts = numberOptions(inp, true);
      if (inp.type === "seed") {
        opts.min ??= 0;
        opts.max ??= SEED_MAX;
      }
      w = node.addWidget("number", inp.name, dflt ?? 0, (v) => {
        w.value = Math.round(Number(v));
        changed();
      }, opts);
      break;
    }
    case "float": {
      const opts = numberOptions(inp, false);
      w = node.addWidget("number", inp.name, dflt ?? 0, (v) => {
        w.value = roundTo(Number(v), Math.max(opts.precision, 6));
        changed();
      }, opts);
      break;
    }
    case "bool":
      w = node.addWidget("toggle", inp.name, Boolean(dflt), changed, { on: "true", off: "false" });
      break;
    case "str":
      if (inp.multiline) {
        w = node.addCustomWidget(textareaWidget(node, inp, dflt));
      } else {
        w = node.addWidget("text", inp.name, dflt ?? "", changed, {});
      }
      break;
    default: {
      // combo, model_file, image_file: a list of choices from the schema
      const values = [...(inp.choices ?? [])];
      const value = dflt ?? values[0] ?? "";
      w = node.addWidget("combo", inp.name, value, (v) => {
        if (inp.type === "image_file") setThumbnail(node, v);
        changed();
      }, { values });
    }
  }
  w.loomInput = inp.name;
  if (inp.label) w.label = inp.label;
  if (inp.help) w.tooltip = inp.help;
  else if (inp.model_kind) w.tooltip = `model files found under models/${inp.model_kind}/ (right-click the canvas › Reload to rescan)`;
  if (inp.randomize || inp.type === "seed") {
    const control = node.addWidget("combo", `${inp.name} after run`, "randomize", () => changed(),
      { values: SEED_CONTROLS });
    control.loomControlFor = inp.name;
    control.tooltip = "What happens to the seed after each queued run";
  }
  if (inp.upload || inp.type === "image_file") {
    const button = node.addWidget("button", `upload ${inp.name}…`, null, async () => {
      const file = await pickFile("image/*");
      if (file) await uploadIntoWidget(node, w, file);
    }, {});
    button.serialize = false;
    button.loomUploadFor = inp.name;
    if (node.loom?.schema?.outputs?.some((o) => o.type === "Mask")) {
      const paint = node.addWidget("button", "paint mask…", null, () => widgetHooks.paintMask(node, w), {});
      paint.serialize = false;
      paint.loomMaskFor = inp.name;
      paint.tooltip = "Paint the area to change; saved as a copy whose transparency is the mask";
    }
    if (w.value) setThumbnail(node, w.value);
  }
  return w;
}

/** Applies "after run" seed controls to every seed widget of a node. */
export function applySeedControls(node) {
  for (const control of node.widgets ?? []) {
    if (!control.loomControlFor) continue;
    const seed = node.widgets.find((w) => w.loomInput === control.loomControlFor);
    if (!seed || node.getSlotFromWidget?.(seed)?.link != null) continue;
    const max = seed.options.max ?? SEED_MAX;
    const min = seed.options.min ?? 0;
    if (control.value === "randomize") {
      const span = Math.min(max - min, 2 ** 32 - 1);
      seed.value = min + Math.floor(Math.random() * (span + 1));
    } else if (control.value === "increment") {
      seed.value = Math.min(max, seed.value + 1);
    } else if (control.value === "decrement") {
      seed.value = Math.max(min, seed.value - 1);
    }
  }
}
