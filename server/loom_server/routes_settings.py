"""The canvas's settings kept on the server: ``GET/PUT /api/settings`` ⇄ ``<home>/user/settings.json``.

The page keeps its settings in the browser too; the copy with the newer ``updated`` stamp wins
when the page loads. Only known keys with values of the right type are stored.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from loom.errors import WorkflowFileError
from loom.workflow import parse_json

from .security import ApiError, read_json
from .state import SETTINGS

routes = web.RouteTableDef()
FILE_NAME = "settings.json"
BODY_LIMIT = 16 * 1024  # a settings document is a few hundred bytes


def _one_of(*choices: str) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in choices


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_zoom(v: Any) -> bool:
    """0 = automatic (fit, readable); else a scale between 0.1 and 4."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and (v == 0 or 0.1 <= v <= 4))


# key → (check, what the value must be, for the error message)
KNOWN: dict[str, tuple[Callable[[Any], bool], str]] = {
    "linkStyle": (_one_of("spline", "linear", "straight"), "'spline', 'linear' or 'straight'"),
    "snapToGrid": (_is_bool, "true or false"),
    "confirmDelete": (_is_bool, "true or false"),
    "theme": (_one_of("dark", "light"), "'dark' or 'light'"),
    "defaultZoom": (_is_zoom, "0 (automatic) or a number from 0.1 to 4"),
    "minimap": (_is_bool, "true or false"),
}


def check_settings(body: Any) -> dict[str, Any]:
    """``{"settings": {...}, "updated": seconds}`` with known keys and types only; else 400."""
    if not isinstance(body, dict):
        raise ApiError(400, 'settings: send a JSON object {"settings": {...}, "updated": <seconds>}')
    extra = sorted(set(body) - {"settings", "updated"})
    if extra:
        raise ApiError(400, f"settings: unknown top-level key(s) {', '.join(map(repr, extra))}; "
                            "expected 'settings' and 'updated'")
    values = body.get("settings")
    if not isinstance(values, dict):
        raise ApiError(400, f"settings: 'settings' must be an object, got {type(values).__name__}")
    for key, value in values.items():
        if key not in KNOWN:
            raise ApiError(400, f"settings: unknown setting {key!r} (known: {', '.join(KNOWN)})",
                           key=key)
        check, want = KNOWN[key]
        if not check(value):
            raise ApiError(400, f"settings: {key} must be {want}, got {json.dumps(value)[:60]}",
                           key=key)
    updated = body.get("updated")
    if (not isinstance(updated, (int, float)) or isinstance(updated, bool)
            or not math.isfinite(updated) or updated < 0):
        raise ApiError(400, "settings: 'updated' must be the time of the change in seconds "
                            f"since 1970, got {json.dumps(updated)[:60]}")
    return {"settings": values, "updated": float(updated)}


def _path(request: web.Request) -> Path:
    return request.app[SETTINGS].user / FILE_NAME


def _read(path: Path) -> dict[str, Any]:
    """The stored document; none yet, or a damaged file, reads as no settings."""
    try:
        data = parse_json(path.read_bytes(), FILE_NAME)
        return check_settings(data)
    except FileNotFoundError:
        return {"settings": {}, "updated": None}
    except (OSError, WorkflowFileError, ApiError):
        return {"settings": {}, "updated": None, "damaged": True}


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@routes.get("/api/settings")
async def get_settings(request: web.Request) -> web.Response:
    """The stored settings: ``{"settings": {...}, "updated": seconds | null}``."""
    doc = await asyncio.get_running_loop().run_in_executor(None, _read, _path(request))
    return web.json_response(doc)


@routes.put("/api/settings")
async def put_settings(request: web.Request) -> web.Response:
    """Replace the stored settings (validated; written atomically)."""
    body = await read_json(request, BODY_LIMIT)
    doc = check_settings(body)
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    await asyncio.get_running_loop().run_in_executor(None, write_atomically, _path(request), text)
    return web.json_response(doc)
