"""The wheel carries everything Loom needs at run time, under names that cannot collide."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from loom.settings import REPO_ROOT, SHIPPED_MODELS, SHIPPED_WORKFLOWS, shipped


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    (whl,) = out.glob("loom-*.whl")
    return set(zipfile.ZipFile(whl).namelist())


def test_wheel_has_collision_free_packages(wheel_names):
    tops = {n.split("/")[0] for n in wheel_names}
    assert {"loom", "loom_nodes", "loom_server"} <= tops
    assert not tops & {"nodes", "server", "web", "workflows", "models"}, tops


def test_wheel_ships_canvas_workflows_and_embedded_models(wheel_names):
    assert "loom/_shipped/web/index.html" in wheel_names
    assert any(n.startswith("loom/_shipped/web/src/") and n.endswith(".js") for n in wheel_names)
    if (REPO_ROOT / "web/node_modules/@comfyorg/litegraph/dist").is_dir():
        assert any(n.startswith("loom/_shipped/web/node_modules/@comfyorg/litegraph/dist/")
                   for n in wheel_names)
    assert not any("node_modules/.package-lock" in n for n in wheel_names)
    for wf in SHIPPED_WORKFLOWS.glob("*.json"):
        assert f"loom/_shipped/workflows/{wf.name}" in wheel_names
    for f in (SHIPPED_MODELS / "embedded").rglob("*"):
        if f.is_file():
            rel = f.relative_to(SHIPPED_MODELS).as_posix()
            assert f"loom/_shipped/models/{rel}" in wheel_names
    assert "loom_nodes/_lib/configs/sd1/unet/config.json" in wheel_names


def test_shipped_falls_back_to_the_repo_in_a_checkout():
    assert shipped("workflows") == REPO_ROOT / "workflows"
    assert (shipped("web") / "index.html").is_file()


def test_a_local_nodes_or_server_module_does_not_shadow_loom(tmp_path):
    for name in ("nodes", "server"):
        (tmp_path / f"{name}.py").write_text("raise RuntimeError('the wrong module was imported')\n")
    r = subprocess.run([sys.executable, "-m", "loom", "nodes", "--json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"save_image"' in r.stdout and "wrong module" not in r.stderr


def test_docs_are_self_contained():
    """The repo's docs never point at files a user does not have."""
    for doc in [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")]:
        text = doc.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text and "../shared" not in text, doc.name
