"""The application factory: routes, middlewares, and the worker's lifetime in ``cleanup_ctx``."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, AsyncIterator

from aiohttp import web

from . import routes_convert, routes_files, routes_info, routes_runs, routes_settings, routes_workflows
from . import routes_ratings, routes_sweeps
from .config import ServerConfig
from .events import Hub
from .queue_store import QueueStore
from .security import error_middleware, guard_middleware
from .state import CONFIG, HUB, REGISTRY_OVERRIDE, SETTINGS, STORE, WORKER
from .workers import ThreadWorker, Worker

if TYPE_CHECKING:
    from loom import Registry, Settings

log = logging.getLogger(__name__)
QUEUE_DB = "queue.sqlite3"


def create_app(settings: "Settings", config: ServerConfig | None = None, *,
               registry: "Registry | None" = None) -> web.Application:
    """A new Loom application; nothing heavy happens until it starts (see ``_lifetime``).

    ``registry`` replaces ``Registry.default(settings)`` (tests use a registry of tiny nodes).
    """
    config = config or ServerConfig()
    config.check()
    app = web.Application(middlewares=[error_middleware(), guard_middleware(config)],
                          client_max_size=max(config.upload_limit, config.body_limit) + (1 << 20))
    app[SETTINGS] = settings
    app[CONFIG] = config
    app[REGISTRY_OVERRIDE] = registry
    for table in (routes_runs.routes, routes_info.routes, routes_workflows.routes, routes_convert.routes,
                  routes_settings.routes, routes_sweeps.routes, routes_ratings.routes,
                  routes_files.routes):  # files last: its catch-all serves web/
        app.router.add_routes(table)
    app.cleanup_ctx.append(_lifetime)
    app.on_shutdown.append(_close_sockets)
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    """Open the queue, recover runs a crash cut off, start the worker; undo it all on exit."""
    settings, config = app[SETTINGS], app[CONFIG]
    for folder in (settings.user, settings.inputs, settings.outputs, settings.previews):
        folder.mkdir(parents=True, exist_ok=True)
    store = QueueStore(settings.user / QUEUE_DB)
    recovered = store.recover()
    if recovered:
        log.warning("queued again %d run(s) cut off by the last shutdown: %s",
                    len(recovered), ", ".join(recovered))
    hub = Hub(config.ws_queue_limit)
    worker = _make_worker(app, store, hub)
    app[STORE], app[HUB], app[WORKER] = store, hub, worker
    worker.start()
    try:
        yield
    finally:
        await worker.close()
        store.close()


def _make_worker(app: web.Application, store: QueueStore, hub: Hub) -> Worker:
    """The in-process thread worker, or with ``ServerConfig.ray`` the Ray actor worker."""
    settings, config = app[SETTINGS], app[CONFIG]
    intervals = {"preview_interval_s": config.preview_interval_s,
                 "progress_interval_s": config.progress_interval_s}
    loop = asyncio.get_running_loop()
    if config.ray is not None:
        from .workers.ray_pool import RayWorker  # Ray is an optional extra: imported on demand
        return RayWorker(settings, store, hub.publish_text, loop, config.ray,
                         registry=app[REGISTRY_OVERRIDE], **intervals)
    return ThreadWorker(settings, store, hub.publish_text, loop,
                        registry=app[REGISTRY_OVERRIDE], **intervals)


async def _close_sockets(app: web.Application) -> None:
    if HUB in app:
        await app[HUB].close_all()
