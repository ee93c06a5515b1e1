"""Helpers for the server tests: workflow builders, event readers, polling."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

NODES_DIR = Path(__file__).parent / "custom_nodes"
TERMINAL = ("run.finished", "run.failed", "run.interrupted", "run.cancelled")


def wf(**nodes: Any) -> dict[str, Any]:
    """A workflow dict from node entries."""
    return {"format": "loom.workflow", "version": 1, "nodes": nodes}


def link(node: str, output: str) -> dict[str, str]:
    """A link to ``node.output``."""
    return {"node": node, "output": output}


def add_show(a: int = 1, b: int = 2) -> dict[str, Any]:
    """srv_add(a, b) → srv_show."""
    return wf(add={"type": "srv_add", "inputs": {"a": a, "b": b}},
              show={"type": "srv_show", "inputs": {"value": link("add", "int")}})


def counter(steps: int = 3, delay: float = 0.0, start: int = 0, preview: bool = False) -> dict[str, Any]:
    """srv_count → srv_show."""
    return wf(count={"type": "srv_count", "inputs": {"start": start, "steps": steps,
                                                      "delay": delay, "preview": preview}},
              show={"type": "srv_show", "inputs": {"value": link("count", "int")}})


_BUFFERED: dict[int, list[dict[str, Any]]] = {}


async def next_event(ws, timeout: float = 10.0) -> dict[str, Any]:
    """The next JSON event from a WebSocket (skips hello/pong). A frame may hold one event
    (an object) or the events of one event-loop tick (an array); they come out one by one."""
    pending = _BUFFERED.setdefault(id(ws), [])
    while True:
        while pending:
            ev = pending.pop(0)
            if ev["type"] not in ("hello", "pong"):
                return ev
        msg = await asyncio.wait_for(ws.receive(), timeout)
        assert msg.type.name == "TEXT", msg
        data = json.loads(msg.data)
        pending.extend(data if isinstance(data, list) else [data])


async def events_until_end(ws, run_id: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Events of ``run_id`` up to and including its terminal event."""
    out = []
    while True:
        ev = await next_event(ws, timeout)
        if ev.get("run") != run_id:
            continue
        out.append(ev)
        if ev["type"] in TERMINAL:
            return out


async def queue(client, workflow: dict[str, Any], **extra: Any) -> str:
    """POST a workflow and return the run id (asserting 201)."""
    resp = await client.post("/api/runs", json={**workflow, **extra})
    body = await resp.json()
    assert resp.status == 201, body
    return body["id"]


async def wait_status(client, run_id: str, statuses: tuple[str, ...], timeout: float = 20.0) -> dict:
    """Poll GET /api/runs/{id} until its status is one of ``statuses``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        run = await (await client.get(f"/api/runs/{run_id}")).json()
        if run["status"] in statuses:
            return run
        assert loop.time() < end, f"run {run_id} stayed {run['status']}"
        await asyncio.sleep(0.02)
