"""Importers: workflow files of other programs read as Loom workflows, each with a report.

An importer is any object with

* ``name`` (a short id) and ``label`` (words for messages),
* ``sniff(data) -> bool``: whether it recognises ``data``,
* ``convert(data, options=None) -> (workflow_dict, report)``,

published in the entry-point group ``loom.importers`` (the value names the object, or a
class or function that returns one). ``data`` is what a file holds: the parsed JSON value, or
the bytes of a PNG (an importer should also take unparsed JSON bytes). ``convert`` raises
``WorkflowFileError`` when it cannot read anything; problems with single nodes go into the
report. Loom itself knows no other program: it only asks the importers.

The report is a JSON object::

    {"importer": "name", "source": "what was read", "complete": true,
     "counts": {"mapped": 7, ...},
     "entries": [{"kind": "mapped", "node": "3", "type": "...", "message": "...", ...}]}

``complete`` is true when every node of the file has a Loom counterpart; entry kinds are
``mapped``, ``changed`` (a value Loom had to change), ``unmapped``, ``dissolved`` (a node that
became links, values or layout), ``problem`` (bad input) and ``note``. Importers may add keys.

``Workflow.load`` falls back on the importers when a file or dict is not a Loom workflow;
``load`` here does the same and also returns the report (the CLI prints it).
"""
from __future__ import annotations

import importlib.metadata
import logging
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

from .errors import WorkflowFileError

if TYPE_CHECKING:
    from .workflow import Workflow

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "loom.importers"
KINDS = ("mapped", "changed", "unmapped", "dissolved", "problem", "note")


