// The mask painter of image inputs (load_image): paint the area to change over the uploaded
// picture. Save uploads a copy whose alpha carries the mask — alpha = 1 − mask, as load_image
// reads it (its mask output is 1 where the picture is transparent) — and points the widget at it.

import { fileUrl, uploadImage } from "./api.js";
import { setThumbnail, widgetHooks } from "./widgets.js";

// --- PNG pixels (exact RGB under transparent pixels, which a 2D canvas would lose) -----
const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i += 1) c = CRC[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function through(bytes, stream) {
  return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(stream)).arrayBuffer());
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set([...type].map((ch) => ch.charCodeAt(0)), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** An 8-bit RGBA PNG of `rgba` (rows filtered with "Sub"). */
export async function encodePng(width, height, rgba) {
  const stride = width * 4;
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y += 1) {
    const o = y * (stride + 1);
    const row = y * stride;
    raw[o] = 1;
    for (let i = 0; i < stride; i += 1) raw[o + 1 + i] = rgba[row + i] - (i >= 4 ? rgba[row + i - 4] : 0);
  }
  const head = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 8, 6, 0, 0, 0]); // 8-bit RGBA
  new DataView(head.buffer).setUint32(0, width);
  new DataView(head.buffer).setUint32(4, height);
  const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", head),
    chunk("IDAT", await through(raw, new CompressionStream("deflate"))), chunk("IEND", new Uint8Array(0))];
  return new Blob(parts, { type: "image/png" });
}

const CHANNELS = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** RGBA pixels of an 8-bit, non-interlaced grey/RGB(A) PNG; null for any other file. */
async function decodePng(buffer) {
  const b = new Uint8Array(buffer);
  const view = new DataView(buffer);
  if (b.length < 33 || b[1] !== 80 || b[2] !== 78 || b[3] !== 71) return null;
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const ch = CHANNELS[b[25]];
  if (b[24] !== 8 || !ch || b[28] !== 0) return null;
  const idat = [];
  for (let pos = 8; pos + 8 <= b.length;) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(...b.subarray(pos + 4, pos + 8));
    if (type === "IEND") break;
    if (type === "IDAT") idat.push(b.subarray(pos + 8, pos + 8 + len));
    pos += 12 + len;
  }
  const data = await through(new Blob(idat), new DecompressionStream("deflate"));
  const stride = width * ch;
  if (data.length < (stride + 1) * height) return null;
  const cur = new Uint8Array(stride);
  let prev = new Uint8Array(stride);
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y += 1) {
    const o = y * (stride + 1);
    const f = data[o];
    for (let i = 0; i < stride; i += 1) {
      const a = i >= ch ? cur[i - ch] : 0, up = prev[i], c = i >= ch ? prev[i - ch] : 0;
      let p = 0;
      if (f === 1) p = a;
      else if (f === 2) p = up;
      else if (f === 3) p = (a + up) >> 1;
      else if (f === 4) {
        const pa = Math.abs(up - c), pb = Math.abs(a - c), pc = Math.abs(a + up - 2 * c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
      }
      cur[i] = data[o + 1 + i] + p;
    }
    for (let x = 0; x < width; x += 1) {
      const s = x * ch, d = (y * width + x) * 4, g = ch < 3 ? 0 : 1;
      rgba[d] = cur[s];
      rgba[d + 1] = cur[s + g];
      rgba[d + 2] = cur[s + 2 * g];
      rgba[d + 3] = ch === 2 ? cur[s + 1] : ch === 4 ? cur[s + 3] : 255;
    }
    prev = Uint8Array.from(cur);
  }
  return { width, height, rgba };
}

/** The pixels of an upload: exact for plain PNGs, else as the browser decodes them. */
async function loadPixels(name) {
  const res = await fetch(fileUrl("upload", name));
  if (!res.ok) throw new Error(`${name}: ${res.status} ${res.statusText}`);
  const blob = await res.blob();
  const exact = await decodePng(await blob.arrayBuffer()).catch(() => null);
  if (exact) return exact;
  const bitmap = await createImageBitmap(blob, { premultiplyAlpha: "none" });
  const c = Object.assign(document.createElement("canvas"), { width: bitmap.width, height: bitmap.height });
  const ctx = c.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  return { width: c.width, height: c.height, rgba: ctx.getImageData(0, 0, c.width, c.height).data };
}

