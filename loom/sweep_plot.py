"""A line plot drawn with Pillow: one metric of a sweep's table against a swept value.

One line per value of a second column (the series), axis ticks, grid lines and a legend.
Numeric x values are placed to scale; other values (sampler names…) evenly, in table order.
Used through ``loom.sweep_report.plot_image``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 720, 420
MARGIN_LEFT, MARGIN_TOP, MARGIN_BOTTOM, MARGIN_RIGHT = 72, 44, 56, 16
GRID = (225, 225, 225)
AXIS = (60, 60, 60)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 × 10ᵏ) covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    t = first
    while t <= high + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _tick_label(v: Any) -> str:
    from .sweep_report import label
    return label(v, 14)


def plot_image(rows: Sequence[Mapping[str, Any]], x: str, metric: str, series: str | None = None
               ) -> Image.Image:
    """``metric`` against ``x`` over the table rows, one line per value of ``series``.

    Rows whose status is not "finished" or whose metric is missing are left out; ValueError
    when no row has both values.
    """
    from .sweep_report import BACKGROUND, INK, PALETTE, _fit, _text_size, font, label
    pts = [(r.get(x), _number(r.get(metric)), r.get(series) if series else None) for r in rows
           if r.get("status", "finished") == "finished" and x in r]
    pts = [(xv, yv, s) for xv, yv, s in pts if yv is not None]
    if not pts:
        cols = ", ".join(dict.fromkeys(k for r in rows for k in r))
        raise ValueError(f"no finished cell has a value for {metric!r} and {x!r}; columns: {cols}")
    numeric_x = all(_number(p[0]) is not None for p in pts)
    categories = list(dict.fromkeys(p[0] for p in pts))
    xs = [_number(p[0]) if numeric_x else float(categories.index(p[0])) for p in pts]
    ys = [p[1] for p in pts]
    groups = list(dict.fromkeys(p[2] for p in pts))
    f, fb = font(11), font(13)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    names = [f"{series} = {label(g, 20)}" if series else metric for g in groups]
    legend_w = max(_text_size(scratch, n, f)[0] for n in names) + 40
    img = Image.new("RGB", (WIDTH + legend_w, HEIGHT), BACKGROUND)
    d = ImageDraw.Draw(img)
    x0, x1 = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    y0, y1 = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    lo, hi = min(ys), max(ys)
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        lo, hi = lo - max(1.0, abs(lo)) * 0.1, hi + max(1.0, abs(hi)) * 0.1
    span = hi - lo
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    xlo, xhi = min(xs), max(xs)
    if xhi == xlo:
        xlo, xhi = xlo - 1.0, xhi + 1.0
    xpad = 0.05 * (xhi - xlo) if numeric_x else 0.5
    xlo, xhi = xlo - xpad, xhi + xpad

    def px(v: float) -> float:
        return x0 + (v - xlo) / (xhi - xlo) * (x1 - x0)

    def py(v: float) -> float:
        return y1 - (v - lo) / (hi - lo) * (y1 - y0)

    for t in nice_ticks(lo, hi):
        yy = py(t)
        d.line((x0, yy, x1, yy), fill=GRID)
        d.line((x0 - 4, yy, x0, yy), fill=AXIS)
        text = f"{t:.4g}"
        w, h = _text_size(d, text, f)
        d.text((x0 - 8 - w, yy - h / 2 - 2), text, fill=INK, font=f)
    if numeric_x:
        distinct = sorted(set(xs))
        xticks = distinct if len(distinct) <= 10 else nice_ticks(min(xs), max(xs))
        xlabels = [_tick_label(int(t) if float(t).is_integer() else t) for t in xticks]
    else:
        xticks, xlabels = [float(i) for i in range(len(categories))], [_tick_label(c) for c in categories]
    room = (x1 - x0) / max(1, len(xticks))
    for t, text in zip(xticks, xlabels):
        xx = px(t)
        d.line((xx, y0, xx, y1), fill=GRID)
        d.line((xx, y1, xx, y1 + 4), fill=AXIS)
        text = _fit(d, text, f, int(room) - 2)
        w, _ = _text_size(d, text, f)
        d.text((xx - w / 2, y1 + 8), text, fill=INK, font=f)
    d.line((x0, y0, x0, y1), fill=AXIS, width=1)
    d.line((x0, y1, x1, y1), fill=AXIS, width=1)
    d.text((x0, 12), _fit(d, f"{metric} against {x}", fb, WIDTH + legend_w - x0 - 8), fill=INK, font=fb)
    xt = _fit(d, x, f, x1 - x0)
    d.text(((x0 + x1) / 2 - _text_size(d, xt, f)[0] / 2, HEIGHT - 22), xt, fill=INK, font=f)
    for gi, g in enumerate(groups):
        colour = PALETTE[gi % len(PALETTE)]
        line = sorted((xv, yv) for xv, yv, p in zip(xs, ys, pts) if p[2] == g)
        coords = [(px(a), py(b)) for a, b in line]
        if len(coords) > 1:
            d.line(coords, fill=colour, width=2)
        for cx, cy in coords:
            d.ellipse((cx - 3.5, cy - 3.5, cx + 3.5, cy + 3.5), fill=colour)
        ly = y0 + gi * 18
        d.line((WIDTH + 4, ly + 7, WIDTH + 24, ly + 7), fill=colour, width=2)
        d.ellipse((WIDTH + 10.5, ly + 3.5, WIDTH + 17.5, ly + 10.5), fill=colour)
        d.text((WIDTH + 30, ly), names[gi], fill=INK, font=f)
    return img
