// The live image comparer: two images in one frame, split by a slider; the split follows the
// pointer (hover or drag). On the canvas, a `compare_images` node draws its two images (ui.images
// [a, b] of its run) this way; in the Gallery tab, Shift-click (or Ctrl-click) two images and
// press Compare to open them in the lightbox. a is on the left of the split, b on the right;
// b is drawn in a's frame (scaled to a's size when the sizes differ).

import { openLightbox } from "./ui.js";

/** Nodes of this type draw their two images as one split picture. */
export const COMPARE_TYPE = "compare_images";

const clamp01 = (v) => Math.min(1, Math.max(0, v));
const ready = (im) => im && im.complete && im.naturalWidth > 0;

// --- on the canvas ------------------------------------------------------------------------

/** The node's two images when both have loaded, else null. */
function pairOf(node) {
  const st = node.loom;
  if (node.type !== COMPARE_TYPE || !st || node.flags?.collapsed || st.status === "running") return null;
  const [a, b] = st.images ?? [];
  return ready(a) && ready(b) ? [a, b] : null;
}

/** Where the picture goes in the node (node coordinates): a's aspect, fitted under the widgets. */
function pictureRect(node, a) {
  const pad = 8;
  const top = node.loom.contentBottom ?? 40;
  const w = node.size[0] - 2 * pad;
  const h = node.size[1] - top - pad;
  if (w < 16 || h < 16) return null;
  const s = Math.min(w / a.naturalWidth, h / a.naturalHeight);
  const dw = a.naturalWidth * s;
  const dh = a.naturalHeight * s;
  return [pad + (w - dw) / 2, top + (h - dh) / 2, dw, dh];
}

function drawPicture(ctx, node, [a, b]) {
  const rect = pictureRect(node, a);
  node.loom.compareRect = rect;
  node.loom.imageRects = rect ? [{ image: a, rect }] : [];
  if (!rect) return;
  const [x, y, w, h] = rect;
  const split = node.loomSplit ?? 0.5;
  const sx = x + w * split;
  ctx.save();
  ctx.imageSmoothingEnabled = w < a.naturalWidth;
  ctx.drawImage(a, x, y, w, h);
  ctx.beginPath();
  ctx.rect(sx, y, x + w - sx, h);
  ctx.clip();
  ctx.drawImage(b, x, y, w, h);
  ctx.restore();
  ctx.save();
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(Math.round(sx) - 1, y, 2, h);
  ctx.beginPath();
  ctx.arc(sx, y + h / 2, 6, 0, Math.PI * 2);
  ctx.fill();
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "top";
  for (const [label, lx, align] of [["a", x + 4, "left"], ["b", x + w - 4, "right"]]) {
    ctx.textAlign = align;
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillRect(align === "left" ? lx - 2 : lx - 10, y + 3, 12, 14);
    ctx.fillStyle = "#ffffff";
    ctx.fillText(label, align === "left" ? lx + 1 : lx - 1, y + 4);
  }
  ctx.restore();
}

/** Whether a node-local point is on the picture; moves the split there when it is. */
function moveSplit(node, pos, canvas) {
  const rect = node.loom?.compareRect;
  if (!pairOf(node) || !rect) return false;
  const [x, y, w, h] = rect;
  if (pos[0] < x || pos[0] > x + w || pos[1] < y || pos[1] > y + h) return false;
  node.loomSplit = clamp01((pos[0] - x) / w);
  canvas?.setDirty(true, false);
  return true;
}

/** Pointer handlers of a compare node (installed on its first draw). */
function installHandlers(node) {
  if (node.loomCompare) return;
  node.loomCompare = true;
  const dbl = node.onDblClick;
  node.onMouseMove = function onMouseMove(e, pos, canvas) {
    moveSplit(this, pos, canvas);
  };
  node.onMouseDown = function onMouseDown(e, pos, canvas) {
    if (e.button !== 0 || !moveSplit(this, pos, canvas)) return false;
    canvas.processSelect?.(this, e); // a press on the picture still selects the node, but drags the split
    return true;
  };
  node.onDblClick = function onDblClick(e, pos, canvas) {
    const pair = pairOf(this);
    const rect = this.loom?.compareRect;
    const inside = rect && pos[0] >= rect[0] && pos[0] <= rect[0] + rect[2]
      && pos[1] >= rect[1] && pos[1] <= rect[1] + rect[3];
    if (pair && inside) {
      const [a, b] = pair;
      openComparer({ url: a.src, caption: `${this.title} · a` }, { url: b.src, caption: `${this.title} · b` });
      return;
    }
    dbl?.call(this, e, pos, canvas);
  };
}

/** Draws compare nodes' images as one split picture (wraps LGraphCanvas.drawNode, as modes.js does). */
export function installCanvasComparer(canvas) {
  const drawNode = canvas.drawNode;
  canvas.drawNode = function drawCompareNode(node, ctx) {
    const pair = pairOf(node);
    if (!pair) {
      drawNode.call(this, node, ctx);
      return;
    }
    installHandlers(node);
    const images = node.loom.images;
    node.loom.images = []; // the node draws everything else as usual, then the picture on top
    try {
      drawNode.call(this, node, ctx);
    } finally {
      node.loom.images = images;
    }
    drawPicture(ctx, node, pair);
  };
}

