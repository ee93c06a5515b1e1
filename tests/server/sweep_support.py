"""Nodes and helpers shared by the sweep and ratings API tests."""
from __future__ import annotations

import asyncio
from typing import Any

from loom import Context, Registry, node
from loom.plugins import load_folder
from srv_helpers import NODES_DIR, link, wait_status, wf


@node(category="metrics", output=True)
def sv_metric(ctx: Context, value: int) -> float:
    """A metric: the value as a float (shown under a label)."""
    ctx.show(values={"score": float(value)})
    return float(value)


def sweep_registry() -> Registry:
    """The server test nodes plus a metric."""
    reg = Registry()
    load_folder(reg, NODES_DIR)
    reg.add(sv_metric)
    return reg


def sweep_workflow(a=(1, 2), b=(10, 20), **extra: Any) -> dict[str, Any]:
    """srv_add(a, b) → srv_save (a grey PNG) and sv_metric; sweeps over add.a and add.b."""
    doc = wf(add={"type": "srv_add", "inputs": {"a": 0, "b": 0}},
             save={"type": "srv_save", "inputs": {"value": link("add", "int")}},
             m={"type": "sv_metric", "inputs": {"value": link("add", "int")}})
    doc["sweeps"] = [{"node": "add", "input": "a", "values": list(a)},
                     {"node": "add", "input": "b", "values": list(b)}]
    doc.update(extra)
    return doc


async def queue_sweep(client, doc: dict[str, Any], wait: bool = True) -> dict[str, Any]:
    """POST a sweep (asserting 201) and, with ``wait``, wait until every cell finished."""
    resp = await client.post("/api/runs", json=doc)
    body = await resp.json()
    assert resp.status == 201, body
    if wait:
        await asyncio.gather(*(wait_status(client, r, ("finished",)) for r in body["runs"]))
    return body
