"""``loom import-comfy`` and ``loom export-comfy`` (entry-point group ``loom.commands``)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_UNREADABLE, EXIT_INCOMPLETE = 0, 1, 3


def register_import(subparsers: "argparse._SubParsersAction[Any]",
                    parents: list[argparse.ArgumentParser]) -> None:
    """Add ``import-comfy``."""
    p = subparsers.add_parser(
        "import-comfy", parents=parents, help="convert a ComfyUI workflow (JSON or PNG) to Loom",
        description="Convert a ComfyUI workflow (UI or API JSON, or a PNG ComfyUI saved) into a "
                    "Loom workflow and print what was mapped, changed and left out. Exit 0 when "
                    "every node mapped, 3 when some did not, 1 when the file is unreadable.")
    p.add_argument("file", help="ComfyUI .json or .png")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="write the Loom workflow here (default: to stdout, the report to stderr)")
    p.add_argument("--models", action="append", default=[], metavar="NAME=REPLACEMENT",
                   help="substitute a model file (NAME may use * and ?); 'diffusers:NAME' loads a "
                        "diffusers folder, e.g. --models '*=diffusers:embedded/shapes-ldm'")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=import_main)


def register_export(subparsers: "argparse._SubParsersAction[Any]",
                    parents: list[argparse.ArgumentParser]) -> None:
    """Add ``export-comfy``."""
    p = subparsers.add_parser(
        "export-comfy", parents=parents, help="write a Loom workflow in ComfyUI's API format",
        description="Write a Loom workflow as a ComfyUI prompt (API format: what ComfyUI's "
                    "/prompt takes), for the nodes that have a ComfyUI counterpart. Exit 0 when "
                    "every node was written, 3 when some were left out, 1 when unreadable.")
    p.add_argument("workflow", help="Loom .json or .png")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="write the prompt here (default: to stdout, the report to stderr)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=export_main)


def _emit(data: dict[str, Any], report: dict[str, Any], output: Path | None, as_json: bool) -> None:
    """The result to ``output`` (report to stdout) or to stdout (report to stderr)."""
    from loom.importers import format_report
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    shown = json.dumps(report, indent=2, ensure_ascii=False) if as_json else format_report(report)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(shown)
        print(f"wrote {output}")
    else:
        sys.stdout.write(text)
        print(shown, file=sys.stderr)


def _read(path: str) -> bytes:
    from loom.errors import WorkflowFileError
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise WorkflowFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise WorkflowFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def import_main(ns: argparse.Namespace) -> int:
    """Convert, write, print the report; the exit code says whether everything mapped."""
    from loom.errors import WorkflowFileError
    from loom.importers import parse_bytes, run

    from . import importer
    try:
        data = parse_bytes(_read(ns.file), ns.file)
        if not importer.sniff(data):
            raise WorkflowFileError(f"{ns.file}: not a ComfyUI workflow (neither its UI nor its "
                                    "API format, nor a PNG carrying one)")
        options = {"models": list(ns.models), "title": Path(ns.file).stem}
        workflow, report = run(importer, data, options, ns.file)
    except WorkflowFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    _emit(workflow, report, ns.output, ns.json)
    return EXIT_OK if report.get("complete") else EXIT_INCOMPLETE


def export_main(ns: argparse.Namespace) -> int:
    """Export, write, print the report; the exit code says whether every node was written."""
    from loom.errors import WorkflowFileError
    from loom.importers import load

    from .exporter import export
    try:
        workflow, _ = load(ns.workflow)
    except WorkflowFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    prompt, report = export(workflow)
    _emit(prompt, report, ns.output, ns.json)
    return EXIT_OK if report.get("complete") else EXIT_INCOMPLETE
