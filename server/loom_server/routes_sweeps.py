"""Sweeps over HTTP: queue one run per cell (``POST /api/runs``), and read a sweep back as
cells, a table (JSON or CSV, with human rating means and their rank correlation with each
metric), a labelled grid PNG and a plot PNG."""
from __future__ import annotations

import asyncio
import io
import json
import math
import time
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import web

from .security import ApiError
from .state import SETTINGS, STORE, WORKER

if TYPE_CHECKING:
    from loom.sweeps import Axis, CellResult
    from loom.workflow import Workflow

    from .queue_store import QueueStore
    from .workers import Worker

routes = web.RouteTableDef()


def accept_sweep(wf: "Workflow", worker: "Worker", store: "QueueStore", front: bool) -> dict[str, Any]:
    """Expand, compile every cell, then queue them all in one transaction (on an executor thread).

    A malformed sweep is a 400; cells that do not compile are a 422 whose ``problems`` name
    the cell, its values, the node, input and value; either way nothing is queued."""
    from loom import MigrationError
    from loom.sweeps import SweepError, SweepValidationError, base_document, check_cells, expand, parse_sweeps
    try:
        sweep = parse_sweeps(wf.extra)
        if sweep is None:
            raise SweepError("\"sweeps\" has no axes")
        cells = expand(wf, sweep)
        plans = check_cells(cells, worker.executor.compile)  # type: ignore[union-attr]
    except SweepValidationError as exc:
        problems = [p.to_dict() for p in exc.problems]
        raise ApiError(422, f"{len(problems)} problem(s) in the sweep's {len(sweep)} cells; nothing was "
                            "queued: " + "; ".join(str(p) for p in exc.problems[:3]),
                       problems=problems) from None
    except SweepError as exc:
        raise ApiError(400, f"sweeps: {exc}") from None
    except MigrationError as exc:
        raise ApiError(400, f"{exc.node}: migrating from version {exc.from_version} failed: "
                            f"{exc.message}") from None
    sweep_id = uuid.uuid4().hex[:12]

    def added(run_id: str, position: int, index: int) -> None:
        worker.offer_plan(run_id, plans[index])
        worker.announce({"type": "run.queued", "run": run_id, "position": position, "front": front,
                         "running": worker.current is not None, "created": time.time(),
                         "sweep": {"id": sweep_id, "cell": index}})
    rows = [(cell.index, dict(cell.values), plan.document) for (cell, _), plan in zip(cells, plans)]
    runs = store.add_sweep(sweep_id, sweep.to_dict(), base_document(wf), rows, front, added)
    return {"id": runs[0][0], "position": runs[0][1], "count": len(runs), "sweep": sweep_id,
            "runs": [r for r, _ in runs]}


def _sweep_or_404(request: web.Request) -> dict[str, Any]:
    sweep_id = request.match_info["id"]
    data = request.app[STORE].get_sweep(sweep_id)
    if data is None:
        raise ApiError(404, f"no sweep with id {sweep_id!r}")
    return data


async def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


@routes.get("/api/sweeps/{id}")
async def get_sweep(request: web.Request) -> web.Response:
    """A sweep: mode, axes, and per cell its values, run, status, error and images."""
    data = await _off_loop(_sweep_or_404, request)
    counts: dict[str, int] = defaultdict(int)
    cells = []
    for run in data["runs"]:
        counts[run["status"]] += 1
        ui = (run.get("result") or {}).get("ui") or {}
        images = next((u["images"] for u in ui.values() if isinstance(u, dict) and u.get("images")), [])
        cells.append({"cell": run["sweep"]["cell"], "values": run["sweep"]["values"], "run": run["id"],
                      "status": run["status"], "error": run.get("error"), "started": run["started"],
                      "finished": run["finished"], "images": images})
    return web.json_response({"id": data["id"], "created": data["created"], "mode": data["mode"],
                              "title": data["title"], "axes": data["axes"], "count": data["cells"],
                              "counts": dict(counts), "cells": cells})


