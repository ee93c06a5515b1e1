"""The in-process worker (kept at this import path; the code lives in ``workers/``).

``Worker`` is the default thread worker, ``ForwardingObserver`` the observer every worker
uses; ``workers/`` also holds the ``Worker`` protocol and the Ray actor worker."""
from __future__ import annotations

from .workers.observer import ForwardingObserver
from .workers.thread import ThreadWorker

Worker = ThreadWorker

__all__ = ["ForwardingObserver", "ThreadWorker", "Worker"]