@runtime_checkable
class Importer(Protocol):
    """What an importer offers (see the module docstring)."""

    name: str
    label: str

    def sniff(self, data: Any) -> bool:
        """Whether ``data`` (parsed JSON, or PNG/JSON bytes) is a file this importer reads."""
        ...

    def convert(self, data: Any, options: Mapping[str, Any] | None = None,
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The Loom workflow dict and the report."""
        ...


_lock = threading.Lock()
_loaded: list[Importer] | None = None
_extra: list[Importer] = []


def register(importer: Importer) -> None:
    """Add an importer by hand (tests, embedding programs); entry points are found by themselves."""
    with _lock:
        _extra.append(importer)


def _instance(obj: Any) -> Importer:
    """The entry point's object, or what calling it returns (a class or a factory)."""
    if all(hasattr(obj, a) for a in ("sniff", "convert")) and not isinstance(obj, type):
        return obj
    made = obj()
    if not all(hasattr(made, a) for a in ("sniff", "convert")):
        raise TypeError(f"{obj!r} made {made!r}, which has no sniff() and convert()")
    return made


def available() -> list[Importer]:
    """Every importer: the ``loom.importers`` entry points (loaded once), then registered ones."""
    global _loaded
    with _lock:
        if _loaded is None:
            found: list[Importer] = []
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                try:
                    found.append(_instance(ep.load()))
                except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the others
                    log.warning("importer %s (%s) unavailable: %s: %s", ep.name, ep.value,
                                type(exc).__name__, exc)
            _loaded = found
        return [*_loaded, *_extra]


def find(data: Any) -> Importer | None:
    """The first importer that recognises ``data``, else None."""
    for imp in available():
        try:
            if imp.sniff(data):
                return imp
        except Exception as exc:  # noqa: BLE001 - a sniffer that raises simply does not match
            log.debug("importer %s: sniff raised %s: %s", getattr(imp, "name", imp),
                      type(exc).__name__, exc)
    return None


def _label(imp: Importer) -> str:
    return str(getattr(imp, "label", None) or getattr(imp, "name", None) or type(imp).__name__)


def run(imp: Importer, data: Any, options: Mapping[str, Any] | None = None,
        name: str = "<data>") -> tuple[dict[str, Any], dict[str, Any]]:
    """``imp.convert(data, options)``; any failure becomes one ``WorkflowFileError`` line."""
    try:
        workflow, report = imp.convert(data, options)
    except WorkflowFileError as exc:
        raise WorkflowFileError(f"{name}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a bug in a plugin: logged, reported in one line
        log.exception("importer %s failed on %s", _label(imp), name)
        raise WorkflowFileError(f"{name}: the {_label(imp)} importer failed: "
                                f"{type(exc).__name__}: {exc}") from None
    if not isinstance(workflow, dict) or not isinstance(report, dict):
        raise WorkflowFileError(f"{name}: the {_label(imp)} importer returned no workflow")
    report.setdefault("importer", getattr(imp, "name", _label(imp)))
    return workflow, report


def convert(data: Any, options: Mapping[str, Any] | None = None,
            name: str = "<data>") -> tuple[dict[str, Any], dict[str, Any]]:
    """Convert parsed JSON or PNG bytes with the importer that recognises it.

    Raises ``WorkflowFileError`` when none does (the message names the installed ones)."""
    imp = find(data)
    if imp is None:
        names = ", ".join(_label(i) for i in available()) or "none installed"
        raise WorkflowFileError(f"{name}: not a Loom workflow, and no importer recognises it "
                                f"(importers: {names})")
    return run(imp, data, options, name)


MAX_PNG_TEXT = 64 << 20   # bytes of text a PNG's chunks may inflate to


def png_text(data: bytes, limit: int = MAX_PNG_TEXT) -> dict[str, str]:
    """The tEXt, zTXt and iTXt chunks of PNG bytes, read without decoding the image (an upload
    of any pixel size costs nothing); compressed text stops at ``limit`` bytes. A damaged or
    truncated file gives the chunks before the damage; bytes that are not a PNG give {}."""
    import struct
    import zlib

    from .workflow import PNG_SIGNATURE
    out: dict[str, str] = {}
    if not data.startswith(PNG_SIGNATURE):
        return out
    pos, total = len(PNG_SIGNATURE), 0

    def inflate(raw: bytes) -> bytes | None:
        d = zlib.decompressobj()
        try:
            text = d.decompress(raw, max(1, limit - total))
        except zlib.error:
            return None
        return None if d.unconsumed_tail else text

    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length or kind == b"IEND":
            break
        pos += 12 + length
        key, sep, rest = body.partition(b"\0")
        if not sep or kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        text: bytes | None = rest
        if kind == b"zTXt":
            text = inflate(rest[1:])
        elif kind == b"iTXt":
            compressed, rest = rest[:1] == b"\1", rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            _translated, _, rest = rest.partition(b"\0")
            text = inflate(rest) if compressed else rest
        if text is None or total + len(text) > limit:
            continue
        total += len(text)
        out[key.decode("latin-1")] = text.decode("utf-8" if kind == b"iTXt" else "latin-1", "replace")
    return out


def parse_bytes(data: bytes, name: str = "<bytes>") -> Any:
    """PNG bytes as they are, anything else parsed as JSON (``WorkflowFileError`` when not JSON)."""
    from .workflow import PNG_SIGNATURE, parse_json
    if data.startswith(PNG_SIGNATURE):
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise WorkflowFileError(f"{name}: neither JSON text nor a PNG image") from None
    if not text.strip():
        raise WorkflowFileError(f"{name}: the file is empty")
    return parse_json(text, name)


def convert_bytes(data: bytes, options: Mapping[str, Any] | None = None,
                  name: str = "<bytes>") -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A file's bytes as a Loom workflow dict: a Loom workflow as it is (report None), else
    converted by an importer. ``WorkflowFileError`` (why it is not a Loom workflow) when
    no importer recognises it either."""
    from .workflow import PNG_WORKFLOW_KEY, Workflow
    parsed = parse_bytes(data, name)
    if isinstance(parsed, bytes):
        if PNG_WORKFLOW_KEY in png_text(parsed):
            return Workflow.from_bytes(parsed, name).to_dict(), None
        error = WorkflowFileError(f"{name}: this PNG carries no Loom workflow")
    else:
        try:
            return Workflow.from_dict(parsed).to_dict(), None
        except WorkflowFileError as exc:
            error = WorkflowFileError(f"{name}: {exc}")
    imp = find(parsed)
    if imp is None:
        raise error
    return run(imp, parsed, options, name)


@dataclass
class _Capture:
    options: Mapping[str, Any] | None
    reports: list[dict[str, Any]] = field(default_factory=list)


_CAPTURE: ContextVar[_Capture | None] = ContextVar("loom_import_capture", default=None)


def fallback(data: Any, name: str, error: WorkflowFileError) -> dict[str, Any]:
    """For ``Workflow.load``: ``data`` (not a Loom workflow) converted by an importer, else
    ``error`` raised. The report goes to ``load``'s caller, or to the log."""
    imp = find(data)
    if imp is None:
        raise error
    capture = _CAPTURE.get()
    workflow, report = run(imp, data, capture.options if capture else None, name)
    if capture is not None:
        capture.reports.append(report)
    else:
        level = logging.INFO if report.get("complete") else logging.WARNING
        log.log(level, "%s: converted by the %s importer: %s", name, _label(imp), summary(report))
    return workflow


def load(source: "str | Path | bytes | dict[str, Any]", options: Mapping[str, Any] | None = None,
         ) -> tuple["Workflow", dict[str, Any] | None]:
    """``Workflow.load(source)`` plus the importer's report (None for a Loom workflow)."""
    from .workflow import Workflow
    token = _CAPTURE.set(_Capture(options))
    try:
        wf = Workflow.load(source)
        capture = _CAPTURE.get()
    finally:
        _CAPTURE.reset(token)
    reports = capture.reports if capture else []
    return wf, (reports[-1] if reports else None)


def counts(report: Mapping[str, Any]) -> dict[str, int]:
    """How many entries of each kind (from ``counts`` when given, else counted)."""
    given = report.get("counts")
    if isinstance(given, dict):
        return {str(k): int(v) for k, v in given.items() if isinstance(v, int)}
    out: dict[str, int] = {}
    for e in report.get("entries") or []:
        if isinstance(e, dict):
            out[str(e.get("kind"))] = out.get(str(e.get("kind")), 0) + 1
    return out


def summary(report: Mapping[str, Any]) -> str:
    """One line: how many nodes were mapped, left unmapped, changed…"""
    c = counts(report)
    parts = [f"{c[k]} {k}" for k in KINDS if c.get(k)]
    state = "complete" if report.get("complete") else "incomplete"
    return f"{', '.join(parts) or 'nothing'} ({state})"


def format_report(report: Mapping[str, Any]) -> str:
    """The report as text: a heading, one line per entry, a summary line."""
    lines = [f"{report.get('source') or 'imported file'} (importer: {report.get('importer')})"]
    for e in report.get("entries") or []:
        if not isinstance(e, dict):
            continue
        where = " ".join(str(x) for x in (e.get("node"), e.get("type")) if x not in (None, ""))
        lines.append(f"  {str(e.get('kind', '')):<9} {where + ': ' if where else ''}{e.get('message', '')}")
    lines.append(f"summary: {summary(report)}")
    return "\n".join(lines)


def failure_report(message: str, importer: str | None = None) -> dict[str, Any]:
    """A report for a file nothing could read (one problem entry)."""
    return {"importer": importer, "source": None, "complete": False, "counts": {"problem": 1},
            "entries": [{"kind": "problem", "node": None, "type": None, "message": message}]}