def _axes(data: dict[str, Any]) -> list["Axis"]:
    from loom.sweeps import Axis
    return [Axis(a["node"], a["input"], tuple(a["values"])) for a in data["axes"]]


def _ui_scalars(ui: dict[str, Any], nodes: dict[str, Any], registry: Any) -> dict[str, float]:
    """Metric values from a stored run's ``ui`` (runs store what nodes show, not their outputs):
    a metric node that shows one value gives "<node>.<output>" when it has one output, else
    each shown value gives "<node>.<label>"."""
    from loom.sweep_results import is_metric
    out: dict[str, float] = {}
    for nid, shown in ui.items():
        entry = nodes.get(nid)
        spec = registry.get(entry.get("type")) if registry is not None and isinstance(entry, dict) else None
        values = shown.get("values") if isinstance(shown, dict) else None
        if spec is None or not is_metric(spec) or not isinstance(values, dict):
            continue
        numbers = {k: float(v) for k, v in values.items()
                   if isinstance(v, (int, float)) and math.isfinite(float(v))}
        if len(numbers) == 1 and len(spec.outputs) == 1:
            out[f"{nid}.{spec.outputs[0].name}"] = next(iter(numbers.values()))
        else:
            out.update({f"{nid}.{label}": v for label, v in numbers.items()})
    return out


def cell_results(request: web.Request, data: dict[str, Any], images: bool) -> list["CellResult"]:
    """The sweep's runs as CellResults (images read from the output folder when asked)."""
    from loom.sweep_results import ui_images
    from loom.sweeps import Cell, CellResult, literal_seeds
    registry = request.app[WORKER].registry
    settings = request.app[SETTINGS]
    results = []
    for run in data["runs"]:
        result = run.get("result") or {}
        ui = result.get("ui") or {}
        doc = json.loads(run["workflow"])
        nodes = doc.get("nodes") or {}
        scalars = result.get("scalars") or _ui_scalars(ui, nodes, registry)
        seeds = literal_seeds(doc, registry) if registry is not None else {}
        pics: list[Any] = []
        if images:
            first = next((u for u in ui.values() if isinstance(u, dict) and u.get("images")), None)
            if first is not None:
                pics, found = ui_images(first, settings)
                seeds.update(found)
        seconds = (run["finished"] - run["started"]) if run["finished"] and run["started"] else 0.0
        error = (run.get("error") or {}).get("message")
        cell = Cell(run["sweep"]["cell"], run["sweep"]["values"])
        results.append(CellResult(cell, run["status"], pics, scalars, seconds, seeds, run["id"], error))
    return results


def human_means(store: "QueueStore", sweep_id: str) -> dict[int, dict[str, Any]]:
    """cell → criterion → Interval of its 1–5 scores."""
    from loom.rating_stats import mean_interval
    scores: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in store.ratings.scores(sweep=sweep_id):
        if r["cell"] is not None:
            scores[r["cell"]][r["criterion"]].append(float(r["score"]))
    return {cell: {c: mean_interval(v) for c, v in crits.items()} for cell, crits in scores.items()}


def correlations(rows: list[dict[str, Any]], metrics: set[str]) -> dict[str, dict[str, Any]]:
    """criterion → metric → Spearman's ρ over the cells that have both (None: too few cells or a
    constant side), from the table rows (``sweep_report.correlations``)."""
    from loom import sweep_report
    out: dict[str, dict[str, Any]] = {}
    for (human, metric), rho in sweep_report.correlations(rows).items():
        if metric in metrics:
            out.setdefault(human.removeprefix("human."), {})[metric] = rho if math.isfinite(rho) else None
    return out


def _table(request: web.Request) -> tuple[dict[str, Any], list["CellResult"], list[dict[str, Any]], dict]:
    from loom import sweep_report
    data = _sweep_or_404(request)
    results = cell_results(request, data, images=False)
    human = human_means(request.app[STORE], data["id"])
    rows = sweep_report.table_rows(results, _axes(data), human)
    return data, results, rows, human


