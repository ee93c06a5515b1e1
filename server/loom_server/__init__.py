"""Loom's HTTP + WebSocket server (aiohttp). Imports loom lazily; never imports nodes."""
from __future__ import annotations

from .app import create_app
from .config import RayOptions, ServerConfig

__all__ = ["create_app", "RayOptions", "ServerConfig"]
