"""Typed application state (``web.AppKey``) shared by the route modules."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .config import ServerConfig
from .events import Hub
from .queue_store import QueueStore
from .security import ApiError
from .workers import Worker

if TYPE_CHECKING:
    from loom import Registry, Settings

SETTINGS: web.AppKey["Settings"] = web.AppKey("settings")
CONFIG = web.AppKey("config", ServerConfig)
STORE = web.AppKey("store", QueueStore)
HUB = web.AppKey("hub", Hub)
WORKER: web.AppKey[Worker] = web.AppKey("worker")
REGISTRY_OVERRIDE: web.AppKey["Registry | None"] = web.AppKey("registry_override")


async def ready_worker(request: web.Request, timeout: float = 120.0) -> Worker:
    """The worker once its registry is built (503 when it failed or takes too long)."""
    worker = request.app[WORKER]
    if not await worker.wait_ready(timeout):
        raise ApiError(503, "the node registry is still loading; try again shortly")
    if worker.startup_error or worker.registry is None or worker.executor is None:
        raise ApiError(503, f"the node registry failed to load: {worker.startup_error}")
    return worker
