"""Sweeps: one workflow, many runs. Parse the axes, expand the cells, check every cell, run them.

A workflow file may carry ``"sweeps": [{"node", "input", "values"}, ...]`` and
``"sweep_mode": "product" | "zip"`` (or ``"sweeps": {"mode": ..., "axes": [...]}``).
``values`` is a list or a range ``{"start", "stop", "step"}`` whose stop is included when
a step lands on it. The CLI adds axes with ``--sweep node.input=3,5,7`` (or ``=1..4``,
``=0.5..2:0.5``). Expansion makes one plain workflow per cell (sweeps removed); every cell
is compiled before anything runs, so a bad value anywhere stops the sweep up front.
``run_sweep`` runs the cells in order on one executor: its output cache is shared, so a
cell re-runs only the nodes downstream of what changed.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .errors import Interrupted, NodeError, ValidationError
from .sweep_spec import (MAX_CELLS, MODES, SWEEP_KEYS, Axis, Cell, Sweep, SweepError, combine, make_sweep,
                         parse_cli_sweep, parse_sweeps, range_values)
from .workflow import Workflow, is_link

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from .executor import Executor
    from .observer import Observer
    from .plan import Plan
    from .registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellProblem:
    """One problem of one cell: which cell (and its values), node, input, value and why."""

    cell: int
    values: Mapping[str, Any]
    node: str | None
    input: str | None
    code: str
    message: str
    value: Any = None
    cells: int = 1        # how many cells have this same problem

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for the server's 422)."""
        return {"cell": self.cell, "values": dict(self.values), "node": self.node, "input": self.input,
                "code": self.code, "message": self.message, "value": self.value, "cells": self.cells}

    def __str__(self) -> str:
        where = ".".join(p for p in (self.node, self.input) if p) or "workflow"
        vals = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        more = f" (and {self.cells - 1} more cell(s))" if self.cells > 1 else ""
        return f"cell {self.cell} ({vals}): {where}: {self.message}{more}"


class SweepValidationError(ValidationError):
    """Cells of a sweep do not compile; ``problems`` are CellProblems (nothing ran)."""


@dataclass
class CellResult:
    """What one cell's run gave: status, images, metric scalars, time and seeds."""

    cell: Cell
    status: str                          # "finished" | "failed" | "interrupted"
    images: list["PILImage"]
    scalars: dict[str, float]
    seconds: float
    seeds: dict[str, int]
    run_id: str | None = None
    error: str | None = None


# --- expansion and validation ---------------------------------------------------
def base_document(workflow: Workflow | Mapping[str, Any]) -> dict[str, Any]:
    """The workflow as a dict without its sweep keys."""
    doc = workflow.to_dict() if isinstance(workflow, Workflow) else copy.deepcopy(dict(workflow))
    for k in SWEEP_KEYS:
        doc.pop(k, None)
    return doc


def sweep_document(base: Mapping[str, Any], sweep: Sweep) -> dict[str, Any]:
    """``base`` with the sweep spelled out (what a grid PNG carries: running it runs the sweep)."""
    return {**base, "sweeps": [a.to_dict() for a in sweep.axes], "sweep_mode": sweep.mode}


def cell_document(base: Mapping[str, Any], cell: Cell, axes: Sequence[Axis]) -> dict[str, Any]:
    """One cell's plain workflow: ``base`` with the cell's values set (base is not changed)."""
    doc = dict(base)
    nodes = dict(doc["nodes"])
    for a in axes:
        entry = nodes.get(a.node)
        if not isinstance(entry, dict):
            raise SweepError(f"sweep axis {a.key}: the workflow has no node {a.node!r}")
        entry = dict(entry)
        entry["inputs"] = {**(entry.get("inputs") or {}), a.input: copy.deepcopy(cell.values[a.key])}
        nodes[a.node] = entry
    doc["nodes"] = nodes
    return doc


def expand(workflow: Workflow | Mapping[str, Any], sweep: Sweep) -> list[tuple[Cell, dict[str, Any]]]:
    """Every cell with its own workflow document (sweeps removed), in run order."""
    base = base_document(workflow)
    if not isinstance(base.get("nodes"), dict):
        raise SweepError("a workflow needs \"nodes\": an object")
    return [(cell, cell_document(base, cell, sweep.axes)) for cell in sweep.cells()]


def check_cells(cells: Sequence[tuple[Cell, dict[str, Any]]],
                compile_one: Callable[[dict[str, Any]], Any]) -> list[Any]:
    """Compile every cell; the compiled results in order, or SweepValidationError naming cells.

    ``compile_one`` returns a plan or raises ``ValidationError``. A problem that several cells
    share (one not about a swept value) is reported once, at its first cell, with a count."""
    plans: list[Any] = []
    found: dict[tuple[Any, ...], CellProblem] = {}
    for cell, doc in cells:
        try:
            plans.append(compile_one(doc))
        except ValidationError as exc:
            for p in exc.problems:
                node, name = getattr(p, "node", None), getattr(p, "input", None)
                key = (node, name, getattr(p, "code", "invalid"), getattr(p, "message", str(p)))
                if key in found:
                    found[key] = _more(found[key])
                    continue
                found[key] = CellProblem(cell.index, cell.values, node, name, key[2], key[3],
                                         _value_of(doc, node, name))
    if found:
        raise SweepValidationError(list(found.values()))
    return plans


