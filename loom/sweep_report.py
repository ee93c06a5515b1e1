"""What a sweep shows: a labelled grid of its images, a table of its numbers (CSV), a line plot.

Pure: Pillow and csv on the results ``loom.sweeps.run_sweep`` returns; no node, no HTTP.

* ``grid_images`` — one labelled image per page: columns are the x axis's values, rows the
  y axis's, pages the page axis's (any other swept axis is paged too). A cell with several
  images shows them tiled; a failed cell is a grey box saying so. ``save_grid_png`` writes
  it with the workflow (``loom.workflow`` chunk, so ``loom run grid.png`` loads it) and the
  sweep (``loom.sweep`` chunk).
* ``table_rows`` / ``to_csv`` — per cell: swept values, status, every metric, seconds, seeds
  and, when given, the human ratings' means with their 95 % intervals.
* ``plot_image`` — a metric against a swept value, one line per value of another axis.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

from .rating_stats import Interval, spearman
from .sweep_plot import nice_ticks, plot_image  # noqa: F401 - part of this module's API
from .workflow import png_info

if TYPE_CHECKING:
    from .sweeps import Axis, CellResult

PNG_SWEEP_KEY = "loom.sweep"
MAX_THUMB = 256          # longest side of one image in a grid cell
PAD = 8
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
FAILED_FILL = (150, 150, 150)
EMPTY_FILL = (236, 236, 236)
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
META_COLUMNS = ("cell", "status", "seconds", "seeds", "error")


def font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font (its scalable version when FreeType is there)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # an old Pillow, or one without FreeType
        return ImageFont.load_default()


def label(value: Any, limit: int = 28) -> str:
    """A swept value as short text: numbers to 4 significant digits, long text shortened."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _text_size(draw: ImageDraw.ImageDraw, text: str, f: Any) -> tuple[int, int]:
    box = draw.textbbox((0, 0), text, font=f)
    return box[2] - box[0], box[3] - box[1]


def _fit(draw: ImageDraw.ImageDraw, text: str, f: Any, width: int) -> str:
    """``text`` shortened with '…' until it is at most ``width`` pixels wide."""
    while text and _text_size(draw, text, f)[0] > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def _axis_values(axes: Sequence["Axis"], key: str | None, role: str) -> list[Any]:
    if key is None:
        return [None]
    for a in axes:
        if a.key == key:
            return list(a.values)
    raise ValueError(f"{role} axis {key!r} is not swept; swept: {', '.join(a.key for a in axes) or 'nothing'}")


def _position(values: list[Any], value: Any) -> int:
    for i, v in enumerate(values):
        if v == value:
            return i
    return -1


def _tile(images: list[Image.Image], cols: int, rows: int, thumb: tuple[int, int]) -> Image.Image:
    """Images tiled row by row, each scaled to fit ``thumb`` (centred)."""
    tw, th = thumb
    out = Image.new("RGB", (cols * tw, rows * th), EMPTY_FILL)
    for i, im in enumerate(images[:cols * rows]):
        im = im.convert("RGB")
        scale = min(tw / im.width, th / im.height)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
        x, y = (i % cols) * tw + (tw - size[0]) // 2, (i // cols) * th + (th - size[1]) // 2
        out.paste(im, (x, y))
    return out


def _thumb_size(results: Sequence["CellResult"]) -> tuple[int, int]:
    first = next((im for r in results for im in r.images), None)
    if first is None:
        return (96, 96)
    scale = min(1.0, MAX_THUMB / max(first.width, first.height))
    w, h = max(16, round(first.width * scale)), max(16, round(first.height * scale))
    if max(w, h) < 64:  # tiny images are enlarged so that labels fit under them
        k = math.ceil(64 / max(w, h))
        w, h = w * k, h * k
    return (w, h)


