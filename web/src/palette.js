// The searchable node palette: double-click the canvas (or press Space/Tab), type, Enter.

import { canConnect, inputSlotType, inputTypeName, schemas } from "./nodes.js";

const MAX_RESULTS = 60;

function score(schema, words) {
  const title = schema.title.toLowerCase();
  const id = schema.id.toLowerCase();
  const cat = (schema.category || "").toLowerCase();
  const desc = (schema.description || "").toLowerCase();
  let total = 0;
  for (const w of words) {
    if (title.startsWith(w)) total += 100;
    else if (title.split(/\s+/).some((part) => part.startsWith(w))) total += 60;
    else if (title.includes(w)) total += 40;
    else if (id.includes(w)) total += 30;
    else if (cat.includes(w)) total += 15;
    else if (desc.includes(w)) total += 5;
    else if (w.length >= 3 && (fuzzy(w, title) || fuzzy(w, id))) total += 3; // a typo: "invrt"
    else return 0;
  }
  return total;
}

/** Are the letters of `word` in `text`, in order, within a span not much longer than it? */
function fuzzy(word, text) {
  let start = -1;
  let at = -1;
  for (const ch of word) {
    at = text.indexOf(ch, at + 1);
    if (at < 0) return false;
    if (start < 0) start = at;
  }
  return at - start + 1 <= word.length * 2;
}

/** Schemas that fit a dragged link's type (or all), best matches first. */
export function search(query, filter = null) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const out = [];
  for (const s of schemas.values()) {
    if (filter && !fits(s, filter)) continue;
    const sc = words.length ? score(s, words) : 1;
    if (sc > 0) out.push([sc, s]);
  }
  out.sort((a, b) => b[0] - a[0] || a[1].category.localeCompare(b[1].category)
    || a[1].title.localeCompare(b[1].title));
  return out.slice(0, MAX_RESULTS).map(([, s]) => s);
}

/** Does a node fit the dragged link? (`filter.type` is the dragged slot's litegraph type) */
function fits(schema, filter) {
  if (filter.wantsInput) return schema.inputs.some((i) => canConnect(filter.type, inputSlotType(i)));
  return schema.outputs.some((o) => canConnect(o.type, filter.type));
}

/** The type a dragged link carries (from an output) or wants (from an input), for people. */
function filterTypeName(filter) {
  if (filter.wantsInput || !filter.node) return filter.type;
  return inputTypeName(filter.node, filter.node.inputs?.[filter.slot]);
}

/** The palette UI; `onPick(schema, graphPos, filter)` adds the node. */
export class Palette {
  constructor(root, onPick) {
    this.root = root;
    this.input = root.querySelector("input");
    this.list = root.querySelector("ul");
    this.help = root.querySelector(".palette-help");
    this.onPick = onPick;
    this.results = [];
    this.active = 0;
    this.pos = [0, 0];
    this.filter = null;
    this.input.addEventListener("input", () => this.refresh());
    this.input.addEventListener("keydown", (e) => this.key(e));
    document.addEventListener("pointerdown", (e) => {
      if (this.isOpen && !this.root.contains(e.target)) this.close();
    }, true);
    this.list.addEventListener("pointerdown", (e) => {
      const li = e.target.closest("li");
      if (!li) return;
      e.preventDefault();
      this.pick(Number(li.dataset.index));
    });
  }

  get isOpen() {
    return !this.root.hidden;
  }

  /** Opens at screen point (x, y); nodes are added at graphPos. */
  open(x, y, graphPos, filter = null) {
    this.pos = graphPos;
    this.filter = filter;
    this.root.hidden = false;
    const w = this.root.offsetWidth || 420;
    this.root.style.left = `${Math.max(8, Math.min(x, innerWidth - w - 8))}px`;
    this.root.style.top = `${Math.max(8, Math.min(y, innerHeight - Math.min(innerHeight * 0.6, 440) - 8))}px`;
    this.input.value = "";
    this.help.textContent = filter
      ? `Nodes that connect to ${filterTypeName(filter)} · Enter adds and wires it`
      : "↑↓ choose · Enter add · Esc close";
    this.refresh();
    this.input.focus();
    // the click that opened the palette may still move focus to the canvas: take it back
    setTimeout(() => {
      if (this.isOpen && document.activeElement !== this.input) this.input.focus();
    }, 0);
  }

  close() {
    if (this.root.hidden) return;
    this.root.hidden = true;
    this.filter = null;
    if (document.activeElement === this.input) this.input.blur();
    this.onClose?.();
  }

  refresh() {
    this.results = search(this.input.value, this.filter);
    this.active = 0;
    this.list.replaceChildren(...this.results.map((s, i) => {
      const li = document.createElement("li");
      li.dataset.index = String(i);
      li.dataset.type = s.id;
      const t = document.createElement("span");
      t.className = "t";
      t.textContent = s.title;
      const d = document.createElement("span");
      d.className = "d";
      d.textContent = s.description;
      const c = document.createElement("span");
      c.className = "c";
      c.textContent = s.category;
      li.append(t, d, c);
      li.title = `${s.id} — ${s.description}`;
      return li;
    }));
    if (!this.results.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "No node matches";
      this.list.append(li);
    }
    this.highlight();
  }

  highlight() {
    [...this.list.children].forEach((li, i) => li.classList.toggle("active", i === this.active));
    this.list.children[this.active]?.scrollIntoView({ block: "nearest" });
  }

  key(e) {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      const n = this.results.length;
      if (n) this.active = (this.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      this.highlight();
      e.preventDefault();
    } else if (e.key === "Enter") {
      e.preventDefault();
      this.pick(this.active);
    } else if (e.key === "Escape") {
      e.preventDefault();
      this.close();
    }
    e.stopPropagation();
  }

  pick(index) {
    const schema = this.results[index];
    if (!schema) return;
    const { pos, filter } = this;
    this.close();
    this.onPick(schema, pos, filter);
  }
}
