"""Server options that are not engine settings: address, token, limits."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Is ``host`` (a name or an address, maybe in [brackets]) a loopback address?"""
    h = host.strip().strip("[]").lower()
    if h in LOOPBACK_NAMES or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


@dataclass
class RayOptions:
    """``loom serve --ray``: run workflows on Ray actors instead of the in-process thread."""

    address: str | None = "auto"  # "auto": attach to a local cluster or start one; None: the
    #                               Ray this process already initialised; else a cluster address
    gpu_workers: int | None = None  # None: one actor per GPU of the cluster (num_gpus=1 each)
    cpu_workers: int | None = None  # None: one when there are no GPU actors, else none
    cpu_threads: int | None = None  # torch threads per CPU actor; None: the CPUs shared out
    builtin_nodes: bool = True      # False: actors load only the custom_nodes folders (tests)
    max_restarts: int = -1          # Ray restarts a dead actor (-1: always)
    affinity_wait_s: float = 10.0   # how long a run may wait for the busy actor holding its models
    actor_home: Path | None = None  # the actors' home when it is not the server's (files travel)


@dataclass
class ServerConfig:
    """How the server listens and what it accepts."""

    host: str = "127.0.0.1"
    port: int = 8188
    token: str | None = None
    max_upload_mb: float = 50.0
    max_body_mb: float = 16.0
    max_image_pixels: int = 8192 * 8192
    allowed_origins: list[str] = field(default_factory=list)
    web_dir: Path | None = None  # None: the web/ folder Loom ships
    ws_queue_limit: int = 50_000
    preview_interval_s: float = 0.2
    progress_interval_s: float = 0.05
    ray: RayOptions | None = None  # None: the in-process worker thread (the default)

    def check(self) -> None:
        """Refuse unsafe combinations: a non-loopback address needs a token."""
        if not is_loopback(self.host) and not self.token:
            raise ValueError(f"listening on {self.host!r} (not loopback) requires an access token "
                             "(--token, or let `loom serve --listen` generate one)")
        if self.max_upload_mb <= 0 or self.max_body_mb <= 0:
            raise ValueError("size limits must be positive")
        if self.ray is not None:
            counts = (self.ray.gpu_workers, self.ray.cpu_workers, self.ray.cpu_threads)
            if any(n is not None and n < 0 for n in counts):
                raise ValueError("--ray-workers and --ray-cpu-workers must not be negative")

    @property
    def upload_limit(self) -> int:
        """Largest upload in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def body_limit(self) -> int:
        """Largest JSON body in bytes."""
        return int(self.max_body_mb * 1024 * 1024)
