"""The loom command, run as a subprocess, on good and bad workflows."""
from __future__ import annotations

import json
import subprocess
import sys

from loom.settings import SHIPPED_WORKFLOWS


def loom(*args, cwd):
    return subprocess.run([sys.executable, "-m", "loom", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_run_writes_images_and_set_overrides(tmp_path):
    out = tmp_path / "out"
    r = loom("run", SHIPPED_WORKFLOWS / "image_basics.json", "--set", "cat.name=coffee",
             "--set", "save.prefix=cli/test", "--output-dir", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "save: wrote" in r.stdout and (out / "cli" / "test_00001.png").is_file()
    assert "Traceback" not in r.stderr
    from loom import Workflow
    assert Workflow.load(out / "cli" / "test_00001.png").nodes["cat"]["inputs"]["name"] == "coffee"


def test_run_a_png_made_by_loom(tmp_path):
    r = loom("run", SHIPPED_WORKFLOWS / "image_basics.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    png = tmp_path / "output" / "image_basics_00001.png"
    r = loom("run", png, "--set", "save.prefix=again", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "output" / "again_00001.png").is_file()


def test_validate_exit_codes_and_lines(tmp_path):
    r = loom("validate", SHIPPED_WORKFLOWS / "texture_blend.json", cwd=tmp_path)
    assert r.returncode == 0 and "valid" in r.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "loom.workflow", "version": 1, "nodes": {
        "img": {"type": "sample_image", "inputs": {"name": "dog"}},
        "r": {"type": "resize_image", "inputs": {"image": {"node": "img", "output": "image"}, "width": -5}},
        "s": {"type": "save_image", "inputs": {"images": {"node": "r", "output": "image"}}}}}))
    r = loom("validate", bad, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stdout.strip().splitlines()
    assert any(l.startswith("img.name: 'dog' is not one of the choices") for l in lines)
    assert any(l.startswith("r.width: -5 is below the minimum 0") for l in lines)
    r = loom("validate", bad, "--json", cwd=tmp_path)
    data = json.loads(r.stdout)
    assert data["valid"] is False and {p["code"] for p in data["problems"]} == {"not_in_choices", "out_of_range"}
    r = loom("run", bad, cwd=tmp_path)
    assert r.returncode == 2 and "img.name" in r.stderr


def test_bad_files_get_one_clear_line(tmp_path):
    cases = {"notjson.json": b"{{{", "wrong.json": b'{"format": "other", "nodes": {}}',
             "broken.png": b"\x89PNG\r\n\x1a\nxxxx", "binary.json": bytes(range(256))}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        for cmd in ("validate", "run"):
            r = loom(cmd, tmp_path / name, cwd=tmp_path)
            assert r.returncode == 1, (name, cmd, r.stderr)
            assert "Traceback" not in r.stderr and r.stderr.strip().splitlines()[-1].startswith("error: ")
    r = loom("run", tmp_path / "missing.json", cwd=tmp_path)
    assert r.returncode == 1 and "no such file" in r.stderr
    r = loom("run", SHIPPED_WORKFLOWS / "image_basics.json", "--set", "nonode.x=1", cwd=tmp_path)
    assert r.returncode == 1 and "there is no node 'nonode'" in r.stderr


def test_failing_node_exit_code_names_the_node(tmp_path):
    wf = tmp_path / "crop.json"
    wf.write_text(json.dumps({"nodes": {
        "img": {"type": "sample_image", "inputs": {"name": "camera"}},
        "c": {"type": "crop_image", "inputs": {"image": {"node": "img", "output": "image"}, "x": 500, "width": 100}},
        "p": {"type": "preview_image", "inputs": {"images": {"node": "c", "output": "image"}}}}}))
    r = loom("run", wf, cwd=tmp_path)
    assert r.returncode == 3 and "error: c:" in r.stderr and "beyond the image width 512" in r.stderr
    assert "Traceback" not in r.stderr


def test_nodes_lists_schemas(tmp_path):
    r = loom("nodes", "--json", cwd=tmp_path)
    ids = {s["id"] for s in json.loads(r.stdout)}
    assert {"sample_image", "save_image", "resize_image", "seed_value"} <= ids
    r = loom("nodes", cwd=tmp_path)
    assert "save_image" in r.stdout
