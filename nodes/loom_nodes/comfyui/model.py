"""What a ComfyUI file holds once read (either format), and the conversion report.

Both ComfyUI formats are read into the same shape: ``CNode`` per node with its links by input
name (``Ref`` = an output slot of another node), its widget values by name, and its layout
already in Loom's terms (``ui.pos``/``ui.size`` are the outer box, title bar included).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TITLE_HEIGHT = 30          # litegraph's title bar: ComfyUI's pos/size leave it out, Loom's include it
ACTIVE, MUTED, BYPASSED = 0, 2, 4   # litegraph node modes (1 and 3, "on event/trigger", run as 0)
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
CONTROL = "control_after_generate"   # pseudo widget: the seed control's value follows its seed
UPLOAD = "upload"                    # pseudo widget: LoadImage's upload button serializes "image"


@dataclass(frozen=True)
class Ref:
    """Output ``slot`` of ComfyUI node ``node``."""

    node: str
    slot: int


@dataclass(frozen=True)
class Missing:
    """A value that could not be had, and why (reported where it is used)."""

    why: str


@dataclass(frozen=True)
class Literal:
    """A plain value standing in for an output (a primitive node's value)."""

    value: Any


@dataclass(frozen=True)
class Link:
    """An output of a Loom node."""

    node: str
    output: str

    def to_json(self) -> dict[str, str]:
        """Loom's link form."""
        return {"node": self.node, "output": self.output}


@dataclass
class CNode:
    """One ComfyUI node, from either format."""

    id: str
    type: str
    title: str | None = None
    mode: int = ACTIVE
    links: dict[str, Ref] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    controls: dict[str, str] = field(default_factory=dict)   # seed input → control after generate
    widgets_raw: Any = None                                   # UI: widgets_values as found
    input_types: dict[str, str] = field(default_factory=dict)  # UI: input name → ComfyUI type
    input_order: list[str] = field(default_factory=list)       # UI: input names by slot
    widget_inputs: set[str] = field(default_factory=set)       # UI: inputs that are widgets
    outputs: list[tuple[str, str]] = field(default_factory=list)  # UI: (name, type) by slot
    ui: dict[str, Any] = field(default_factory=dict)             # Loom ui (pos, size, title, …)
    properties: dict[str, Any] = field(default_factory=dict)
    raw_inputs: dict[str, Any] = field(default_factory=dict)     # API: inputs as found

    @property
    def label(self) -> str:
        """``3 (KSampler)`` for messages."""
        return f"{self.id} ({self.type})"


@dataclass
class Parsed:
    """A whole ComfyUI file."""

    kind: str                       # "ui" or "api"
    source: str                     # what was read, in words
    nodes: dict[str, CNode] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    subgraphs: dict[str, str] = field(default_factory=dict)   # subgraph id → its name
    link_count: int = 0


class Report:
    """The conversion report (the shape ``loom.importers`` documents)."""

    def __init__(self, source: str = "ComfyUI workflow") -> None:
        self.source = source
        self.entries: list[dict[str, Any]] = []
        self.incomplete = False

    def add(self, kind: str, node: "CNode | None", message: str, **extra: Any) -> dict[str, Any]:
        """Append an entry (``node`` None: about the whole file)."""
        entry: dict[str, Any] = {"kind": kind, "node": node.id if node else None,
                                 "type": node.type if node else None, "message": message}
        entry.update(extra)
        if kind in ("unmapped", "problem"):
            self.incomplete = True
        self.entries.append(entry)
        return entry

    def problem(self, node: "CNode | None", message: str, **extra: Any) -> None:
        """Bad input: never an exception, always an entry naming the node."""
        self.add("problem", node, message, **extra)

    def ordered(self) -> list[dict[str, Any]]:
        """Entries node by node (in the order nodes were first reported), each node's own
        outcome first, then its changes, notes and problems; file-wide problems lead and
        file-wide notes close."""
        rank: dict[str, int] = {}
        for e in self.entries:
            if e["node"] is not None:
                rank.setdefault(e["node"], len(rank))
        kinds = {"mapped": 0, "unmapped": 0, "dissolved": 0, "changed": 1, "note": 2, "problem": 3}

        def key(e: dict[str, Any]) -> tuple[int, int]:
            if e["node"] is None:
                return (-1, 0) if e["kind"] == "problem" else (len(rank), kinds.get(e["kind"], 4))
            return rank[e["node"]], kinds.get(e["kind"], 4)

        return sorted(self.entries, key=key)

    def to_dict(self, **extra: Any) -> dict[str, Any]:
        """The JSON form."""
        counts: dict[str, int] = {}
        for e in self.entries:
            counts[e["kind"]] = counts.get(e["kind"], 0) + 1
        return {"importer": "comfyui", "source": self.source, "complete": not self.incomplete,
                "counts": counts, "entries": self.ordered(), **extra}


def as_int(value: Any) -> Any:
    """An integer from an int or an integral float (ComfyUI files hold 1024.0 at times)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def as_float(value: Any) -> Any:
    """A float from any number; other values as they are."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def box(value: Any) -> list[float] | None:
    """``[x, y]`` from a list or litegraph's old ``{"0": x, "1": y}`` form; None when unusable."""
    if isinstance(value, dict):
        value = [value.get("0"), value.get("1")]
    if (isinstance(value, (list, tuple)) and len(value) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value[:2])):
        return [round(float(value[0]), 1), round(float(value[1]), 1)]
    return None