@routes.get("/api/sweeps/{id}/table")
async def sweep_table(request: web.Request) -> web.Response:
    """Per cell: swept values, status, time, seeds, metrics and human means; and the rank
    correlation of each human criterion with each metric."""
    data, results, rows, human = await _off_loop(_table, request)
    metrics = {k for r in results for k in r.scalars}
    return web.json_response({"sweep": data["id"], "axes": data["axes"], "rows": rows,
                              "metrics": sorted(metrics), "correlations": correlations(rows, metrics)},
                             dumps=lambda v: json.dumps(v, default=str))


@routes.get("/api/sweeps/{id}/table.csv")
async def sweep_table_csv(request: web.Request) -> web.Response:
    """The table as CSV."""
    from loom import sweep_report
    data, _, rows, _ = await _off_loop(_table, request)
    return web.Response(text=sweep_report.to_csv(rows), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="sweep-{data["id"]}.csv"'})


def _axis_query(request: web.Request, name: str, keys: list[str], default: str | None) -> str | None:
    value = request.query.get(name, default) or None
    if value is not None and value not in keys:
        raise ApiError(400, f"?{name}={value!r} is not a swept input (axes: {', '.join(keys)})")
    return value


def _grid(request: web.Request) -> bytes:
    from loom import sweep_report
    data = _sweep_or_404(request)
    keys = [a["node"] + "." + a["input"] for a in data["axes"]]
    x = _axis_query(request, "x", keys, keys[0])
    y = _axis_query(request, "y", keys, keys[1] if len(keys) > 1 and keys[1] != x else None)
    page = _axis_query(request, "page", keys, None)
    raw_n = request.query.get("n", "0")
    if not raw_n.isdigit():
        raise ApiError(400, f"?n= must be a page number from 0, got {raw_n!r}")
    sweep = {"id": data["id"], "mode": data["mode"], "axes": data["axes"]}
    workflow = {**data["workflow"], "sweeps": data["axes"], "sweep_mode": data["mode"]}  # reruns the sweep
    results = cell_results(request, data, images=True)
    pages = sweep_report.grid_images(results, _axes(data), x, y, page, workflow=workflow, sweep=sweep)
    if int(raw_n) >= len(pages):
        raise ApiError(400, f"?n={raw_n}: the grid has {len(pages)} page(s)")
    buf = io.BytesIO()
    sweep_report.save_grid_png(pages[int(raw_n)], buf, workflow, sweep)
    return buf.getvalue()


@routes.get("/api/sweeps/{id}/grid.png")
async def sweep_grid(request: web.Request) -> web.Response:
    """The cells' images as one labelled grid (?x=&y=&page= axis keys, ?n= page number)."""
    body = await _off_loop(_grid, request)
    return web.Response(body=body, content_type="image/png")


def _plot(request: web.Request) -> bytes:
    from loom import sweep_report
    data, results, rows, _ = _table(request)
    keys = [a["node"] + "." + a["input"] for a in data["axes"]]
    x = _axis_query(request, "x", keys, keys[0])
    series = _axis_query(request, "series", keys, None)
    numeric = sorted({k for row in rows for k, v in row.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys})
    metrics = sorted({k for r in results for k in r.scalars})
    metric = request.query.get("metric") or (metrics[0] if metrics else None)
    if metric is None or metric not in numeric:
        raise ApiError(400, f"?metric={metric!r} is not a column of the table "
                            f"(numbers: {', '.join(numeric) or 'none yet'})")
    buf = io.BytesIO()
    try:
        image = sweep_report.plot_image(rows, x, metric, series)
    except ValueError as exc:  # e.g. no finished cell has a value of this metric yet
        raise ApiError(400, f"cannot plot {metric!r} against {x!r}: {exc}") from exc
    image.save(buf, format="PNG")
    return buf.getvalue()


@routes.get("/api/sweeps/{id}/plot.png")
async def sweep_plot(request: web.Request) -> web.Response:
    """A metric against a swept value (?x=&metric=&series=), one line per series value."""
    body = await _off_loop(_plot, request)
    return web.Response(body=body, content_type="image/png")