/** `<stem>-mask-<n>.png`, n past every such name already listed (the stem of a mask's own name). */
export function maskName(current, taken) {
  const stem = String(current).replace(/\.[^./]+$/, "").replace(/-mask-\d+$/, "") || "image";
  const used = new Set(taken);
  let n = 1;
  while (used.has(`${stem}-mask-${n}.png`)) n += 1;
  return `${stem}-mask-${n}.png`;
}

// --- the painter ---------------------------------------------------------------------
const TINT = [255, 64, 64];
function el(tag, props = {}, ...kids) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
}

class MaskPainter {
  constructor(node, widget, px) {
    this.node = node;
    this.widget = widget;
    this.px = px;
    this.tool = "brush";
    this.undo = [];
    this.maxUndo = Math.max(3, Math.min(40, Math.floor(2e8 / (px.width * px.height * 4))));
    this.view = { s: 1, x: 0, y: 0 };
    this.build();
  }

  build() {
    const { width, height, rgba } = this.px;
    const side = Math.max(width, height);
    const size = el("input", { type: "range", min: 1, max: Math.max(64, Math.min(1024, Math.round(side / 3))),
      value: Math.max(2, Math.round(Math.min(width, height) / 12)), className: "mp-size", title: "Brush size (image pixels; [ and ])" });
    const sizeText = el("span", { className: "mp-size-text", textContent: size.value });
    size.addEventListener("input", () => { sizeText.textContent = size.value; });
    this.size = size;
    const button = (text, act, title, cls = "") => {
      const b = el("button", { textContent: text, title, className: cls });
      b.dataset.act = act;
      b.addEventListener("click", () => this.act(act));
      return b;
    };
    this.tools = [button("Brush", "brush", "Paint the area to change (B)", "on"), button("Eraser", "eraser", "Erase (E)")];
    const bar = el("div", { className: "mp-bar" },
      el("span", { className: "mp-title", textContent: `Mask · ${this.widget.value}` }), ...this.tools,
      el("label", { className: "mp-label" }, "Size ", size, sizeText),
      button("Undo", "undo", "Undo the last stroke (Ctrl+Z)"), button("Clear", "clear", "Clear the mask"),
      button("Invert", "invert", "Invert the mask"), button("Fit", "fit", "Zoom to fit (.)"),
      el("span", { className: "mp-spacer" }),
      button("Cancel", "cancel", "Close without changes (Esc)"), button("Save", "save", "Upload a masked copy and use it", "primary"));
    this.image = el("canvas", { width, height, className: "mp-image" });
    const ictx = this.image.getContext("2d");
    const opaque = new Uint8ClampedArray(rgba);
    const mask = new Uint8ClampedArray(rgba.length);
    for (let i = 0; i < rgba.length; i += 4) {
      opaque[i + 3] = 255;
      mask.set(TINT, i);
      mask[i + 3] = 255 - rgba[i + 3]; // a mask painted before (mask = 1 − alpha)
    }
    ictx.putImageData(new ImageData(opaque, width, height), 0, 0);
    this.mask = el("canvas", { width, height, className: "mp-mask" });
    this.mctx = this.mask.getContext("2d", { willReadFrequently: true });
    this.mctx.putImageData(new ImageData(mask, width, height), 0, 0);
    this.stage = el("div", { className: "mp-stage" }, this.image, this.mask);
    this.cursor = el("div", { className: "mp-cursor", hidden: true });
    this.area = el("div", { className: "mp-view" }, this.stage, this.cursor);
    this.root = el("div", { className: "mask-painter", id: "mask-painter" }, bar, this.area,
      el("div", { className: "mp-hint", textContent: "Paint the area to change (transparent in the saved copy). "
        + "Wheel zooms, right- or middle-drag pans, [ ] size, B brush, E eraser, Ctrl+Z undo, Esc cancel." }));
    this.root.setAttribute("role", "dialog");
    this.area.addEventListener("pointerdown", (e) => this.down(e));
    this.area.addEventListener("pointermove", (e) => this.move(e));
    this.area.addEventListener("pointerup", (e) => this.up(e));
    this.area.addEventListener("pointercancel", (e) => this.up(e));
    this.area.addEventListener("pointerleave", () => { this.cursor.hidden = true; });
    this.area.addEventListener("contextmenu", (e) => e.preventDefault());
    this.area.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.onKey = (e) => this.key(e);
    window.addEventListener("keydown", this.onKey, true);
  }

