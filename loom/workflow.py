"""The one workflow format: JSON files, dicts, and PNGs that carry their workflow."""
from __future__ import annotations

import copy
import json
import math
import re
import sys
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

from .errors import WorkflowFileError

FORMAT = "loom.workflow"
FORMAT_VERSION = 1
PNG_WORKFLOW_KEY = "loom.workflow"
PNG_RUN_KEY = "loom.run"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_JSON_DEPTH = 64  # arrays/objects inside each other; a workflow file needs 5

_NOT_BRACKET_OR_QUOTE = bytes(c for c in range(256) if c not in b'[]{}"')
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes
_STRING = re.compile(rb'"[^"]*"')


def json_depth(data: bytes) -> int:
    """How deeply the arrays and objects of JSON text nest; brackets inside strings do not count.

    Linear, in C-speed byte operations and without recursion (100,000 levels cost nothing):
    escaped backslashes and quotes are dropped, then everything but brackets and quotes,
    then the strings (only quotes and brackets are left of them); the depth is the highest
    running sum of +1 per opening and -1 per closing bracket. For text that is not JSON the
    number means little: the parser reports that text.
    """
    kept = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_BRACKET_OR_QUOTE)
    brackets = _STRING.sub(b"", kept.replace(b'""', b"")).translate(_BRACKET_STEP)
    return max(accumulate(memoryview(brackets).cast("b")), default=0)


def _same(obj: dict[str, Any]) -> dict[str, Any]:
    return obj


class NotJSONError(WorkflowFileError):
    """The text is not JSON at all (as opposed to JSON over Loom's limits)."""


