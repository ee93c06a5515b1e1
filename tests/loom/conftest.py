"""Fixtures for engine tests: a registry of tiny nodes and an executor."""
from __future__ import annotations

import pytest

import tinynodes
from loom import Executor, Registry, Settings


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.add_module("tinynodes")
    return reg


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path)


@pytest.fixture
def executor(registry, settings) -> Executor:
    tinynodes.reset()
    return Executor(registry, settings=settings)
