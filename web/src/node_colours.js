// Node colours: a palette of eight (ComfyUI's own values, so the colours of an imported ComfyUI
// workflow are the same swatches here) plus "no colour". Saved as the node's ui.color (title
// bar) and ui.bgcolor (body) in the workflow file (workflow.js); the engine ignores them.
// Set from the selection toolbox (toolbox.js) or right-click › Colour; each change is one undo step.

import { LiteGraph } from "/vendor/litegraph/litegraph.es.js";

/** The palette: name, title-bar colour, body colour. */
export const NODE_COLOURS = [
  { name: "red", color: "#322", bgcolor: "#533" },
  { name: "brown", color: "#332922", bgcolor: "#593930" },
  { name: "green", color: "#232", bgcolor: "#353" },
  { name: "blue", color: "#223", bgcolor: "#335" },
  { name: "pale blue", color: "#2a363b", bgcolor: "#3f5159" },
  { name: "cyan", color: "#233", bgcolor: "#355" },
  { name: "purple", color: "#323", bgcolor: "#535" },
  { name: "yellow", color: "#432", bgcolor: "#653" },
];

// what litegraph and ComfyUI write: #rgb, #rgba, #rrggbb, #rrggbbaa, rgb()/rgba()/hsl()/hsla()
// (the same rule as the ComfyUI importer's css_colour)
const HEX = "#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})";
const FUNCTION = "(?:rgba?|hsla?)\\(\\s*[-+0-9.%deg]+(?:\\s*[,/ ]\\s*[-+0-9.%deg]+){2,3}\\s*\\)";
const COLOUR = new RegExp(`^(?:${HEX}|${FUNCTION})$`, "i");

/** Is `value` a colour a node may carry in its ui (checked when a workflow is opened)? */
export function isColour(value) {
  return typeof value === "string" && value.length <= 64 && COLOUR.test(value);
}

/** The palette entry a node's colours match, or null (default or a colour of its own). */
export function colourOf(node) {
  return NODE_COLOURS.find((c) => c.color === node.color && c.bgcolor === node.bgcolor) ?? null;
}

/**
 * Colours `nodes` with a palette entry (`null`: back to the default); one undo step.
 * Returns whether anything changed.
 */
export function setNodeColour(app, nodes, colour) {
  if (!nodes.length) return false;
  app.history.record(); // an edit still waiting to be recorded stays its own step
  for (const node of nodes) {
    if (colour) {
      node.color = colour.color;
      node.bgcolor = colour.bgcolor;
    } else {
      delete node.color;
      delete node.bgcolor;
    }
  }
  app.canvas.setDirty(true, true);
  return app.history.record();
}

/** The nodes a menu entry on `node` acts on: the selection when `node` is in it, else `node`. */
export function menuTargets(canvas, node) {
  const selected = Object.values(canvas.selected_nodes ?? {});
  return selected.includes(node) ? selected : [node];
}

/** A swatch element for a palette entry (`null`: the "no colour" swatch). */
export function swatch(colour) {
  const el = document.createElement("span");
  el.className = colour ? "node-swatch" : "node-swatch none";
  if (colour) {
    el.style.background = colour.bgcolor;
    el.style.borderTopColor = colour.color;
  }
  return el;
}

/** Replaces litegraph's node menu "Colors" by "Colour" (the palette above, undoable). */
export function installColourMenu(app) {
  const canvas = app.canvas;
  const base = canvas.getNodeMenuOptions.bind(canvas);
  canvas.getNodeMenuOptions = (node) => base(node).map((item) => {
    if (!item || item.content !== "Colors") return item;
    return { content: "Colour", has_submenu: true, callback: (_v, _o, e, menu) => colourSubmenu(app, node, e, menu) };
  });
}

function colourSubmenu(app, node, event, parentMenu) {
  const entries = [{ value: null, content: label(null, "No colour") },
    ...NODE_COLOURS.map((c) => ({ value: c.name, content: label(c, c.name) }))];
  new LiteGraph.ContextMenu(entries, {
    event,
    parentMenu,
    callback: (item) => {
      const colour = NODE_COLOURS.find((c) => c.name === item.value) ?? null;
      setNodeColour(app, menuTargets(app.canvas, node), colour);
    },
  });
  return false;
}

function label(colour, text) {
  const el = document.createElement("span");
  el.className = "node-colour-item";
  el.append(swatch(colour), document.createTextNode(text));
  return el.outerHTML;
}
