"""The workflow format: dict/JSON/PNG round trips and clear errors for bad files."""
from __future__ import annotations

import json

import pytest
from PIL import Image as PILImage

from loom.settings import SHIPPED_WORKFLOWS
from loom import Executor, Registry, Settings, Workflow, WorkflowFileError, png_info


def test_json_round_trip(tmp_path):
    data = json.loads((SHIPPED_WORKFLOWS / "image_basics.json").read_text())
    wf = Workflow.load(data)
    path = wf.save(tmp_path / "copy.json")
    again = Workflow.load(path)
    assert again.to_dict() == wf.to_dict() == {**data}


def test_workflow_to_png_to_workflow_through_save_image(tmp_path):
    settings = Settings(home=tmp_path)
    reg = Registry.default(settings)
    wf = Workflow.load(SHIPPED_WORKFLOWS / "image_basics.json")
    result = Executor(reg, settings=settings).run(wf)
    first = result.ui["save"]["images"][0]["path"]
    png = settings.outputs / first
    back = Workflow.load(png)
    assert back.to_dict() == wf.to_dict()
    with PILImage.open(png) as im:
        run = json.loads(im.text["loom.run"])
    assert run["run"] == result.run_id and run["node"] == "save"


def test_png_without_workflow_and_bad_files(tmp_path):
    plain = tmp_path / "plain.png"
    PILImage.new("RGB", (4, 4)).save(plain)
    with pytest.raises(WorkflowFileError, match="carries no Loom workflow"):
        Workflow.load(plain)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    with pytest.raises(WorkflowFileError, match="unreadable PNG"):
        Workflow.load(broken)
    notjson = tmp_path / "x.json"
    notjson.write_text("{nope")
    with pytest.raises(WorkflowFileError, match="not valid JSON"):
        Workflow.load(notjson)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "comfy", "nodes": {}}))
    with pytest.raises(WorkflowFileError, match="not a Loom workflow"):
        Workflow.load(wrong)
    with pytest.raises(WorkflowFileError, match="no such file"):
        Workflow.load(tmp_path / "missing.json")
    with pytest.raises(WorkflowFileError, match="\"nodes\""):
        Workflow.load({"format": "loom.workflow"})


def test_png_info_carries_both_chunks(tmp_path):
    wf = Workflow.load({"nodes": {"a": {"type": "x"}}})
    p = tmp_path / "a.png"
    PILImage.new("RGB", (2, 2)).save(p, pnginfo=png_info(wf, {"run": "r1", "seeds": {"s.seed": 4}}))
    assert Workflow.load(p.read_bytes()).nodes == {"a": {"type": "x"}}
