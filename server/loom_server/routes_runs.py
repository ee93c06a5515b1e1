"""Queueing, listing, cancelling and interrupting runs; the WebSocket event stream."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .events import EVENT_TYPES
from .queue_store import STATUSES, QueueStore
from .security import ApiError, parse_json_body, read_body
from .state import CONFIG, HUB, STORE, WORKER, ready_worker

if TYPE_CHECKING:
    from .workers import Worker

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
MAX_PAGE = 500


@routes.post("/api/runs")
async def queue_run(request: web.Request) -> web.Response:
    """Validate a workflow and queue it: 201 {id, position, count} or 400 {problems}; a workflow
    with ``sweeps`` queues one run per cell (see ``routes_sweeps.accept_sweep``).

    Parsing, validating and storing happen off the event loop (``_accept``): a 5 MB
    workflow takes seconds, and other requests are answered meanwhile."""
    data = await read_body(request, request.app[CONFIG].body_limit)
    worker = await ready_worker(request)
    answer = await asyncio.get_running_loop().run_in_executor(
        None, _accept, data, worker, request.app[STORE])
    worker.wake()
    return web.json_response(answer, status=201)


def _accept(data: bytes, worker: "Worker", store: QueueStore) -> dict[str, Any]:
    """Parse, compile and queue a POSTed workflow (on an executor thread): {id, position, count}.

    The body is freshly parsed and nobody else holds it, so it is used without copies. The
    compiled plan goes to the worker, which runs it without checking anything again."""
    from loom import MigrationError, ValidationError, WorkflowFileError
    from loom.workflow import Workflow
    body = parse_json_body(data)
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a workflow JSON object, got {type(body).__name__}")
    front = body.pop("front", False)
    if not isinstance(front, bool):
        raise ApiError(400, f"\"front\" must be true or false, got {front!r}")
    body.pop("client_id", None)
    if "workflow" in body and "nodes" not in body and isinstance(body["workflow"], dict):
        outer = {k: body[k] for k in ("sweeps", "sweep_mode") if k in body}
        body = {**body["workflow"], **outer}  # also {"workflow": {...}, "front": true, "sweeps": [...]}
    try:
        wf = Workflow.from_dict(body, copy_data=False)
    except WorkflowFileError as exc:
        problem = {"node": None, "input": None, "code": "bad_workflow", "message": str(exc)}
        raise ApiError(400, str(exc), problems=[problem]) from None
    if wf.extra.get("sweeps"):  # one run per cell, every cell checked first
        from .routes_sweeps import accept_sweep
        return accept_sweep(wf, worker, store, front)
    try:  # the worker's executor: its registry, settings and cache of recent plans
        plan = worker.executor.compile(wf)  # type: ignore[union-attr]
    except ValidationError as exc:
        problems = exc.problems
        raise ApiError(400, f"the workflow has {len(problems)} problem(s): "
                            + "; ".join(str(p) for p in problems[:3]),
                       problems=[p.to_dict() for p in problems]) from None
    except MigrationError as exc:
        problem = {"node": exc.node, "input": None, "code": "bad_node",
                   "message": f"migrating from version {exc.from_version} failed: {exc.message}"}
        raise ApiError(400, f"{exc.node}: {problem['message']}", problems=[problem]) from None
    def added(run_id: str, position: int) -> None:
        """Before any worker can claim the run: hand over the plan, announce run.queued."""
        worker.offer_plan(run_id, plan)
        worker.announce({"type": "run.queued", "run": run_id, "position": position, "front": front,
                  "running": worker.current is not None, "created": time.time()})
    run_id, position = store.add(plan.document, front=front, on_added=added)
    return {"id": run_id, "position": position, "count": 1}


def _int_query(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"?{name}= must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"?{name}= must be between {lo} and {hi}, got {value}")
    return value


def _statuses(request: web.Request) -> list[str] | None:
    raw = request.query.get("status")
    if not raw:
        return None
    chosen = [s.strip() for s in raw.split(",") if s.strip()]
    bad = [s for s in chosen if s not in STATUSES]
    if bad:
        raise ApiError(400, f"unknown status {bad[0]!r} (statuses: {', '.join(STATUSES)})")
    return chosen


@routes.get("/api/runs")
async def list_runs(request: web.Request) -> web.Response:
    """Queue and history, newest first: ?status=a,b&limit=N&before=ID."""
    limit = _int_query(request, "limit", 50, 1, MAX_PAGE)
    before = request.query.get("before") or None
    store = request.app[STORE]
    try:
        runs, nxt = store.list(_statuses(request), limit, before)
    except KeyError:
        raise ApiError(400, f"?before={before!r} is not a known run id") from None
    return web.json_response({"runs": runs, "next": nxt, "queue": store.counts()})


@routes.delete("/api/runs")
async def clear_history(request: web.Request) -> web.Response:
    """Delete finished/failed/interrupted/cancelled runs (?status= narrows it)."""
    chosen = _statuses(request)
    live = [s for s in chosen or () if s in ("queued", "running")]
    if live:
        raise ApiError(400, f"only history can be cleared, not {live[0]!r} runs; "
                            "cancel them one by one with DELETE /api/runs/{id}")
    return web.json_response({"deleted": request.app[STORE].clear(chosen)})


@routes.get("/api/runs/{id}")
async def get_run(request: web.Request) -> web.Response:
    """One run with its workflow, status, error and result."""
    run_id = request.match_info["id"]
    text = await asyncio.get_running_loop().run_in_executor(None, request.app[STORE].get_json, run_id)
    if text is None:
        raise ApiError(404, f"no run with id {run_id!r}")
    return web.Response(text=text, content_type="application/json")


@routes.delete("/api/runs/{id}")
async def delete_run(request: web.Request) -> web.Response:
    """Cancel a queued run, interrupt the running one, or delete a finished one from history."""
    run_id = request.match_info["id"]
    store, hub = request.app[STORE], request.app[HUB]
    if store.cancel(run_id):
        request.app[WORKER].forget_plan(run_id)
        hub.publish({"type": "run.cancelled", "run": run_id})
        return web.json_response({"id": run_id, "status": "cancelled"})
    status = store.status_of(run_id)
    if status is None:
        raise ApiError(404, f"no run with id {run_id!r}")
    if status == "running":
        request.app[WORKER].interrupt(run_id)
        return web.json_response({"id": run_id, "status": "interrupting"}, status=202)
    if store.delete(run_id):
        return web.json_response({"id": run_id, "deleted": True})
    raise ApiError(409, f"run {run_id!r} changed state while being deleted; try again")


@routes.post("/api/interrupt")
async def interrupt(request: web.Request) -> web.Response:
    """Interrupt whatever runs now; {interrupted: id or null}."""
    return web.json_response({"interrupted": request.app[WORKER].interrupt()})


@routes.get("/api/events")
async def events(request: web.Request) -> web.WebSocketResponse:
    """The WebSocket of run events (JSON text frames)."""
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "this is a WebSocket endpoint; connect with a WebSocket client")
    await ws.prepare(request)
    hub = request.app[HUB]
    client = hub.add(ws)
    worker = request.app[WORKER]
    hub.send_to(client, {"type": "hello", "queue": request.app[STORE].counts(),
                         "ready": worker.ready.is_set(), "events": list(EVENT_TYPES)})
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data.strip() == '{"type":"ping"}':
                hub.send_to(client, {"type": "pong"})
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        hub.discard(client)
        if client.task is not None:
            client.task.cancel()
    return ws
