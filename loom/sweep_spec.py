"""What a sweep is: axes of values, how they combine (product or zip), and how it is written.

The workflow file's ``"sweeps"`` / ``"sweep_mode"`` and the CLI's ``--sweep node.input=...``
both become a ``Sweep``: checked for malformed axes, duplicate inputs, zip lengths and the
cell limit. Expanding, validating and running live in ``loom.sweeps`` (which re-exports all
of this).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .errors import LoomError
from .workflow import NotJSONError, parse_json

MODES = ("product", "zip")
MAX_CELLS = 1000          # runs one sweep may make
SWEEP_KEYS = ("sweeps", "sweep_mode")  # top-level workflow keys a cell's workflow drops


class SweepError(LoomError):
    """A sweep cannot be expanded: a malformed axis, a bad range, too many cells."""


@dataclass(frozen=True)
class Axis:
    """One swept input and the values it takes."""

    node: str
    input: str
    values: tuple[Any, ...]

    @property
    def key(self) -> str:
        """``"node.input"``."""
        return f"{self.node}.{self.input}"

    def to_dict(self) -> dict[str, Any]:
        """The workflow-file form with its values spelled out."""
        return {"node": self.node, "input": self.input, "values": list(self.values)}


@dataclass(frozen=True)
class Cell:
    """One combination of values: ``values`` maps "node.input" to a value, in axis order."""

    index: int
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Sweep:
    """Axes and how they combine; ``cells()`` lists the combinations in run order."""

    axes: tuple[Axis, ...]
    mode: str = "product"

    def __len__(self) -> int:
        if not self.axes:
            return 0
        sizes = [len(a.values) for a in self.axes]
        return math.prod(sizes) if self.mode == "product" else sizes[0]

    def cells(self) -> list[Cell]:
        """Every cell; in product mode the last axis changes fastest."""
        keys = [a.key for a in self.axes]
        combos: Iterable[tuple[Any, ...]]
        combos = (itertools.product(*(a.values for a in self.axes)) if self.mode == "product"
                  else zip(*(a.values for a in self.axes)))
        return [Cell(i, dict(zip(keys, combo))) for i, combo in enumerate(combos)]

    def to_dict(self) -> dict[str, Any]:
        """``{"mode", "axes"}`` with every value spelled out."""
        return {"mode": self.mode, "axes": [a.to_dict() for a in self.axes]}


# --- parsing --------------------------------------------------------------------
def range_values(spec: Mapping[str, Any], where: str = "range") -> tuple[Any, ...]:
    """``{"start", "stop", "step"}`` as values; stop is included when a step lands on it.

    All-integer ranges give ints; otherwise floats rounded to 12 significant digits (so
    ``0.1..0.3:0.1`` gives 0.1, 0.2, 0.3, not 0.30000000000000004). ``step`` defaults to 1
    and may be negative when stop < start."""
    unknown = set(spec) - {"start", "stop", "step"}
    if unknown:
        raise SweepError(f"{where}: unknown key {sorted(unknown)[0]!r} (a range has start, stop, step)")
    nums = {}
    for k in ("start", "stop", "step"):
        v = spec.get(k, 1 if k == "step" else None)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SweepError(f"{where}: {k} must be a finite number, got {v!r}")
        nums[k] = v
    start, stop, step = nums["start"], nums["stop"], nums["step"]
    if step == 0:
        raise SweepError(f"{where}: step must not be 0")
    if (stop - start) * step < 0:
        raise SweepError(f"{where}: a step of {step} never gets from {start} to {stop}")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_CELLS:
        raise SweepError(f"{where}: {count} values; a sweep makes at most {MAX_CELLS} runs")
    if all(isinstance(v, int) for v in (start, stop, step)):
        return tuple(start + i * step for i in range(count))
    return tuple(float(f"{start + i * step:.12g}") for i in range(count))


def _axis(entry: Any, where: str) -> Axis:
    if not isinstance(entry, dict):
        raise SweepError(f"{where}: an axis is an object {{\"node\", \"input\", \"values\"}}, "
                         f"got {type(entry).__name__}")
    unknown = set(entry) - {"node", "input", "values"}
    if unknown:
        raise SweepError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    node, name, values = entry.get("node"), entry.get("input"), entry.get("values")
    for label, v in (("node", node), ("input", name)):
        if not isinstance(v, str) or not v:
            raise SweepError(f"{where}: \"{label}\" must be a non-empty string, got {v!r}")
    where = f"{where} ({node}.{name})"
    if isinstance(values, dict):
        vals = range_values(values, where)
    elif isinstance(values, list):
        vals = tuple(values)
    else:
        raise SweepError(f"{where}: \"values\" must be a list or a range {{\"start\", \"stop\", "
                         f"\"step\"}}, got {values!r}")
    if not vals:
        raise SweepError(f"{where}: no values")
    return Axis(node, name, vals)  # type: ignore[arg-type]


def make_sweep(axes: Sequence[Axis], mode: str = "product") -> Sweep:
    """Check mode, duplicate inputs, zip lengths and the cell limit; the Sweep."""
    if mode not in MODES:
        raise SweepError(f"sweep mode {mode!r} is not one of {', '.join(MODES)}")
    seen: set[str] = set()
    for a in axes:
        if a.key in seen:
            raise SweepError(f"{a.key} is swept twice; give it one list of values")
        seen.add(a.key)
    if mode == "zip" and len({len(a.values) for a in axes}) > 1:
        sizes = ", ".join(f"{a.key}: {len(a.values)}" for a in axes)
        raise SweepError(f"zip mode needs the same number of values on every axis ({sizes})")
    sweep = Sweep(tuple(axes), mode)
    if len(sweep) > MAX_CELLS:
        raise SweepError(f"the sweep has {len(sweep)} cells; at most {MAX_CELLS} runs are allowed "
                         "(use fewer values, or zip mode)")
    return sweep


def parse_sweeps(data: Mapping[str, Any]) -> Sweep | None:
    """The sweep a workflow document carries (top-level ``sweeps``/``sweep_mode``), or None."""
    raw = data.get("sweeps")
    mode = data.get("sweep_mode", "product")
    if raw is None:
        return None
    if isinstance(raw, dict):
        unknown = set(raw) - {"mode", "axes"}
        if unknown:
            raise SweepError(f"sweeps: unknown key {sorted(unknown)[0]!r} (give \"mode\" and \"axes\")")
        mode, raw = raw.get("mode", mode), raw.get("axes")
    if not isinstance(raw, list):
        raise SweepError(f"\"sweeps\" must be a list of axes, got {type(raw).__name__}")
    if not raw:
        return None
    return make_sweep([_axis(e, f"sweeps[{i}]") for i, e in enumerate(raw)], mode)


def _cli_number(text: str, item: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise SweepError(f"--sweep {item!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SweepError(f"--sweep {item!r}: {text!r} is not a finite number")
    return value


def _cli_value(text: str, target: str) -> Any:
    try:
        return parse_json(text, f"--sweep {target}")
    except NotJSONError:
        return text


def parse_cli_sweep(item: str) -> Axis:
    """``node.input=3,5,7`` | ``=1..4`` | ``=1..10:2`` | ``=["a, b", "c"]`` (a JSON list) → Axis.

    List items are JSON when they parse (numbers, true/false), else text."""
    target, sep, raw = item.partition("=")
    node_id, dot, name = target.rpartition(".")
    if not sep or not dot or not node_id or not name or not raw:
        raise SweepError(f"--sweep {item!r}: write node.input=v1,v2,… or node.input=start..stop[:step]")
    if ".." in raw and not raw.lstrip().startswith(("[", '"')):
        span, _, step = raw.partition(":")
        start, _, stop = span.partition("..")
        spec = {"start": _cli_number(start.strip(), item), "stop": _cli_number(stop.strip(), item)}
        if step:
            spec["step"] = _cli_number(step.strip(), item)
        return Axis(node_id, name, range_values(spec, f"--sweep {target}"))
    if raw.lstrip().startswith("["):
        values = _cli_value(raw, target)
        if not isinstance(values, list) or not values:
            raise SweepError(f"--sweep {item!r}: a JSON list of values must not be empty")
        return Axis(node_id, name, tuple(values))
    return Axis(node_id, name, tuple(_cli_value(v.strip(), target) for v in raw.split(",")))


def combine(base: Sweep | None, extra: Sequence[Axis], mode: str | None = None) -> Sweep | None:
    """The file's sweep with the command line's axes (an axis on both: the command line's wins)."""
    axes = {a.key: a for a in (base.axes if base else ())}
    for a in extra:
        axes[a.key] = a
    if not axes:
        return None
    return make_sweep(list(axes.values()), mode or (base.mode if base else "product"))


__all__ = ["Axis", "Cell", "MAX_CELLS", "MODES", "SWEEP_KEYS", "Sweep", "SweepError", "combine", "make_sweep",
           "parse_cli_sweep", "parse_sweeps", "range_values"]
