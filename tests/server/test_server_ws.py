"""The event stream: many clients, vanished clients, and slow clients never block the others."""
from __future__ import annotations

import asyncio
import json

from loom_server.events import Hub
from srv_helpers import counter, events_until_end, queue


async def test_fifty_clients_each_see_every_event(client):
    sockets = [await client.ws_connect("/api/events") for _ in range(50)]
    for ws in sockets:
        assert (await ws.receive_json())["type"] == "hello"
    run_id = await queue(client, counter(steps=20, delay=0.01, preview=True))
    seen = await asyncio.gather(*(events_until_end(ws, run_id) for ws in sockets))
    first = seen[0]
    types = [e["type"] for e in first]
    assert types[:3] == ["run.queued", "run.started", "node.started"]
    assert types[-1] == "run.finished" and "node.progress" in types
    assert all(s == first for s in seen)  # identical, complete, in order
    await asyncio.gather(*(ws.close() for ws in sockets))


async def test_a_vanished_client_does_not_disturb_the_others(client):
    gone = await client.ws_connect("/api/events")
    stays = await client.ws_connect("/api/events")
    await gone.receive_json()
    await stays.receive_json()
    run_id = await queue(client, counter(steps=30, delay=0.005))
    await gone.close()
    events = await events_until_end(stays, run_id)
    assert events[-1]["type"] == "run.finished"
    system = await (await client.get("/api/system")).json()
    assert system["clients"] == 1
    await stays.close()


class _StuckSocket:
    """A stand-in WebSocket whose send never completes (a client that stopped reading)."""

    closed = False

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.close_code: int | None = None
        self._never = asyncio.Event()

    async def send_str(self, text: str) -> None:
        self.sent.append(text)
        await self._never.wait()

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        self.close_code = code


class _GoodSocket(_StuckSocket):
    async def send_str(self, text: str) -> None:
        self.sent.append(text)


async def test_a_slow_client_is_dropped_and_the_others_get_everything():
    hub = Hub(queue_limit=10)
    stuck, good = _StuckSocket(), _GoodSocket()
    hub.add(stuck)  # type: ignore[arg-type]
    hub.add(good)  # type: ignore[arg-type]
    for i in range(100):
        hub.publish({"type": "node.progress", "run": "r", "value": i, "total": 100})
        await asyncio.sleep(0)  # publishing never waits for a client
    await asyncio.sleep(0.05)
    assert [json.loads(t)["value"] for t in good.sent] == list(range(100))
    assert stuck.close_code == 1008 and len(hub) == 1
    assert len(stuck.sent) < 20
