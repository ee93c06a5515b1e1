"""Workers: what takes runs off the queue and executes them.

``Worker`` is the protocol; ``ThreadWorker`` the default in-process thread; the Ray actor
worker (``ray_pool.RayWorker``) is imported only when ``loom serve --ray`` asks for it, so
Ray stays an optional extra."""
from __future__ import annotations

from .base import Worker
from .observer import ForwardingObserver
from .thread import ThreadWorker

__all__ = ["ForwardingObserver", "ThreadWorker", "Worker"]
