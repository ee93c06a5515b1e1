"""Converted ComfyUI workflows validate and run in Loom; Loom → ComfyUI API → Loom keeps the
graph; the CLI commands; the docs table is current."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from comfyui_helpers import (EMBEDDED, EXPORT_LEFT_OUT, FIXTURES, MAPPED, add_input_images,
                             add_model_files, fixture, graph)

from loom import Executor, Registry, Settings, Workflow, validate
from loom.settings import REPO_ROOT, SHIPPED_WORKFLOWS
from loom_nodes.comfyui import convert, export
from loom_nodes.comfyui.doc import render
from loom_nodes.comfyui.exporter import DEFAULTS
from loom_nodes.comfyui.samplers import to_comfy


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("comfy_home"), device="cpu")


@pytest.fixture(scope="module")
def registry(settings: Settings) -> Registry:
    reg = Registry.default(settings)
    assert not [e for e in reg.plugin_errors if "comfyui" in e.plugin], reg.plugin_errors
    return reg


@pytest.mark.parametrize("name", MAPPED)
def test_mapped_fixtures_validate_with_the_embedded_model(name: str, settings: Settings,
                                                          registry: Registry) -> None:
    wf, report = convert(fixture(name), {"models": EMBEDDED})
    assert report["complete"]
    add_input_images(wf, settings.inputs)
    add_model_files(wf, settings.home / "models")
    problems = validate(wf, registry, settings)
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.parametrize("name", MAPPED)
def test_round_trip_through_the_api_format_keeps_the_graph(name: str) -> None:
    wf, _ = convert(fixture(name))
    prompt, report = export(wf)
    left_out = EXPORT_LEFT_OUT.get(name, set())
    assert report["complete"] is not left_out, report
    assert {e["type"] for e in report["entries"] if e["kind"] == "unmapped"} == left_out
    assert all(set(n) == {"inputs", "class_type", "_meta"} for n in prompt.values())
    back, _ = convert(json.loads(json.dumps(prompt)))
    gone = {nid for nid, n in wf["nodes"].items() if n["type"] in left_out}
    kept = {nid: (t, {k: v for k, v in inputs.items() if not (isinstance(v, dict) and v.get("node") in gone)},
                  title) for nid, (t, inputs, title) in graph(wf).items() if nid not in gone}
    assert graph(back) == kept


def test_unmapped_nodes_are_written_back_as_they_came() -> None:
    wf, _ = convert(fixture("api_flux.json"))
    prompt, report = export(wf)
    original = json.loads(fixture("api_flux.json"))
    for nid in ("1", "2", "4", "6"):
        assert prompt[nid]["class_type"] == original[nid]["class_type"]
        assert prompt[nid]["inputs"] == original[nid]["inputs"]
    assert prompt["6"]["inputs"]["model"] == ["1", 0] and prompt["4"]["inputs"]["clip"] == ["2", 0]
    back, _ = convert(prompt)
    assert graph(back) == graph(wf)


def _comfy_meaning(workflow: dict[str, Any]) -> dict[str, Any]:
    """The graph with each scheduler folded into its sampler, in ComfyUI's terms."""
    nodes = workflow["nodes"]
    out = {}
    for nid, n in nodes.items():
        if n["type"] == "scheduler":
            continue
        inputs = {k: v for k, v in n["inputs"].items() if DEFAULTS.get(n["type"], {}).get(k, ...) != v}
        if n["type"] == "sample":
            s = {**DEFAULTS["scheduler"], **nodes[n["inputs"]["scheduler"]["node"]]["inputs"]}
            inputs.pop("scheduler")
            inputs["sampler"] = to_comfy(s["name"], s["sigmas"], s["spacing"])[:2]
        out[nid] = (n["type"], inputs)
    return out


@pytest.mark.parametrize("name", ["sd15_template", "sdxl_template", "text_to_image"])
def test_loom_examples_round_trip(name: str) -> None:
    wf = Workflow.load(SHIPPED_WORKFLOWS / f"{name}.json").to_dict()
    prompt, report = export(wf)
    assert report["complete"], report
    back, _ = convert(prompt)
    assert _comfy_meaning(back) == _comfy_meaning(wf)


def test_loom_nodes_without_a_comfyui_counterpart_are_reported() -> None:
    prompt, report = export(Workflow.load(SHIPPED_WORKFLOWS / "image_basics.json"))
    unmapped = {e["type"] for e in report["entries"] if e["kind"] == "unmapped"}
    assert unmapped == {"sample_image"} and not report["complete"]
    assert {p["class_type"] for p in prompt.values()} == {"ImageScale", "ImageCrop", "ImageInvert",
                                                          "ImageBatch", "SaveImage"}
    assert any(e["kind"] == "problem" and "no ComfyUI counterpart" in e["message"] for e in report["entries"])