class _NotFinite(ValueError):
    """NaN, Infinity or a number too large for a float: JSON that browsers cannot read back."""


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def parse_json(data: bytes | str, name: str = "<json>") -> Any:
    """Parse JSON text within Loom's limits, or raise WorkflowFileError (one line naming ``name``).

    The limits: UTF-8 text, arrays and objects at most ``MAX_JSON_DEPTH`` deep (checked before
    parsing, so that neither the parser nor a later deep copy or encoding hits Python's
    recursion limit), integers of at most ``sys.get_int_max_str_digits()`` digits. The
    parser calls back into Python once per object, which lets other threads (the server's
    event loop) run while a large document is parsed: ``json.loads`` alone holds the GIL
    for its whole length (0.2 s for a 5 MB workflow).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise WorkflowFileError(f"{name}: JSON nested {depth} levels deep; "
                                f"the limit is {MAX_JSON_DEPTH}")
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
        return json.loads(text, object_hook=_same, parse_constant=_no_constant, parse_float=_finite)
    except UnicodeDecodeError as exc:
        raise WorkflowFileError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise NotJSONError(f"{name}: not valid JSON (line {exc.lineno}, "
                                f"column {exc.colno}: {exc.msg})") from None
    except _NotFinite as exc:
        raise WorkflowFileError(f"{name}: {str(exc)[:40]} is not a finite number (JSON has no "
                                "NaN or Infinity)") from None
    except RecursionError:  # under the depth limit, only when called from a deep stack
        raise WorkflowFileError(f"{name}: JSON nested too deeply for this call") from None
    except ValueError:  # the only other ValueError json raises: int() refusing a long literal
        raise WorkflowFileError(f"{name}: a number has more than {sys.get_int_max_str_digits()} "
                                "digits") from None


def is_link(value: Any) -> bool:
    """A link is exactly ``{"node": id, "output": name}``."""
    return type(value) is dict and len(value) == 2 and "node" in value and "output" in value


@dataclass
class Workflow:
    """Nodes keyed by id ({type, version, inputs, ui}), layout groups, and meta."""

    nodes: dict[str, Any] = field(default_factory=dict)
    groups: list[Any] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, copy_data: bool = True) -> "Workflow":
        """Check the envelope (format, version, nodes); per-node problems are left to validate().

        ``copy_data=False`` shares the caller's dicts (the executor reads, never writes them).
        """
        if not isinstance(data, dict):
            raise WorkflowFileError(f"a workflow is a JSON object, got {type(data).__name__}")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise WorkflowFileError(f"not a Loom workflow: format is {fmt!r}, expected {FORMAT!r}")
        ver = data.get("version", FORMAT_VERSION)
        if not isinstance(ver, int) or ver > FORMAT_VERSION:
            raise WorkflowFileError(f"workflow format version {ver!r} is not supported "
                                    f"(this Loom reads version {FORMAT_VERSION})")
        nodes = data.get("nodes")
        if not isinstance(nodes, dict):
            raise WorkflowFileError("a workflow needs \"nodes\": an object of node id → node")
        groups = data.get("groups", [])
        meta = data.get("meta", {})
        if not isinstance(groups, list):
            raise WorkflowFileError("\"groups\" must be a list")
        if not isinstance(meta, dict):
            raise WorkflowFileError("\"meta\" must be an object")
        extra = {k: v for k, v in data.items()
                 if k not in ("format", "version", "nodes", "groups", "meta")}
        if not copy_data:
            return cls(nodes=nodes, groups=groups, meta=meta, extra=extra)
        try:
            return cls(nodes=copy.deepcopy(nodes), groups=copy.deepcopy(groups),
                       meta=copy.deepcopy(meta), extra=copy.deepcopy(extra))
        except RecursionError:  # a dict built in Python; parse_json keeps files far shallower
            raise WorkflowFileError("the workflow is nested too deeply to copy") from None

    @classmethod
    def load(cls, source: "str | Path | dict[str, Any] | bytes | Workflow") -> "Workflow":
        """Read a workflow from a dict, a .json or Loom .png path, or the bytes of either."""
        if isinstance(source, Workflow):
            return cls.from_dict(source.to_dict())
        if isinstance(source, dict):
            try:
                return cls.from_dict(source)
            except WorkflowFileError as exc:  # another program's workflow? (loom.importers)
                return cls.from_dict(_imported(source, "<dict>", exc), copy_data=False)
        if isinstance(source, (bytes, bytearray)):
            return cls.from_bytes(bytes(source), "<bytes>")
        path = Path(source)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise WorkflowFileError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise WorkflowFileError(f"{path}: is a folder, not a workflow file") from None
        except OSError as exc:
            raise WorkflowFileError(f"{path}: cannot read ({exc.strerror})") from None
        return cls.from_bytes(data, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> "Workflow":
        """Parse JSON bytes or a PNG carrying a ``loom.workflow`` text chunk."""
        if data.startswith(PNG_SIGNATURE):
            text = read_png_text(data, name).get(PNG_WORKFLOW_KEY)
            if text is None:
                error = WorkflowFileError(f"{name}: this PNG carries no Loom workflow")
                return cls.from_dict(_imported(data, name, error), copy_data=False)
            return cls.from_bytes(text.encode(), f"{name} (embedded workflow)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise WorkflowFileError(f"{name}: neither JSON text nor a PNG image") from None
        parsed = parse_json(text, name)
        try:
            return cls.from_dict(parsed)
        except WorkflowFileError as exc:
            error = WorkflowFileError(f"{name}: {exc}")
        return cls.from_dict(_imported(parsed, name, error), copy_data=False)

    def to_dict(self, copy_data: bool = True) -> dict[str, Any]:
        """The JSON form (a deep copy unless ``copy_data=False``)."""
        dup = copy.deepcopy if copy_data else (lambda x: x)
        d: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "nodes": dup(self.nodes)}
        if self.groups:
            d["groups"] = dup(self.groups)
        if self.meta:
            d["meta"] = dup(self.meta)
        d.update(dup(self.extra))
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """Serialized JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def save(self, path: str | Path) -> Path:
        """Write the JSON file (atomically) and return its path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        tmp.replace(p)
        return p

    def set_input(self, node: str, name: str, value: Any) -> None:
        """Set one input (the CLI's ``--set node.input=value``)."""
        entry = self.nodes.get(node)
        if not isinstance(entry, dict):
            raise WorkflowFileError(f"--set {node}.{name}: there is no node {node!r}")
        entry.setdefault("inputs", {})[name] = value


def _imported(data: Any, name: str, error: WorkflowFileError) -> dict[str, Any]:
    """``data`` (not a Loom workflow) converted by an importer, else ``error`` raised from None."""
    from .importers import fallback
    try:
        return fallback(data, name, error)
    except WorkflowFileError as exc:
        raise exc from None


def read_png_text(data: bytes, name: str = "<png>") -> dict[str, str]:
    """The text chunks of PNG bytes (raises WorkflowFileError when not a readable PNG)."""
    import io

    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return {k: v for k, v in getattr(im, "text", {}).items() if isinstance(v, str)}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            Image.DecompressionBombError) as exc:
        raise WorkflowFileError(f"{name}: unreadable PNG ({exc})") from None


def png_info(workflow: "Workflow | dict[str, Any] | None", run: dict[str, Any] | None) -> Any:
    """A ``PngInfo`` with the ``loom.workflow`` and ``loom.run`` text chunks."""
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    if workflow is not None:
        wf = workflow.to_dict() if isinstance(workflow, Workflow) else workflow
        info.add_itxt(PNG_WORKFLOW_KEY, json.dumps(wf, ensure_ascii=False))
    if run is not None:
        info.add_itxt(PNG_RUN_KEY, json.dumps(run, ensure_ascii=False, default=str))
    return info