  close() {
    window.removeEventListener("keydown", this.onKey, true);
    this.root.remove();
    if (current === this) current = null;
  }

  setTool(tool) {
    this.tool = tool;
    for (const b of this.tools) b.classList.toggle("on", b.dataset.act === tool);
  }

  async act(what) {
    if (what === "brush" || what === "eraser") this.setTool(what);
    else if (what === "undo") this.popUndo();
    else if (what === "clear") { this.pushUndo(); this.mctx.clearRect(0, 0, this.px.width, this.px.height); }
    else if (what === "invert") this.invert();
    else if (what === "fit") this.fit();
    else if (what === "cancel") this.close();
    else if (what === "save") await this.save();
  }

  pushUndo() {
    this.undo.push(this.mctx.getImageData(0, 0, this.px.width, this.px.height));
    if (this.undo.length > this.maxUndo) this.undo.shift();
  }

  popUndo() {
    if (this.undo.length) this.mctx.putImageData(this.undo.pop(), 0, 0);
  }

  invert() {
    this.pushUndo();
    const data = this.mctx.getImageData(0, 0, this.px.width, this.px.height);
    const d = data.data;
    for (let i = 0; i < d.length; i += 4) {
      d.set(TINT, i);
      d[i + 3] = 255 - d[i + 3];
    }
    this.mctx.putImageData(data, 0, 0);
  }

  fit() {
    const r = this.area.getBoundingClientRect();
    const s = Math.min(32, 0.94 * Math.min(r.width / this.px.width, r.height / this.px.height));
    this.view = { s, x: (r.width - this.px.width * s) / 2, y: (r.height - this.px.height * s) / 2 };
    this.place();
  }

  place() {
    const { s, x, y } = this.view;
    this.stage.style.transform = `translate(${x}px, ${y}px) scale(${s})`;
    this.stage.classList.toggle("pixelated", s >= 3);
  }

  /** Image coordinates of a pointer event. */
  at(e) {
    const r = this.area.getBoundingClientRect();
    return [(e.clientX - r.left - this.view.x) / this.view.s, (e.clientY - r.top - this.view.y) / this.view.s];
  }

  down(e) {
    this.area.setPointerCapture(e.pointerId);
    if (e.button === 1 || e.button === 2 || this.space) {
      this.pan = [e.clientX - this.view.x, e.clientY - this.view.y];
      return;
    }
    if (e.button !== 0) return;
    this.pushUndo();
    this.last = this.at(e);
    this.stroke(this.last, this.last);
  }

  move(e) {
    const r = this.area.getBoundingClientRect();
    const d = Number(this.size.value) * this.view.s;
    Object.assign(this.cursor.style, { width: `${d}px`, height: `${d}px`,
      transform: `translate(${e.clientX - r.left - d / 2}px, ${e.clientY - r.top - d / 2}px)` });
    this.cursor.hidden = false;
    if (this.pan) {
      this.view.x = e.clientX - this.pan[0];
      this.view.y = e.clientY - this.pan[1];
      this.place();
    } else if (this.last) {
      const p = this.at(e);
      this.stroke(this.last, p);
      this.last = p;
    }
  }

  up() {
    this.last = this.pan = null;
  }