def test_a_mask_and_tiles_export_as_their_comfyui_nodes() -> None:
    wf, _ = convert(fixture("ui_inpaint_noise_mask.json"))
    prompt, _ = export(wf)
    assert prompt["7"]["class_type"] == "SetLatentNoiseMask" and prompt["8"]["inputs"]["samples"] == ["7", 0]
    wf["nodes"]["9"]["inputs"]["mask"] = {"node": "5", "output": "mask"}   # Loom's own mask input
    prompt, _ = export(wf)
    assert prompt["9_mask"]["class_type"] == "SetLatentNoiseMask"
    assert prompt["9"]["inputs"]["latent_image"] == ["9_mask", 0]
    wf, _ = convert(fixture("ui_tiled_vae_clip_skip.json"))
    prompt, _ = export(wf)
    assert prompt["5"]["class_type"] == "VAEDecodeTiled" and prompt["5"]["inputs"]["tile_size"] == 1024


def test_export_defaults_match_the_node_schemas(registry: Registry, settings: Settings) -> None:
    schemas = {s["id"]: s for s in registry.schemas(settings)}
    for loom_type, defaults in DEFAULTS.items():
        declared = {i["name"]: i.get("default") for i in schemas[loom_type]["inputs"]}
        for name, value in defaults.items():
            assert declared[name] == value, (loom_type, name)


def test_a_converted_workflow_runs_on_the_embedded_model(settings: Settings, registry: Registry,
                                                         one_thread: None) -> None:
    wf, _ = convert(fixture("ui_sd15_txt2img.json"), {"models": EMBEDDED})
    wf["nodes"]["5"]["inputs"].update(width=64, height=64)
    wf["nodes"]["3"]["inputs"]["steps"] = 2
    result = Executor(registry, settings=settings).run(Workflow.from_dict(wf))
    (saved,) = result.ui["9"]["images"]
    assert (settings.outputs / saved["path"]).is_file()


def loom_cli(*args: Any, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loom", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_import_export_validate(tmp_path: Path) -> None:
    out = tmp_path / "wf.json"
    r = loom_cli("import-comfy", FIXTURES / "ui_sd15_txt2img.json", "-o", out,
                 "--models", "*=diffusers:embedded/shapes-ldm", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "mapped    3 KSampler" in r.stdout and Workflow.load(out).nodes["4"]["inputs"] == {
        "model": "embedded/shapes-ldm"}
    r = loom_cli("import-comfy", FIXTURES / "ui_sd3.json", cwd=tmp_path)
    assert r.returncode == 3 and "unmapped  6 ConditioningSetTimestepRange: no Loom node yet" in r.stderr
    assert json.loads(r.stdout)["nodes"]["6"]["type"] == "comfyui:ConditioningSetTimestepRange"
    r = loom_cli("import-comfy", FIXTURES / "bad_truncated.json", cwd=tmp_path)
    assert r.returncode == 1 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr
    api = tmp_path / "api.json"
    r = loom_cli("export-comfy", out, "-o", api, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(api.read_text())["3"]["class_type"] == "KSampler"
    r = loom_cli("validate", api, cwd=tmp_path)     # loom reads the ComfyUI file directly
    assert r.returncode == 0, r.stderr
    assert "valid (8 nodes)" in r.stdout and "(importer: comfyui)" in r.stderr
    r = loom_cli("validate", FIXTURES / "ui_sd15_txt2img.json", cwd=tmp_path)
    assert r.returncode == 2 and "v1-5-pruned-emaonly-fp16.safetensors" in r.stdout


def test_the_docs_table_is_current() -> None:
    page = (REPO_ROOT / "docs" / "comfyui.md").read_text(encoding="utf-8")
    assert render(page) == page, "run: python scripts/comfyui_doc.py"


def test_mask_nodes_export_where_comfyui_computes_the_same() -> None:
    wf = {"format": "loom.workflow", "version": 1, "nodes": {
        "img": {"type": "load_image", "inputs": {"image": "a.png"}},
        "alpha": {"type": "mask_from_alpha", "inputs": {"image": {"node": "img", "output": "image"}}},
        "hard": {"type": "threshold_mask", "inputs": {"mask": {"node": "alpha", "output": "mask"},
                                                      "level": 0.50000006}},
        "max": {"type": "combine_masks", "inputs": {"a": {"node": "hard", "output": "mask"},
                                                    "b": {"node": "alpha", "output": "mask"}}},
        "lora": {"type": "load_lora", "inputs": {"lora": "x.safetensors"}}}}
    prompt, report = export(wf)
    assert prompt["alpha_alpha"]["inputs"] == {"image": ["img", 0], "channel": "alpha"}
    assert prompt["alpha"]["class_type"] == "InvertMask" and prompt["alpha"]["inputs"] == {"mask": ["alpha_alpha", 0]}
    assert prompt["hard"]["inputs"] == {"mask": ["alpha", 0], "value": 0.5}
    assert prompt["lora"]["class_type"] == "LoraLoaderModelOnly"
    assert prompt["lora"]["inputs"] == {"lora_name": "x.safetensors", "strength_model": 1.0}
    assert "max" not in prompt and not report["complete"]
