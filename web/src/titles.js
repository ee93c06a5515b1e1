// Double-click a node's title to rename it: a text field over the title; Enter or a click
// elsewhere keeps the new title, Esc leaves it as it was. An empty title restores the default.

import { LiteGraph } from "/vendor/litegraph/litegraph.es.js";

export function installTitleEditor(app) {
  const input = document.createElement("input");
  input.id = "title-editor";
  input.type = "text";
  input.spellcheck = false;
  input.hidden = true;
  document.querySelector("#canvas-wrap").append(input);
  let node = null;

  const finish = (keep) => {
    if (!node) return;
    const target = node;
    node = null;
    input.hidden = true;
    if (keep) {
      const title = input.value.trim() || target.loom?.schema?.title || target.constructor.title || target.type;
      if (title !== target.title) {
        target.title = title;
        app.canvas.setDirty(true, true);
        app.history.record();
      }
    }
    app.canvas.canvas.focus({ preventScroll: true });
  };

  const open = (target) => {
    node = target;
    const { scale, offset } = app.canvas.ds;
    const th = LiteGraph.NODE_TITLE_HEIGHT;
    const width = target.flags.collapsed ? (target._collapsed_width ?? 120) : target.size[0];
    input.style.left = `${(target.pos[0] + offset[0]) * scale}px`;
    input.style.top = `${(target.pos[1] - th + offset[1]) * scale}px`;
    input.style.width = `${width * scale}px`;
    input.style.height = `${th * scale}px`;
    input.style.fontSize = `${Math.max(10, 13 * scale)}px`;
    input.value = target.title;
    input.hidden = false;
    input.focus();
    input.select();
  };

  input.addEventListener("keydown", (e) => {
    e.stopPropagation();
    if (e.key === "Enter") finish(true);
    else if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));

  app.canvas.canvas.addEventListener("litegraph:canvas", (e) => {
    if (e.detail?.subType !== "node-double-click") return;
    const target = e.detail.node;
    const ev = e.detail.originalEvent;
    if (!target || !ev) return;
    const [, gy] = app.canvas.convertEventToCanvasOffset(ev);
    if (gy < target.pos[1]) setTimeout(() => open(target), 0); // after litegraph's own handling
  });
}
