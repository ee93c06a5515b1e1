"""The one workflow format: JSON files, dicts, and PNGs that carry their workflow."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import WorkflowFileError

FORMAT = "loom.workflow"
FORMAT_VERSION = 1
PNG_WORKFLOW_KEY = "loom.workflow"
PNG_RUN_KEY = "loom.run"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
        return cls(nodes=copy.deepcopy(nodes), groups=copy.deepcopy(groups),
                   meta=copy.deepcopy(meta), extra=copy.deepcopy(extra))

    @classmethod
    def load(cls, source: "str | Path | dict[str, Any] | bytes | Workflow") -> "Workflow":
        """Read a workflow from a dict, a .json or Loom .png path, or the bytes of either."""
        if isinstance(source, Workflow):
            return cls.from_dict(source.to_dict())
        if isinstance(source, dict):
            return cls.from_dict(source)
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
                raise WorkflowFileError(f"{name}: this PNG carries no Loom workflow")
            return cls.from_bytes(text.encode(), f"{name} (embedded workflow)")
        try:
            parsed = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise WorkflowFileError(f"{name}: neither JSON text nor a PNG image") from None
        except json.JSONDecodeError as exc:
            raise WorkflowFileError(f"{name}: not valid JSON (line {exc.lineno}, "
                                    f"column {exc.colno}: {exc.msg})") from None
        try:
            return cls.from_dict(parsed)
        except WorkflowFileError as exc:
            raise WorkflowFileError(f"{name}: {exc}") from None

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


def read_png_text(data: bytes, name: str = "<png>") -> dict[str, str]:
    """The text chunks of PNG bytes (raises WorkflowFileError when not a readable PNG)."""
    import io

    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return {k: v for k, v in getattr(im, "text", {}).items() if isinstance(v, str)}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
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
