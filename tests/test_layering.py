"""The import rules of docs/architecture.md: loom → nothing of ours; nodes → loom; server → loom."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from loom.settings import REPO_ROOT

FORBIDDEN = {
    "loom": {"loom_nodes", "loom_server", "aiohttp"},
    "loom_nodes": {"loom_server", "aiohttp"},
    "loom_server": {"loom_nodes"},
}
FOLDERS = {"loom": "loom", "loom_nodes": "nodes/loom_nodes", "loom_server": "server/loom_server"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            roots.update(a.name.split(".")[0] for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            roots.add(n.module.split(".")[0])
        elif isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", "")) in (
                "import_module", "__import__") and n.args and isinstance(n.args[0], ast.Constant):
            roots.add(str(n.args[0].value).split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering(package):
    bad = []
    for path in sorted((REPO_ROOT / FOLDERS[package]).rglob("*.py")):
        hits = imported_roots(path) & FORBIDDEN[package]
        if package == "loom" and path.name == "plugins.py":
            hits -= {"loom_nodes"}  # discovers the built-in pack by name, through importlib only
        if hits:
            bad.append(f"{path.relative_to(REPO_ROOT)} imports {sorted(hits)}")
    assert not bad, "\n".join(bad)


def test_the_checker_catches_a_violation(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import aiohttp\nfrom loom_server.app import create_app\nimportlib.import_module('loom_nodes.x')\n")
    assert imported_roots(f) == {"aiohttp", "loom_server", "loom_nodes"}
