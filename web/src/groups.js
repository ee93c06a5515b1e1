// Group titles: litegraph draws a group's title in the group's own colour, over the same colour
// at 25 % alpha, which is hard to read (contrast ≈ 1.3). Loom draws it in a light colour.

import { LGraphGroup } from "/vendor/litegraph/litegraph.es.js";

/** The colour of group titles (contrast ≥ 4.5 over every group colour on the dark canvas). */
export const GROUP_TITLE_COLOR = "#eef1f5";

export function installGroupTitles() {
  const draw = LGraphGroup.prototype.draw;
  LGraphGroup.prototype.draw = function drawGroup(graphCanvas, ctx) {
    const title = this.title;
    this.title = ""; // litegraph's box, border and resize corner, without its title
    try {
      draw.call(this, graphCanvas, ctx);
    } finally {
      this.title = title;
    }
    const size = this.font_size || 24;
    ctx.save();
    ctx.fillStyle = GROUP_TITLE_COLOR;
    ctx.textAlign = "left";
    ctx.fillText(title + (this.pinned ? "📌" : ""), this._pos[0] + LGraphGroup.padding, this._pos[1] + size);
    ctx.restore();
  };
}
