"""Example workflows from the repo and the user's saved ones."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from loom.errors import WorkflowFileError
from loom.workflow import Workflow, parse_json

from .security import ApiError, read_json
from .state import CONFIG, SETTINGS

routes = web.RouteTableDef()
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}")  # fullmatch: '$' would pass "a\n"
SOURCES = ("saved", "example")


def examples_dir() -> Path:
    """The example workflows Loom ships (the repo's workflows/ folder)."""
    from loom.settings import SHIPPED_WORKFLOWS
    return SHIPPED_WORKFLOWS


def _saved_dir(request: web.Request) -> Path:
    return request.app[SETTINGS].user / "workflows"


def check_name(raw: str) -> str:
    """A workflow name without ``.json``; 400 unless letters, digits, space, '_', '-', '.'."""
    name = raw[:-5] if raw.lower().endswith(".json") else raw
    if not NAME_RE.fullmatch(name) or name.endswith(".") or ".." in name:
        raise ApiError(400, f"bad workflow name {raw!r}: use up to 100 letters, digits, spaces, "
                            "'_', '-' or '.', starting with a letter or digit")
    return name


def _entry(path: Path, source: str) -> dict[str, Any]:
    title, subgraph = None, False
    try:
        meta = parse_json(path.read_bytes(), path.name).get("meta", {})
        title = meta.get("title") if isinstance(meta, dict) else None
        subgraph = isinstance(meta, dict) and meta.get("subgraph") is True  # a saved subgraph
    except (OSError, WorkflowFileError, AttributeError):
        pass
    return {"name": path.stem, "source": source, "title": title if isinstance(title, str) else None,
            "modified": path.stat().st_mtime, "subgraph": subgraph}


def _listing(folder: Path, source: str) -> list[dict[str, Any]]:
    if not folder.is_dir():
        return []
    return [_entry(p, source) for p in sorted(folder.glob("*.json"))
            if p.is_file() and NAME_RE.fullmatch(p.stem)]


@routes.get("/api/workflows")
async def list_workflows(request: web.Request) -> web.Response:
    """Saved workflows then examples: [{name, source, title, modified, subgraph}]."""
    items = _listing(_saved_dir(request), "saved") + _listing(examples_dir(), "example")
    return web.json_response({"workflows": items})


def _find(request: web.Request, name: str) -> Path:
    source = request.query.get("source")
    if source is not None and source not in SOURCES:
        raise ApiError(400, f"?source= must be one of {', '.join(SOURCES)}, got {source!r}")
    folders = {"saved": _saved_dir(request), "example": examples_dir()}
    for src in ([source] if source else list(SOURCES)):
        path = folders[src] / f"{name}.json"
        if path.is_file():
            return path
    raise ApiError(404, f"no workflow named {name!r}")


@routes.get("/api/workflows/{name}")
async def get_workflow(request: web.Request) -> web.Response:
    """The workflow JSON (a saved one wins over an example of the same name; ?source= picks)."""
    name = check_name(request.match_info["name"])
    path = _find(request, name)
    data = await asyncio.get_running_loop().run_in_executor(None, _read, path, name)
    return web.json_response(data)


def _read(path: Path, name: str) -> Any:
    """A stored workflow, parsed off the loop; a damaged file is a 422 naming it, not a 500."""
    try:
        return parse_json(path.read_bytes(), f"workflow {name!r}")
    except OSError as exc:
        raise ApiError(422, f"workflow {name!r} cannot be read: {exc}") from None
    except WorkflowFileError as exc:
        raise ApiError(422, f"{exc} (the saved file is damaged: save the workflow again "
                            "or delete it)") from None


@routes.put("/api/workflows/{name}")
async def put_workflow(request: web.Request) -> web.Response:
    """Save a workflow under the user folder (the envelope is checked, not the graph)."""
    name = check_name(request.match_info["name"])
    body = await read_json(request, request.app[CONFIG].body_limit)
    path = _saved_dir(request) / f"{name}.json"
    existed = await asyncio.get_running_loop().run_in_executor(None, _save, body, path)
    return web.json_response({"name": name, "source": "saved"}, status=200 if existed else 201)


def _save(body: Any, path: Path) -> bool:
    """Check the envelope of a freshly parsed body and write it (off the loop); True if replaced."""
    try:
        wf = Workflow.from_dict(body, copy_data=False)
    except WorkflowFileError as exc:
        raise ApiError(400, f"not a workflow: {exc}") from None
    existed = path.is_file()
    wf.save(path)
    return existed


@routes.delete("/api/workflows/{name}")
async def delete_workflow(request: web.Request) -> web.Response:
    """Delete a saved workflow (examples cannot be deleted)."""
    name = check_name(request.match_info["name"])
    path = _saved_dir(request) / f"{name}.json"
    if not path.is_file():
        raise ApiError(404, f"no saved workflow named {name!r}")
    path.unlink()
    return web.json_response({"name": name, "deleted": True})
