"""Fan-out of run events to WebSocket clients without ever blocking the publisher."""
from __future__ import annotations

import asyncio
import base64
import enum
import io
import json
import logging
import math
import weakref
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

EVENT_TYPES = ("run.queued", "run.started", "node.started", "node.cached", "node.progress",
               "node.finished", "node.failed", "run.finished", "run.failed", "run.interrupted",
               "run.cancelled", "run.requeued")


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy: NaN/inf become None, tensors and unknown objects a short description."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 20:
        return repr(value)[:200]
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if isinstance(value, Path):
        return value.as_posix()
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        if len(tuple(shape)) == 0 and hasattr(value, "item"):
            return jsonable(value.item(), depth + 1)
        return f"<{type(value).__name__} shape={list(shape)} dtype={value.dtype}>"
    if hasattr(value, "item") and callable(value.item):
        try:
            return jsonable(value.item(), depth + 1)
        except (TypeError, ValueError):
            pass
    return repr(value)[:200]


def encode_event(event: dict[str, Any]) -> str:
    """The JSON text of an event (done once, whatever the number of clients)."""
    return json.dumps(jsonable(event), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def preview_data_url(image: Any, max_side: int = 256, quality: int = 80) -> str | None:
    """The first image of a BCHW [0,1] tensor as a small JPEG data URL (None if not an image)."""
    import torch
    from PIL import Image as PILImage
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4):
        return None
    t = image[0] if image.ndim == 4 else image
    if t.shape[0] not in (1, 3, 4):
        return None
    arr = (t[:3].detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu()
    arr_np = arr.numpy()
    pil = PILImage.fromarray(arr_np[:, :, 0] if arr_np.shape[2] == 1 else arr_np)
    pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    pil.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Client:
    """One WebSocket with its own outgoing queue and sender task."""

    def __init__(self, ws: web.WebSocketResponse, limit: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=limit)
        self.task: asyncio.Task[None] | None = None
        self.dropped = False

    async def sender(self, hub: "Hub") -> None:
        """Send queued messages in order until told to stop or the socket fails."""
        try:
            while True:
                msg = await self.queue.get()
                if msg is None or self.ws.closed:
                    return
                await self.ws.send_str(msg)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            hub.discard(self)


class Hub:
    """Keeps the connected clients; ``publish`` runs on the event loop and never waits."""

    def __init__(self, queue_limit: int = 50_000) -> None:
        self.queue_limit = queue_limit
        self.clients: "weakref.WeakSet[Client]" = weakref.WeakSet()  # the handlers hold them
        self.published = 0

    def add(self, ws: web.WebSocketResponse) -> Client:
        """Register a prepared WebSocket and start its sender."""
        client = Client(ws, self.queue_limit)
        self.clients.add(client)
        client.task = asyncio.get_running_loop().create_task(client.sender(self))
        return client

    def discard(self, client: Client) -> None:
        """Forget a client (its socket closed or it was too slow)."""
        self.clients.discard(client)

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event dict to every client."""
        self.publish_text(encode_event(event))

    def publish_text(self, text: str) -> None:
        """Send already-encoded JSON to every client; a client whose queue is full is dropped."""
        self.published += 1
        for client in list(self.clients):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(client)

    def send_to(self, client: Client, event: dict[str, Any]) -> None:
        """Send an event to one client only."""
        try:
            client.queue.put_nowait(encode_event(event))
        except asyncio.QueueFull:
            self._drop(client)

    def _drop(self, client: Client) -> None:
        log.warning("dropping a WebSocket client that is %d events behind", client.queue.qsize())
        client.dropped = True
        self.discard(client)
        if client.task is not None:
            client.task.cancel()
        asyncio.get_running_loop().create_task(
            client.ws.close(code=1008, message=b"too slow: events were piling up"))

    async def close_all(self) -> None:
        """Close every socket (server shutdown)."""
        for client in list(self.clients):
            self.discard(client)
            if client.task is not None:
                client.task.cancel()
            try:
                await client.ws.close(code=1001, message=b"server shutting down")
            except Exception:  # noqa: BLE001 - closing best effort
                pass

    def __len__(self) -> int:
        return len(self.clients)