def _more(p: CellProblem) -> CellProblem:
    return CellProblem(p.cell, p.values, p.node, p.input, p.code, p.message, p.value, p.cells + 1)


def _value_of(doc: Mapping[str, Any], node: str | None, name: str | None) -> Any:
    entry = doc.get("nodes", {}).get(node) if node else None
    if not isinstance(entry, dict) or name is None:
        return None
    value = (entry.get("inputs") or {}).get(name)
    return None if is_link(value) else value


def compile_sweep(executor: "Executor", workflow: Workflow | Mapping[str, Any],
                  sweep: Sweep) -> list[tuple[Cell, "Plan"]]:
    """Every cell compiled on ``executor`` (its registry and settings), or SweepValidationError."""
    cells = expand(workflow, sweep)
    plans = check_cells(cells, executor.compile)
    return [(cell, plan) for (cell, _), plan in zip(cells, plans)]


def sweep_problems(workflow: Workflow | Mapping[str, Any], sweep: Sweep, registry: "Registry",
                   settings: Any = None) -> list[CellProblem]:
    """Every problem of every cell ([] when all compile), for ``loom validate``."""
    from .plan import compile_workflow

    def compile_one(doc: dict[str, Any]) -> Any:
        result = compile_workflow(doc, registry, settings)
        if isinstance(result, list):
            raise ValidationError(result)
        return result
    try:
        check_cells(expand(workflow, sweep), compile_one)
    except SweepValidationError as exc:
        return list(exc.problems)
    return []


# --- running --------------------------------------------------------------------
def run_sweep(executor: "Executor", workflow: Workflow | Mapping[str, Any], sweep: Sweep | None = None,
              observer: "Observer | None" = None,
              on_cell: Callable[[CellResult], None] | None = None,
              run_id: Callable[[Cell], str] | None = None) -> list[CellResult]:
    """Check every cell, then run them in order on one executor (the cache is shared).

    ``sweep`` defaults to the workflow's own. A failed cell is recorded and the next one
    runs; an interrupt stops the sweep (the cells not run are reported "interrupted").
    ``on_cell`` is called after each cell (for progress lines)."""
    if sweep is None:
        doc = workflow.to_dict(copy_data=False) if isinstance(workflow, Workflow) else workflow
        sweep = parse_sweeps(doc)
        if sweep is None:
            raise SweepError("the workflow has no sweeps")
    compiled = compile_sweep(executor, workflow, sweep)
    from .sweep_results import collect  # images and scalars of a finished run
    results: list[CellResult] = []
    stopped = False
    for cell, plan in compiled:
        rid = run_id(cell) if run_id else None
        if stopped:
            res = CellResult(cell, "interrupted", [], {}, 0.0, {}, rid, "not run: the sweep was interrupted")
        else:
            t0 = time.perf_counter()
            try:
                result = executor.run(plan, observer, rid)
                images, scalars, seeds = collect(plan, result, executor.settings)
                res = CellResult(cell, "finished", images, scalars, time.perf_counter() - t0, seeds,
                                 result.run_id)
            except NodeError as exc:
                status = "failed"
                if exc.error_type == "KeyboardInterrupt":  # Ctrl-C inside a node stops the sweep
                    status, stopped = "interrupted", True
                res = CellResult(cell, status, [], {}, time.perf_counter() - t0, {}, rid,
                                 f"{exc.node}: {exc.error_type}: {exc.message}")
            except Interrupted as exc:
                stopped = True
                res = CellResult(cell, "interrupted", [], {}, time.perf_counter() - t0, {}, rid, str(exc))
        results.append(res)
        if on_cell is not None:
            on_cell(res)
    return results


def describe(values: Mapping[str, Any]) -> str:
    """``sample.cfg=5, pos.text='a red circle'`` for labels and log lines."""
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False) if isinstance(v, str) else v}"
                     for k, v in values.items())


def literal_seeds(document: Mapping[str, Any], registry: "Registry") -> dict[str, int]:
    """``"node.input" -> seed`` of every literal Seed input in a workflow document."""
    out: dict[str, int] = {}
    nodes = document.get("nodes")
    if not isinstance(nodes, dict):
        return out
    for nid, entry in nodes.items():
        spec = registry.get(entry.get("type")) if isinstance(entry, dict) else None
        if spec is None:
            continue
        inputs = entry.get("inputs") or {}
        for inp in spec.inputs:
            if inp.widget != "seed":
                continue
            v = inputs.get(inp.name, inp.default)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{nid}.{inp.name}"] = int(v)
    return out


__all__ = ["Axis", "Cell", "CellProblem", "CellResult", "MAX_CELLS", "MODES", "Sweep", "SweepError",
           "SweepValidationError", "check_cells", "combine", "compile_sweep", "describe", "expand",
           "literal_seeds", "make_sweep", "parse_cli_sweep", "parse_sweeps", "range_values",
           "run_sweep", "sweep_document", "sweep_problems"]
