"""The hatchling hook that installs web/node_modules: when it runs, and that it never fails an install."""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loom_hatch_build", REPO / "hatch_build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _web(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    web.mkdir()
    (web / "package-lock.json").write_text("{}")
    return web


def test_install_is_needed_when_modules_are_missing_or_stale(tmp_path: Path) -> None:
    hook = _hook()
    web = _web(tmp_path)
    assert hook.needs_install(web)
    marker = web / "node_modules" / ".package-lock.json"
    marker.parent.mkdir()
    marker.write_text("{}")
    old = time.time() - 100
    os.utime(web / "package-lock.json", (old, old))
    assert not hook.needs_install(web)
    os.utime(marker, (old - 100, old - 100))
    assert hook.needs_install(web)


def test_no_npm_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _hook()
    web = _web(tmp_path)
    monkeypatch.delenv("LOOM_SKIP_NPM", raising=False)
    monkeypatch.setattr(hook.shutil, "which", lambda name: None)
    warnings: list[str] = []
    assert hook.install_web_modules(web, warnings.append, lambda m: None) is False
    assert len(warnings) == 1 and "npm was not found" in warnings[0]


def test_a_failing_npm_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _hook()
    web = _web(tmp_path)
    fake = tmp_path / "npm"
    fake.write_text("#!/bin/sh\necho 'npm ERR! network unreachable' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.delenv("LOOM_SKIP_NPM", raising=False)
    monkeypatch.setattr(hook.shutil, "which", lambda name: str(fake))
    warnings: list[str] = []
    assert hook.install_web_modules(web, warnings.append, lambda m: None) is False
    assert "failed (exit 1)" in warnings[0] and "network unreachable" in warnings[0]


def test_lock_file_pins_litegraph_without_registry_urls() -> None:
    import json
    lock = json.loads((REPO / "web" / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/@comfyorg/litegraph"]
    assert entry["version"] == json.loads((REPO / "web" / "package.json").read_text())[
        "dependencies"]["@comfyorg/litegraph"]
    assert "resolved" not in entry and entry["integrity"].startswith("sha512-")
    assert "omit-lockfile-registry-resolved=true" in (REPO / "web" / ".npmrc").read_text()
