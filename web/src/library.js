// The node library: a side panel on the left of the canvas (the Nodes button or N) listing
// every node by category (a collapsible tree from the schemas' "a/b" categories), with a
// search box that uses the palette's matcher. Drag a node onto the canvas to place it at the
// drop point; click it to add it in the middle of the view.

import { LiteGraph } from "/vendor/litegraph/litegraph.es.js";
import { schemas } from "./nodes.js";
import { search } from "./palette.js";

const STORE_KEY = "loom.library";
/** The drag payload type (a node type id). */
export const DRAG_TYPE = "application/x-loom-node";

function readState() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE_KEY) ?? "null");
    return { open: Boolean(v?.open), collapsed: Array.isArray(v?.collapsed) ? v.collapsed.map(String) : [] };
  } catch {
    return { open: false, collapsed: [] };
  }
}

/** Categories as a tree: { children: Map(name → tree), items: [schema], path }. */
function categoryTree(list) {
  const root = { children: new Map(), items: [], path: "" };
  for (const s of list) {
    let at = root;
    for (const part of (s.category || "misc").split("/").filter(Boolean)) {
      if (!at.children.has(part)) {
        at.children.set(part, { children: new Map(), items: [], path: at.path ? `${at.path}/${part}` : part });
      }
      at = at.children.get(part);
    }
    at.items.push(s);
  }
  return root;
}

function countItems(tree) {
  let n = tree.items.length;
  for (const child of tree.children.values()) n += countItems(child);
  return n;
}

