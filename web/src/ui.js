// Small page pieces: toasts, side-panel tabs, gallery, lightbox, tooltips.

import { showPath } from "./paths.js";

const $ = (sel) => document.querySelector(sel);

/** Shows a short message; kind is info, ok, warn or error. */
export function toast(message, kind = "info", ms = 4500) {
  const box = $("#toasts");
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  el.textContent = message;
  box.append(el);
  while (box.children.length > 5) box.firstChild.remove();
  setTimeout(() => el.remove(), kind === "error" ? ms * 2 : ms);
  return el;
}

/** Switches the side panel to a tab (queue, gallery, problems). */
export function showTab(name) {
  for (const b of document.querySelectorAll(".tabs button")) {
    b.classList.toggle("active", b.dataset.tab === name);
  }
  for (const s of document.querySelectorAll(".tab")) {
    s.classList.toggle("active", s.id === `tab-${name}`);
  }
}

export function initTabs() {
  for (const b of document.querySelectorAll(".tabs button")) {
    b.addEventListener("click", () => showTab(b.dataset.tab));
  }
}

/** Opens an image full-size over the page. */
export function openLightbox(url, caption = "") {
  const box = $("#lightbox");
  box.querySelector(".comparer")?.remove(); // an image comparer (comparer.js) shown before
  box.querySelector("img").hidden = false;
  box.querySelector("img").src = url;
  box.querySelector(".caption").textContent = caption;
  box.hidden = false;
}

export function initLightbox() {
  const box = $("#lightbox");
  box.addEventListener("click", () => {
    box.hidden = true;
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !box.hidden) box.hidden = true;
  });
}

const GALLERY_LIMIT = 80;

/** Adds images to the gallery tab (newest first). */
export function addToGallery(items) {
  const gallery = $("#gallery");
  gallery.querySelector(".empty")?.remove();
  for (const item of [...items].reverse()) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = item.url;
    img.alt = item.caption;
    img.loading = "lazy";
    const cap = document.createElement("figcaption");
    showPath(cap, item.caption, 22); // "Save Image…_00004.png", the whole path as tooltip
    fig.dataset.kind = item.kind;
    if (item.run) fig.dataset.run = item.run; // ratings.js finds the image in its run
    fig.append(img, cap);
    fig.addEventListener("click", () => openLightbox(item.url, item.caption));
    gallery.prepend(fig);
  }
  while (gallery.children.length > GALLERY_LIMIT) gallery.lastChild.remove();
}

export function emptyGallery() {
  const gallery = $("#gallery");
  if (!gallery.children.length) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "Images from your runs appear here.";
    gallery.append(p);
  }
}

/** A tooltip that follows the mouse; null hides it. */
export function setTooltip(text, x = 0, y = 0) {
  const tip = $("#tooltip");
  if (!text) {
    tip.hidden = true;
    return;
  }
  tip.textContent = text;
  tip.hidden = false;
  tip.style.left = `${Math.min(x + 14, innerWidth - tip.offsetWidth - 8)}px`;
  tip.style.top = `${Math.min(y + 16, innerHeight - tip.offsetHeight - 8)}px`;
}

/** A floating panel (hidden at first) with a title and a × that hides it; returns the panel. */
export function floatPanel(id, title, className = "float-panel") {
  const panel = document.createElement("div");
  panel.id = id;
  panel.className = className;
  panel.hidden = true;
  const head = document.createElement("h3");
  head.textContent = title;
  const close = document.createElement("button");
  close.className = "close";
  close.textContent = "×";
  close.title = "Close (Esc)";
  close.addEventListener("click", () => {
    panel.hidden = true;
  });
  head.append(close);
  panel.append(head);
  return panel;
}
