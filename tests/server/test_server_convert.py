"""POST /api/convert on a real server on loopback: ComfyUI JSON and PNGs in, a Loom workflow
and the report out; bad files answered with an error and a report, never a 500."""
from __future__ import annotations

import json
from pathlib import Path

from loom import Workflow

FIXTURES = Path(__file__).resolve().parents[1] / "nodes" / "comfyui_fixtures"


def _bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def test_convert_a_ui_json_file(client):
    resp = await client.post("/api/convert", data=_bytes("ui_sd15_txt2img.json"),
                             headers={"content-type": "application/json"})
    assert resp.status == 200
    body = await resp.json()
    wf = Workflow.from_dict(body["workflow"])
    assert wf.nodes["3"]["type"] == "sample" and wf.nodes["3_scheduler"]["type"] == "scheduler"
    report = body["report"]
    assert report["importer"] == "comfyui" and report["complete"] is True
    assert {e["node"] for e in report["entries"] if e["kind"] == "mapped"} == {"3", "4", "5", "6", "7", "8", "9"}


async def test_convert_png_and_api_format_with_unmapped_nodes(client):
    resp = await client.post("/api/convert", data=_bytes("png_sdxl_workflow.png"),
                             headers={"content-type": "image/png"})
    body = await resp.json()
    assert resp.status == 200 and body["report"]["source"].startswith("PNG ('workflow'")
    assert body["workflow"]["nodes"]["9"]["inputs"]["start_step"] == 20   # the refiner's KSamplerAdvanced
    resp = await client.post("/api/convert", data=_bytes("api_custom_nodes.json"))
    body = await resp.json()
    assert resp.status == 200 and body["report"]["complete"] is False
    assert body["workflow"]["nodes"]["20"]["type"] == "comfyui:LatentUpscale"
    assert body["workflow"]["nodes"]["20"]["comfyui"]["class_type"] == "LatentUpscale"
    assert body["workflow"]["nodes"]["3"]["type"] == "sample"
    assert body["workflow"]["nodes"]["20"]["inputs"]["samples"] == {"node": "3", "output": "latent"}
    assert body["workflow"]["nodes"]["21"]["inputs"]["samples"] == {"node": "20", "output": "LATENT"}
    unmapped = {e["type"] for e in body["report"]["entries"] if e["kind"] == "unmapped"}
    assert unmapped == {"LatentUpscale", "OmegaLatentColorShift"}


async def test_a_loom_workflow_comes_back_as_it_is(client):
    wf = {"format": "loom.workflow", "version": 1,
          "nodes": {"a": {"type": "srv_add", "inputs": {"a": 1, "b": 2}}}}
    resp = await client.post("/api/convert", json=wf)
    body = await resp.json()
    assert resp.status == 200 and body["workflow"]["nodes"] == wf["nodes"]
    assert body["report"]["importer"] is None and body["report"]["entries"] == []


async def test_bad_files_get_an_error_and_a_report(client):
    cases = [(_bytes("bad_truncated.json"), "not valid JSON"),
             (_bytes("bad_unknown_format.json"), "a workflow needs \"nodes\""),
             (_bytes("png_plain.png"), "carries no Loom workflow"),
             (b"", "empty"),
             (b"\xff\xfe\x00garbage", "neither JSON text nor a PNG")]
    for data, message in cases:
        resp = await client.post("/api/convert", data=data)
        body = await resp.json()
        assert resp.status == 400, (message, body)
        assert message in body["error"], body
        assert body["report"]["entries"][0]["kind"] == "problem"
    resp = await client.post("/api/convert", data=_bytes("ui_bad_input.json"))
    body = await resp.json()   # node-level trouble is a converted workflow with problems
    assert resp.status == 200
    problems = [e for e in body["report"]["entries"] if e["kind"] == "problem"]
    assert any(e["node"] == "5" and e["type"] == "KSampler" for e in problems)


async def test_convert_is_refused_from_a_foreign_origin_and_documented(client):
    resp = await client.post("/api/convert", data=_bytes("ui_sd15_txt2img.json"),
                             headers={"Origin": "http://evil.example"})
    assert resp.status == 403
    doc = await (await client.get("/api/openapi.json")).json()
    assert "post" in doc["paths"]["/api/convert"]
    assert json.dumps(doc["paths"]["/api/convert"]).count("report") >= 1