// --- in the lightbox ------------------------------------------------------------------------

/** A comparer element: `a` left of the split, `b` right of it; the split follows the pointer. */
export function buildComparer(a, b) {
  const el = document.createElement("div");
  el.className = "comparer";
  el.tabIndex = 0;
  el.setAttribute("role", "slider");
  el.setAttribute("aria-label", "Split between the two images (← →)");
  el.setAttribute("aria-valuemin", "0");
  el.setAttribute("aria-valuemax", "100");
  const imgA = new Image();
  imgA.className = "a";
  imgA.alt = a.caption ?? "a";
  imgA.src = a.url;
  const imgB = new Image();
  imgB.className = "b";
  imgB.alt = b.caption ?? "b";
  imgB.src = b.url;
  imgA.addEventListener("load", () => fitSize(imgA));
  for (const img of [imgA, imgB]) img.draggable = false; // a drag moves the split, not the image
  const handle = document.createElement("div");
  handle.className = "handle";
  el.append(imgA, imgB, handle);
  const set = (f) => {
    const v = clamp01(f);
    el.dataset.split = v.toFixed(4);
    el.setAttribute("aria-valuenow", String(Math.round(v * 100)));
    imgB.style.clipPath = `inset(0 0 0 ${(v * 100).toFixed(3)}%)`;
    handle.style.left = `${(v * 100).toFixed(3)}%`;
  };
  const fromPointer = (e) => {
    const r = imgA.getBoundingClientRect();
    if (r.width > 0) set((e.clientX - r.left) / r.width);
  };
  el.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    el.focus({ preventScroll: true });
    el.setPointerCapture?.(e.pointerId);
    fromPointer(e);
  });
  el.addEventListener("pointermove", fromPointer);
  el.addEventListener("click", (e) => e.stopPropagation()); // a click here does not close the lightbox
  el.addEventListener("keydown", (e) => {
    const now = Number(el.dataset.split);
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.preventDefault();
      set(now + (e.key === "ArrowLeft" ? -0.05 : 0.05));
    }
  });
  set(0.5);
  return el;
}

const MIN_SIDE = 480; // small images are enlarged (pixelated) to at least this, within the window

/** Sizes the comparer's picture: a's size, enlarged when small, shrunk to fit the window. */
function fitSize(img) {
  const w = img.naturalWidth;
  const h = img.naturalHeight;
  if (!w || !h) return;
  const s = Math.min(innerWidth * 0.92 / w, innerHeight * 0.8 / h, Math.max(1, MIN_SIDE / Math.max(w, h)));
  img.style.width = `${Math.round(w * s)}px`;
  img.style.height = `${Math.round(h * s)}px`;
}

/** Opens two images ({url, caption}) in the lightbox, split by a slider. */
export function openComparer(a, b) {
  openLightbox(a.url, `${a.caption ?? "a"}  ◀ a | b ▶  ${b.caption ?? "b"}`);
  const box = document.querySelector("#lightbox");
  box.querySelector("img").hidden = true;
  const el = buildComparer(a, b);
  box.querySelector(".caption").before(el);
  el.focus({ preventScroll: true });
  return el;
}

// --- in the gallery -----------------------------------------------------------------------

/** Shift/Ctrl-click picks up to two gallery images; Compare opens them in the comparer. */
export function installGalleryCompare() {
  const gallery = document.querySelector("#gallery");
  const tools = document.createElement("div");
  tools.className = "tab-tools gallery-tools";
  const hint = document.createElement("span");
  hint.className = "hint";
  hint.textContent = "Shift-click two images to compare";
  const button = document.createElement("button");
  button.id = "btn-compare";
  button.textContent = "Compare";
  button.title = "Open the two picked images in the comparer (a slider between them)";
  tools.append(hint, button);
  gallery.before(tools);
  let picked = [];
  const render = () => {
    picked = picked.filter((f) => f.isConnected);
    for (const f of gallery.querySelectorAll("figure.picked")) {
      if (!picked.includes(f)) f.classList.remove("picked");
    }
    picked.forEach((f, i) => {
      f.classList.add("picked");
      f.dataset.pick = i ? "b" : "a";
    });
    button.disabled = picked.length !== 2;
  };
  gallery.addEventListener("click", (e) => {
    const fig = e.target.closest?.("figure");
    if (!fig || !(e.shiftKey || e.ctrlKey || e.metaKey)) return;
    e.stopPropagation(); // capture phase: the figure's own click (the lightbox) does not run
    e.preventDefault();
    picked = picked.includes(fig) ? picked.filter((f) => f !== fig) : [...picked, fig].slice(-2);
    render();
  }, true);
  button.addEventListener("click", () => {
    render();
    if (picked.length !== 2) return;
    const [a, b] = picked.map((f) => ({ url: f.querySelector("img").src, caption: f.querySelector("figcaption")?.title
      || f.querySelector("figcaption")?.textContent || "" }));
    openComparer(a, b);
  });
  new MutationObserver(render).observe(gallery, { childList: true });
  render();
}