  stroke(a, b) {
    const ctx = this.mctx;
    ctx.save();
    ctx.globalCompositeOperation = this.tool === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = `rgb(${TINT.join(",")})`;
    ctx.lineWidth = Number(this.size.value);
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a[0], a[1]);
    ctx.lineTo(b[0] + (a[0] === b[0] && a[1] === b[1] ? 0.01 : 0), b[1]);
    ctx.stroke();
    ctx.restore();
  }

  wheel(e) {
    e.preventDefault();
    const r = this.area.getBoundingClientRect();
    const [mx, my] = [e.clientX - r.left, e.clientY - r.top];
    const s = Math.max(0.02, Math.min(64, this.view.s * Math.exp(-e.deltaY * 0.0015)));
    const k = s / this.view.s;
    this.view = { s, x: mx - (mx - this.view.x) * k, y: my - (my - this.view.y) * k };
    this.place();
  }

  key(e) {
    if (e.type !== "keydown") return;
    if (e.target instanceof HTMLInputElement && e.target.type !== "range") return;
    e.stopImmediatePropagation();
    const k = e.key.toLowerCase();
    if (k === "escape") this.close();
    else if ((e.ctrlKey || e.metaKey) && k === "z") { e.preventDefault(); this.popUndo(); }
    else if (k === "b" || k === "e") this.setTool(k === "b" ? "brush" : "eraser");
    else if (k === "[" || k === "]") {
      this.size.value = Number(this.size.value) + (k === "]" ? 2 : -2);
      this.size.dispatchEvent(new Event("input"));
    } else if (k === ".") this.fit();
    else if (k === " ") { e.preventDefault(); this.space = true; window.addEventListener("keyup", () => { this.space = false; }, { once: true }); }
  }

  async save() {
    const { width, height, rgba } = this.px;
    const mask = this.mctx.getImageData(0, 0, width, height).data;
    const out = new Uint8ClampedArray(rgba);
    for (let i = 3; i < out.length; i += 4) out[i] = 255 - mask[i];
    const w = this.widget;
    const name = maskName(w.value, w.options.values ?? []);
    for (const b of this.root.querySelectorAll("button")) b.disabled = true;
    try {
      const stored = await uploadImage(new File([await encodePng(width, height, out)], name, { type: "image/png" }));
      if (!w.options.values.includes(stored)) w.options.values.push(stored);
      w.value = stored;
      setThumbnail(this.node, stored);
      widgetHooks.changed(this.node, w.name);
      widgetHooks.toast(`Mask saved as ${stored}`, "ok");
      this.close();
    } catch (err) {
      widgetHooks.toast(`Saving the mask failed: ${err.message}`, "error");
      for (const b of this.root.querySelectorAll("button")) b.disabled = false;
    }
  }
}

let current = null;

/** Does this node get a mask painter? An image-file input on a node with a Mask output. */
export function canPaintMask(node) {
  return Boolean(node?.loom?.schema?.outputs?.some((o) => o.type === "Mask"));
}

/** Opens the painter over the picture chosen in `widget` (an image-file combo of `node`). */
export async function openMaskPainter(node, widget) {
  if (current) return current;
  if (!widget?.value) {
    widgetHooks.toast("Upload an image first, then paint its mask", "warn");
    return null;
  }
  let px;
  try {
    px = await loadPixels(widget.value);
  } catch (err) {
    widgetHooks.toast(`Cannot open ${widget.value}: ${err.message}`, "error");
    return null;
  }
  if (current) return current;
  current = new MaskPainter(node, widget, px);
  document.body.append(current.root);
  current.fit();
  return current;
}

function imageWidget(node) {
  return node.widgets?.find((w) => node.loom?.schema?.inputs.find((i) => i.name === w.loomInput)?.type === "image_file");
}

/** Wires the "paint mask…" buttons and a node menu entry. */
export function installMaskPainter(app) {
  widgetHooks.paintMask = (node, widget) => openMaskPainter(node, widget);
  const canvas = app.canvas;
  const nodeMenu = canvas.getNodeMenuOptions.bind(canvas);
  canvas.getNodeMenuOptions = (node) => {
    const items = nodeMenu(node);
    const w = imageWidget(node);
    if (canPaintMask(node) && w) items.unshift({ content: "Paint mask…", callback: () => openMaskPainter(node, w) }, null);
    return items;
  };
  app.maskPainter = () => current;
}