export class Library {
  constructor(app, main, before) {
    this.app = app;
    this.state = readState();
    this.root = document.createElement("aside");
    this.root.id = "library";
    this.root.className = "library";
    this.root.hidden = !this.state.open;
    const head = document.createElement("div");
    head.className = "library-head";
    const title = document.createElement("h3");
    title.textContent = "Node library";
    const close = document.createElement("button");
    close.className = "close";
    close.textContent = "×";
    close.title = "Hide the node library (N)";
    close.addEventListener("click", () => this.toggle(false));
    title.append(close);
    this.input = document.createElement("input");
    this.input.id = "library-search";
    this.input.type = "search";
    this.input.placeholder = "Search nodes…";
    this.input.autocomplete = "off";
    this.input.spellcheck = false;
    this.input.addEventListener("input", () => this.render());
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        if (this.input.value) {
          this.input.value = "";
          this.render();
        } else {
          this.app.canvas.canvas.focus({ preventScroll: true });
        }
      } else if (e.key === "Enter") {
        const first = this.list.querySelector("li.node");
        if (first) this.addAtCentre(first.dataset.type);
      }
    });
    head.append(title, this.input);
    this.list = document.createElement("div");
    this.list.className = "library-list";
    this.list.addEventListener("click", (e) => {
      const li = e.target.closest("li.node");
      if (li) this.addAtCentre(li.dataset.type);
    });
    this.list.addEventListener("dragstart", (e) => {
      const li = e.target.closest?.("li.node");
      if (!li) return;
      e.dataTransfer.setData(DRAG_TYPE, li.dataset.type);
      e.dataTransfer.setData("text/plain", li.dataset.type);
      e.dataTransfer.effectAllowed = "copy";
    });
    this.list.addEventListener("toggle", (e) => this.remember(e.target), true);
    this.root.append(head, this.list);
    main.insertBefore(this.root, before);
    this.render();
  }

  get isOpen() {
    return !this.root.hidden;
  }

  /** Opens or closes the panel (`on` forces it); remembered across reloads. */
  toggle(on = !this.isOpen) {
    this.root.hidden = !on;
    this.state.open = on;
    this.save();
    if (on) {
      this.render();
      this.input.focus();
    } else {
      this.app.canvas.canvas.focus({ preventScroll: true });
    }
  }

  save() {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(this.state));
    } catch {
      // storage disabled: the panel still works
    }
  }

  remember(details) {
    if (!(details instanceof HTMLDetailsElement) || this.input.value.trim()) return;
    const path = details.dataset.path;
    const collapsed = new Set(this.state.collapsed);
    if (details.open) collapsed.delete(path);
    else collapsed.add(path);
    this.state.collapsed = [...collapsed];
    this.save();
  }

  item(schema) {
    const li = document.createElement("li");
    li.className = "node";
    li.draggable = true;
    li.dataset.type = schema.id;
    li.textContent = schema.title;
    li.title = `${schema.title} (${schema.id})${schema.description ? ` — ${schema.description}` : ""}\n`
      + "Click: add in the middle of the view · drag: place on the canvas";
    return li;
  }

  branch(name, tree) {
    const details = document.createElement("details");
    details.dataset.path = tree.path;
    details.open = !this.state.collapsed.includes(tree.path);
    const summary = document.createElement("summary");
    summary.textContent = name;
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = String(countItems(tree));
    summary.append(count);
    details.append(summary, ...this.children(tree));
    return details;
  }

  children(tree) {
    const out = [...tree.children.entries()].sort(([a], [b]) => a.localeCompare(b))
      .map(([name, child]) => this.branch(name, child));
    if (tree.items.length) {
      const ul = document.createElement("ul");
      ul.append(...[...tree.items].sort((a, b) => a.title.localeCompare(b.title)).map((s) => this.item(s)));
      out.push(ul);
    }
    return out;
  }

  /** The tree (no query) or the palette's ranked matches (a query). */
  render() {
    if (!this.isOpen) return;
    const query = this.input.value.trim();
    if (query) {
      const found = search(query);
      const ul = document.createElement("ul");
      ul.className = "results";
      ul.append(...found.map((s) => {
        const li = this.item(s);
        const cat = document.createElement("span");
        cat.className = "cat";
        cat.textContent = s.category;
        li.append(cat);
        return li;
      }));
      this.list.replaceChildren(ul);
      if (!found.length) {
        const p = document.createElement("p");
        p.className = "none";
        p.textContent = "No node matches";
        this.list.append(p);
      }
      return;
    }
    this.list.replaceChildren(...this.children(categoryTree([...schemas.values()])));
  }

  /** Graph coordinates of a page point over the canvas. */
  graphPos(clientX, clientY) {
    const rect = this.app.canvas.canvas.getBoundingClientRect();
    return this.app.canvas.ds.convertCanvasToOffset([clientX - rect.left, clientY - rect.top]);
  }

  /** Adds a node in the middle of the view (moved aside while another node is there). */
  addAtCentre(type) {
    if (!schemas.has(type)) return null;
    const rect = this.app.canvas.canvas.getBoundingClientRect();
    let [x, y] = this.graphPos(rect.left + rect.width / 2, rect.top + rect.height / 2);
    x -= LiteGraph.NODE_WIDTH / 2;
    y -= 60;
    for (let i = 0; i < 20 && this.app.graph.getNodeOnPos(x + 5, y + LiteGraph.NODE_TITLE_HEIGHT + 5); i += 1) {
      x += 30;
      y += 30;
    }
    return this.app.addNode(type, [x, y]);
  }

  /** Lets nodes dragged from the list be dropped on the canvas. */
  installDrop(wrap) {
    const ours = (e) => e.dataTransfer?.types.includes(DRAG_TYPE);
    wrap.addEventListener("dragover", (e) => {
      if (!ours(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
    });
    wrap.addEventListener("drop", (e) => {
      if (!ours(e)) return;
      e.preventDefault();
      const type = e.dataTransfer.getData(DRAG_TYPE);
      if (schemas.has(type)) this.app.addNode(type, this.graphPos(e.clientX, e.clientY));
    });
  }
}

/** Creates the panel left of the canvas, its top-bar button and its key (N); returns it. */
export function installLibrary(app, isTyping) {
  const wrap = document.querySelector("#canvas-wrap");
  const library = new Library(app, wrap.parentElement, wrap);
  library.installDrop(wrap);
  const button = document.createElement("button");
  button.id = "btn-library";
  button.textContent = "Nodes";
  button.title = "Show or hide the node library (N)";
  button.addEventListener("click", () => library.toggle());
  document.querySelector("#examples").parentElement.prepend(button);
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.key.toLowerCase() !== "n" || e.repeat) return;
    if (isTyping(e) || app.palette?.isOpen) return;
    e.preventDefault();
    library.toggle();
  });
  const refresh = app.refreshNodeDefs; // "Reload nodes…": new plugins appear in the list too
  app.refreshNodeDefs = async () => {
    await refresh?.();
    library.render();
  };
  app.library = library;
  return library;
}
