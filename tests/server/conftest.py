"""Fixtures for server tests: a registry of tiny nodes and an app on loopback."""
from __future__ import annotations

from pathlib import Path

import pytest

from loom import Registry, Settings
from loom.plugins import load_folder
from loom_server import ServerConfig, create_app
from srv_helpers import NODES_DIR


@pytest.fixture(scope="session")
def test_registry() -> Registry:
    """Only the tiny test nodes (fast, independent of the built-in packs)."""
    reg = Registry()
    load_folder(reg, NODES_DIR)
    assert not reg.plugin_errors, reg.plugin_errors
    return reg


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


@pytest.fixture
def make_client(aiohttp_client, settings, test_registry):
    """Start an app (optionally with a ServerConfig) and return its test client."""
    async def make(config: ServerConfig | None = None, registry: Registry | None = None):
        app = create_app(settings, config, registry=registry or test_registry)
        return await aiohttp_client(app)
    return make


@pytest.fixture
async def client(make_client):
    return await make_client()