def _failed_box(size: tuple[int, int], status: str, error: str | None, f: Any) -> Image.Image:
    box = Image.new("RGB", size, FAILED_FILL)
    d = ImageDraw.Draw(box)
    lines = [status]
    words, line = (error or "").split(), ""
    for w in words:  # wrap the error into the box
        trial = f"{line} {w}".strip()
        if _text_size(d, trial, f)[0] > size[0] - 2 * 4 and line:
            lines.append(line)
            line = w
        else:
            line = trial
    if line:
        lines.append(line)
    y = 4
    for text in lines:
        if y + 14 > size[1]:
            break
        d.text((4, y), _fit(d, text, f, size[0] - 8), fill=(255, 255, 255), font=f)
        y += 14
    return box


def grid_images(results: Sequence["CellResult"], axes: Sequence["Axis"], x: str, y: str | None = None,
                page: str | None = None, workflow: dict[str, Any] | None = None,
                sweep: dict[str, Any] | None = None) -> list[Image.Image]:
    """One labelled grid image per page (x values across, y values down, page axes per image).

    Axes not chosen as x, y or page are paged too. ``workflow`` and ``sweep`` ride along in
    each image's ``info`` so that ``save_grid_png`` can embed them.
    """
    if x in (y, page) or (y is not None and y == page):
        raise ValueError(f"x, y and page must be different axes, got {x!r}, {y!r}, {page!r}")
    xs, ys = _axis_values(axes, x, "x"), _axis_values(axes, y, "y")
    _axis_values(axes, page, "page")
    paged = ([page] if page else []) + [a.key for a in axes if a.key not in (x, y, page)]
    f, fb = font(12), font(14)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    count = max((len(r.images) for r in results), default=1) or 1
    tcols = math.ceil(math.sqrt(count))
    trows = math.ceil(count / tcols)
    thumb = _thumb_size(results)
    cw, ch = tcols * thumb[0], trows * thumb[1]
    line = _text_size(scratch, "Hg", f)[1] + 6
    left = PAD + max([_text_size(scratch, label(v), f)[0] for v in ys if v is not None]
                     + [_text_size(scratch, y or "", fb)[0], 0]) + PAD
    pages: dict[str, tuple[tuple[Any, ...], list["CellResult"]]] = {}
    for r in results:  # keyed by JSON: a swept value may be a list or a link object
        values = tuple(r.cell.values.get(k) for k in paged)
        ident = json.dumps(values, sort_keys=True, default=str)
        pages.setdefault(ident, (values, []))[1].append(r)
    out = []
    for key, cells in pages.values():
        title = ", ".join(f"{k} = {label(v)}" for k, v in zip(paged, key))
        top = PAD + (line + 4 if title else 0) + line + line  # page title, x title, x value labels
        width, height = left + len(xs) * (cw + PAD) + PAD, top + len(ys) * (ch + PAD) + PAD
        img = Image.new("RGB", (width, height), BACKGROUND)
        d = ImageDraw.Draw(img)
        ty = PAD
        if title:
            d.text((PAD, ty), _fit(d, title, fb, width - 2 * PAD), fill=INK, font=fb)
            ty += line + 4
        d.text((left, ty), _fit(d, x, fb, width - left - PAD), fill=INK, font=fb)
        if y:
            d.text((PAD, ty + line), _fit(d, y, fb, left - PAD), fill=INK, font=fb)
        for i, v in enumerate(xs):
            text = _fit(d, label(v), f, cw)
            tw = _text_size(d, text, f)[0]
            d.text((left + i * (cw + PAD) + (cw - tw) // 2, ty + line), text, fill=INK, font=f)
        for j, v in enumerate(ys):
            if v is not None:
                d.text((PAD, top + j * (ch + PAD) + ch // 2 - line // 2), label(v), fill=INK, font=f)
        for j in range(len(ys)):
            for i in range(len(xs)):
                d.rectangle((left + i * (cw + PAD), top + j * (ch + PAD),
                             left + i * (cw + PAD) + cw - 1, top + j * (ch + PAD) + ch - 1), fill=EMPTY_FILL)
        for r in cells:
            i = _position(xs, r.cell.values.get(x))
            j = 0 if y is None else _position(ys, r.cell.values.get(y))
            if i < 0 or j < 0:
                continue
            if r.status == "finished" and r.images:
                box = _tile(r.images, tcols, trows, thumb)
            else:
                box = _failed_box((cw, ch), r.status if r.status != "finished" else "no images", r.error, f)
            img.paste(box, (left + i * (cw + PAD), top + j * (ch + PAD)))
        if workflow is not None:
            img.info["loom.workflow"] = workflow
        if sweep is not None:
            img.info[PNG_SWEEP_KEY] = sweep
        out.append(img)
    return out


def save_grid_png(image: Image.Image, path: str | Path, workflow: dict[str, Any] | None = None,
                  sweep: dict[str, Any] | None = None) -> None:
    """Save a grid as PNG with the workflow (``loom.workflow``) and sweep (``loom.sweep``) chunks."""
    workflow = workflow if workflow is not None else image.info.get("loom.workflow")
    sweep = sweep if sweep is not None else image.info.get(PNG_SWEEP_KEY)
    info = png_info(workflow, None)
    if sweep is not None:
        info.add_itxt(PNG_SWEEP_KEY, json.dumps(sweep, ensure_ascii=False, default=str))
    image.save(path, format="PNG", pnginfo=info, compress_level=6)


# --- table ----------------------------------------------------------------------------------
def table_rows(results: Sequence["CellResult"], axes: Sequence["Axis"],
               human: Mapping[int, Mapping[str, Interval]] | None = None) -> list[dict[str, Any]]:
    """One row per cell: cell, each swept value, status, each metric, human ratings, seconds, seeds, error.

    ``human`` maps a cell index to {rating name: Interval}; each name gives the columns
    ``human.<name>``, ``human.<name>.low``, ``.high`` and ``.n``.
    """
    metrics = list(dict.fromkeys(k for r in results for k in r.scalars))
    names = list(dict.fromkeys(n for per in (human or {}).values() for n in per))
    rows = []
    for r in results:
        row: dict[str, Any] = {"cell": r.cell.index}
        row.update({a.key: r.cell.values.get(a.key) for a in axes})
        row["status"] = r.status
        row.update({m: r.scalars.get(m) for m in metrics})
        for n in names:
            iv = (human or {}).get(r.cell.index, {}).get(n)
            row[f"human.{n}"] = iv.mean if iv else None
            row[f"human.{n}.low"] = None if iv is None or math.isnan(iv.low) else iv.low
            row[f"human.{n}.high"] = None if iv is None or math.isnan(iv.high) else iv.high
            row[f"human.{n}.n"] = iv.n if iv else 0
        row["seconds"] = round(r.seconds, 4)
        row["seeds"] = dict(r.seeds)
        row["error"] = r.error or ""
        rows.append(row)
    return rows


def correlations(rows: Sequence[Mapping[str, Any]], min_cells: int = 3) -> dict[tuple[str, str], float]:
    """Spearman's ρ between every human rating column and every metric column, over the cells
    that have both; NaN with fewer than ``min_cells`` such cells or when either side is constant."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    humans = [c for c in cols if c.startswith("human.") and c.count(".") == 1]
    numeric = [c for c in cols if c not in META_COLUMNS and not c.startswith("human.")
               and all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows)
               and any(isinstance(r.get(c), float) for r in rows)]
    out = {}
    for h in humans:
        for m in numeric:
            a = [r.get(h) for r in rows]
            b = [r.get(m) for r in rows]
            if sum(x is not None and y is not None for x, y in zip(a, b)) < min_cells:
                out[(h, m)] = math.nan
                continue
            out[(h, m)] = spearman([math.nan if v is None else v for v in a],
                                   [math.nan if v is None else v for v in b])
    return out


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV text: a header of every column (first-seen order), floats in full, seeds as JSON."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("")
            elif isinstance(v, (dict, list)):
                cells.append(json.dumps(v, sort_keys=True, ensure_ascii=False) if v else "")
            elif isinstance(v, float):
                cells.append(repr(v))
            else:
                cells.append(str(v))
        writer.writerow(cells)
    return buf.getvalue()
