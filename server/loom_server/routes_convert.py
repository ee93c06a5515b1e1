"""``POST /api/convert``: another program's workflow (a ComfyUI JSON or PNG…) as a Loom
workflow plus the importer's report. The server only knows loom's importer protocol."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from loom.errors import WorkflowFileError

from .security import ApiError, read_body
from .state import CONFIG

routes = web.RouteTableDef()


def convert_body(data: bytes) -> dict[str, Any]:
    """``{workflow, report}`` for a request body (on an executor thread: parsing is slow)."""
    from loom.importers import convert_bytes, failure_report
    if not data.strip():
        raise ApiError(400, "the request body is empty; send a workflow file (JSON or PNG)",
                       report=failure_report("the request body is empty"))
    try:
        workflow, report = convert_bytes(data, name="the request body")
    except WorkflowFileError as exc:
        raise ApiError(400, str(exc), report=failure_report(str(exc))) from None
    if report is None:   # already a Loom workflow: nothing to convert
        report = {"importer": None, "source": "Loom workflow", "complete": True, "counts": {},
                  "entries": []}
    return {"workflow": workflow, "report": report}


@routes.post("/api/convert")
async def convert(request: web.Request) -> web.Response:
    """Body: the file (PNG or JSON) → 200 ``{workflow, report}``; 400 ``{error, report}``."""
    config = request.app[CONFIG]
    data = await read_body(request, max(config.body_limit, config.upload_limit))
    result = await asyncio.get_running_loop().run_in_executor(None, convert_body, data)
    return web.json_response(result)
