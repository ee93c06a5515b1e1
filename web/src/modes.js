// Node modes: Ctrl+B bypasses the selected nodes, Ctrl+M mutes them (again: active).
// Saved as the node entry's "mode": "bypass" | "mute" (workflow.js); the server leaves a
// muted node out and passes a bypassed node's first matching input through.
// Drawn as in ComfyUI: bypass purple-tinted, mute greyed out.

export const ACTIVE = 0;
export const MUTE = 2; // litegraph's LGraphEventMode.NEVER
export const BYPASS = 4; // litegraph's LGraphEventMode.BYPASS

const BYPASS_COLOUR = { color: "#6c3f7a", bgcolor: "#4b2d57" };
const MUTE_ALPHA = 0.4;

/** The selected nodes. */
function selectedNodes(canvas) {
  return Object.values(canvas.selected_nodes ?? {});
}

/**
 * Sets `mode` on the selected nodes, or sets them active when all already have it.
 * Returns whether anything was selected (one undoable step).
 */
export function toggleMode(app, mode) {
  const nodes = selectedNodes(app.canvas);
  if (!nodes.length) return false;
  const all = nodes.every((n) => n.mode === mode);
  for (const node of nodes) {
    node.mode = all ? ACTIVE : mode;
    if (node.loom) delete node.loom.otherMode;
  }
  app.canvas.setDirty(true, true);
  app.history.record();
  return true;
}

/** Draws bypassed nodes purple and muted ones faded. */
export function installModeDrawing(canvas) {
  const drawNode = canvas.drawNode;
  canvas.drawNode = function drawModeNode(node, ctx) {
    if (node.mode === BYPASS) {
      const had = { color: node.color, bgcolor: node.bgcolor };
      node.color = BYPASS_COLOUR.color;
      node.bgcolor = BYPASS_COLOUR.bgcolor;
      try {
        drawNode.call(this, node, ctx);
      } finally {
        restore(node, had);
      }
    } else if (node.mode === MUTE) {
      const alpha = this.editor_alpha;
      this.editor_alpha = alpha * MUTE_ALPHA;
      try {
        drawNode.call(this, node, ctx);
      } finally {
        this.editor_alpha = alpha;
      }
    } else {
      drawNode.call(this, node, ctx);
    }
  };
}

function restore(node, had) {
  for (const key of ["color", "bgcolor"]) {
    if (had[key] === undefined) delete node[key];
    else node[key] = had[key];
  }
}
