"""``loom run`` for a sweep: one line per cell, a table, and output/sweeps/<id>/ files.

The folder gets ``table.csv``, ``sweep.json`` (the workflow and the spelled-out sweep)
and, from ``loom.sweep_report``, ``grid.png`` (the labelled images; its PNG text chunks
carry the workflow with its sweep, so ``loom run grid.png`` runs the sweep again) and ``plot.png`` (the first metric against the first
axis, one line per value of the second).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import ValidationError
from .progress import TqdmObserver
from .sweeps import CellResult, Sweep, describe, run_sweep

if TYPE_CHECKING:
    from .executor import Executor
    from .workflow import Workflow

log = logging.getLogger(__name__)


class _Counts(TqdmObserver):
    """Progress bars, and the executed and cached nodes per run (for the per-cell line)."""

    def __init__(self, workflow: Any = None) -> None:
        super().__init__(workflow)
        self.executed: dict[str, int] = {}
        self.cached: dict[str, int] = {}

    def node_started(self, run: str, node: str) -> None:
        super().node_started(run, node)
        self.executed[run] = self.executed.get(run, 0) + 1

    def node_cached(self, run: str, node: str, ui: dict[str, Any]) -> None:
        super().node_cached(run, node, ui)
        self.cached[run] = self.cached.get(run, 0) + 1


def new_sweep_id() -> str:
    """A sortable, unique folder name: ``20260102-153000-1a2b3c``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def basic_rows(results: Sequence[CellResult], sweep: Sweep) -> list[dict[str, Any]]:
    """Table rows: cell, each axis, status, seconds, each scalar, seeds, error."""
    metrics = sorted({k for r in results for k in r.scalars})
    rows = []
    for r in results:
        row: dict[str, Any] = {"cell": r.cell.index}
        row.update({a.key: r.cell.values[a.key] for a in sweep.axes})
        row.update({"status": r.status, "seconds": round(r.seconds, 4)})
        row.update({m: r.scalars.get(m) for m in metrics})
        row["seeds"] = json.dumps(r.seeds, sort_keys=True) if r.seeds else ""
        row["error"] = r.error or ""
        rows.append(row)
    return rows


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text with a header (the keys of every row, in first-seen order)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def format_table(rows: Sequence[dict[str, Any]], skip: Sequence[str] = ("seeds", "error")) -> str:
    """The rows as aligned text columns (numbers to 4 significant digits)."""
    if not rows:
        return "(no cells)"
    cols = [c for c in dict.fromkeys(k for r in rows for k in r) if c not in skip]

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    table = [[str(c) for c in cols]] + [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [min(40, max(len(line[i]) for line in table)) for i in range(len(cols))]
    return "\n".join("  ".join(v[:40].ljust(w) for v, w in zip(line, widths)).rstrip() for line in table)


def write_outputs(folder: Path, results: Sequence[CellResult], sweep: Sweep,
                  workflow: dict[str, Any]) -> list[Path]:
    """table.csv, sweep.json and (with ``loom.sweep_report``) grid.png and plot.png."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    doc = {"sweep": sweep.to_dict(), "workflow": workflow}
    (folder / "sweep.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n",
                                       encoding="utf-8")
    written.append(folder / "sweep.json")
    try:
        from . import sweep_report as report
    except ImportError:
        report = None  # type: ignore[assignment]
    rows = report.table_rows(results, sweep.axes) if report else basic_rows(results, sweep)
    text = report.to_csv(rows) if report else rows_to_csv(rows)
    (folder / "table.csv").write_text(text, encoding="utf-8")
    written.append(folder / "table.csv")
    if report is None:
        return written
    keys = [a.key for a in sweep.axes]
    if any(r.images for r in results):
        pages = report.grid_images(results, sweep.axes, keys[0], keys[1] if len(keys) > 1 else None,
                                   keys[2] if len(keys) > 2 else None, workflow=workflow,
                                   sweep=sweep.to_dict())
        for i, page in enumerate(pages):
            path = folder / ("grid.png" if i == 0 else f"grid_{i + 1}.png")
            report.save_grid_png(page, path, workflow, sweep.to_dict())
            written.append(path)
    metrics = sorted({k for r in results for k in r.scalars})
    if metrics:
        series = keys[1] if len(keys) > 1 else None
        report.plot_image(rows, keys[0], metrics[0], series).save(folder / "plot.png")
        written.append(folder / "plot.png")
    return written


def run_sweep_command(executor: "Executor", wf: "Workflow", sweep: Sweep) -> int:
    """Run every cell, print a line per cell and the table, write the sweep folder."""
    counts = _Counts(wf)
    total = len(sweep)

    def line(res: CellResult) -> None:
        counts.close()  # this cell's bars, before its line
        run = res.run_id or ""
        what = f"{res.status} in {res.seconds:.2f} s"
        if res.status == "finished":
            what += f" ({counts.executed.get(run, 0)} executed, {counts.cached.get(run, 0)} cached)"
        scalars = "".join(f", {k} = {v:.4g}" for k, v in res.scalars.items())
        err = f": {res.error}" if res.error else ""
        print(f"cell {res.cell.index + 1}/{total} [{describe(res.cell.values)}]: {what}{scalars}{err}",
              flush=True)

    try:
        results = run_sweep(executor, wf, sweep, counts, on_cell=line)
    except ValidationError as exc:  # every bad value of every cell, before anything ran
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 2
    finally:
        counts.close()
    sweep_id = new_sweep_id()
    folder = executor.settings.outputs / "sweeps" / sweep_id
    from .sweeps import base_document, sweep_document
    written = write_outputs(folder, results, sweep, sweep_document(base_document(wf), sweep))
    rows = basic_rows(results, sweep)
    print()
    print(format_table(rows))
    for path in written:
        print(f"sweep {sweep_id}: wrote {path}")
    failed = sum(r.status != "finished" for r in results)
    print(f"done: {total} cells, {total - failed} finished, {failed} failed or interrupted")
    if any(r.status == "interrupted" for r in results):
        return 130
    return 3 if failed else 0
