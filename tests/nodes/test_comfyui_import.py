"""ComfyUI files → Loom workflows: both formats and PNGs, the mapping, the report, bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from comfyui_helpers import EMBEDDED, EXPECT, FIXTURES, UNREADABLE, fixture

from loom import Workflow
from loom.errors import WorkflowFileError
from loom.importers import convert as import_any
from loom.importers import format_report, load
from loom_nodes.comfyui import convert
from loom_nodes.comfyui.samplers import NO_SIGMA_OPTIONS, NO_SPACING_OPTION, choose
from loom_nodes.comfyui.table import specs


def test_there_are_enough_fixtures() -> None:
    files = [p.name for p in FIXTURES.iterdir() if p.suffix in (".json", ".png")]
    assert set(EXPECT) | set(UNREADABLE) == set(files)
    assert len(files) >= 25
    assert {f[:3] for f in EXPECT} == {"ui_", "api", "png"}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_each_fixture_converts_with_a_report(name: str) -> None:
    workflow, report = convert(fixture(name))
    complete, unmapped = EXPECT[name]
    assert workflow["format"] == "loom.workflow" and workflow["nodes"]
    Workflow.from_dict(workflow)   # a valid envelope
    assert report["complete"] is complete, format_report(report)
    got = {e["type"] for e in report["entries"] if e["kind"] == "unmapped"}
    assert got == unmapped, format_report(report)
    assert report["counts"] == {k: sum(1 for e in report["entries"] if e["kind"] == k)
                                for k in report["counts"]}
    # every ComfyUI node is accounted for, under its id and type
    outcome = {e["node"] for e in report["entries"] if e["kind"] in ("mapped", "unmapped", "dissolved")}
    assert len(outcome) == report["nodes"]
    for e in report["entries"]:
        if e["kind"] in ("mapped", "unmapped"):
            assert set(e["loom"]) <= set(workflow["nodes"]), e
    # placeholders keep their ComfyUI data
    for nid, node in workflow["nodes"].items():
        if node["type"].startswith("comfyui:"):
            assert node["comfyui"]["class_type"] == node["type"][8:] and node["comfyui"]["reason"]


@pytest.mark.parametrize("name", UNREADABLE)
def test_unreadable_files_give_one_line_and_no_traceback(name: str) -> None:
    with pytest.raises(WorkflowFileError) as err:
        convert(fixture(name))
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)


def test_sd15_values_layout_and_groups_are_carried_over() -> None:
    wf, report = convert(json.loads(fixture("ui_sd15_txt2img.json")))
    n = wf["nodes"]
    assert n["4"] == {"type": "load_checkpoint", "inputs": {"checkpoint": "v1-5-pruned-emaonly-fp16.safetensors"},
                      "ui": {"pos": [26.0, 444.0], "size": [315.0, 128.0]}}   # the title bar counts in Loom
    assert n["6"]["ui"] == {"pos": [415.0, 156.0], "size": [422.0, 194.0], "title": "Positive",
                            "color": "#232", "bgcolor": "#353"}
    assert n["6"]["inputs"]["text"].startswith("a lighthouse") and n["7"]["inputs"]["text"] == "blurry, lowres, watermark"
    s = n["3"]["inputs"]
    assert (s["steps"], s["cfg"], s["seed"], s["denoise"]) == (20, 7.5, 815623004417, 1.0)
    assert s["scheduler"] == {"node": "3_scheduler", "output": "scheduler"}
    assert n["3_scheduler"]["inputs"] == {"name": "dpmpp_2m", "sigmas": "karras", "spacing": "default"}
    assert n["3"]["ui"]["seed_control"] == {"seed": "randomize"}
    assert n["5"]["inputs"] == {"width": 512, "height": 512, "batch": 1, "vae": {"node": "4", "output": "vae"}}
    assert n["9"]["inputs"] == {"images": {"node": "8", "output": "image"}, "prefix": "lighthouse"}
    assert wf["groups"] == [{"title": "Prompts", "bounding": [400.0, 100.0, 460.0, 490.0], "color": "#3f789e"}]
    mapped = {e["node"]: e for e in report["entries"] if e["kind"] == "mapped"}
    assert mapped["3"]["loom"] == ["3", "3_scheduler"] and mapped["6"]["ui"] == ["bgcolor", "color", "pos",
                                                                               "size", "title"]
    assert any(e["kind"] == "note" and "k-diffusion" in e["message"] for e in report["entries"])


@pytest.mark.parametrize("sampler,scheduler,loom,exact", [
    ("euler", "normal", ("euler", "default", "linspace"), True),
    ("dpmpp_2m", "karras", ("dpmpp_2m", "karras", "default"), True),
    ("dpm_2_ancestral", "exponential", ("dpm2_ancestral", "exponential", "default"), True),
    ("ddim", "ddim_uniform", ("ddim", "default", "leading"), True),
    ("euler_ancestral", "karras", ("euler_ancestral", "default", "default"), False),
    ("dpmpp_3m_sde_gpu", "simple", ("dpmpp_2m_sde", "default", "trailing"), False),
    ("dpmpp_2s_ancestral", "normal", ("dpmpp_2s", "default", "default"), False),
    ("lcm", "sgm_uniform", ("lcm", "default", "trailing"), False),
    ("no_such_sampler", "beta", ("euler", "beta", "default"), False),
])
def test_sampler_and_scheduler_names(sampler: str, scheduler: str, loom: tuple, exact: bool) -> None:
    c = choose(sampler, scheduler)
    assert (c.name, c.sigmas, c.spacing) == loom and c.exact_method is exact
    assert all(why for *_, why in c.changes)


def test_sigma_and_spacing_options_match_the_installed_diffusers() -> None:
    from loom_nodes._lib.diffusion import schedulers as s
    for name in s.available():
        params = s.init_params(s._class(name))
        assert (name in NO_SIGMA_OPTIONS) == ("use_karras_sigmas" not in params), name
        assert (name in NO_SPACING_OPTION) == ("timestep_spacing" not in params), name


def test_sdxl_base_and_refiner_hand_over_their_noisy_latents() -> None:
    wf, report = convert(fixture("ui_sdxl_base_refiner.json"))
    base, refiner = wf["nodes"]["8"], wf["nodes"]["9"]
    assert base["type"] == refiner["type"] == "sample_advanced"
    b, r = base["inputs"], refiner["inputs"]
    assert (b["steps"], b["start_step"], b["end_step"], b["seed"]) == (25, 0, 20, 721)
    assert (b["add_noise"], b["return_with_leftover_noise"]) == (True, True)
    assert (r["steps"], r["start_step"], r["end_step"]) == (25, 20, 10000)
    assert (r["add_noise"], r["return_with_leftover_noise"]) == (False, False)
    assert r["latent"] == {"node": "8", "output": "latent"}
    assert r["denoiser"] == {"node": "2", "output": "denoiser"}
    changed = {(e["node"], e["input"]) for e in report["entries"] if e["kind"] == "changed"}
    assert {("4", "text_l"), ("5", "ascore")} <= changed
    assert not {("8", "end_at_step"), ("9", "add_noise")} & changed   # the window is no longer changed
    assert wf["nodes"]["7"]["inputs"]["vae"] == {"node": "1", "output": "vae"}
    assert wf["nodes"]["1"]["ui"]["title"] == "Base model"


def test_inpainting_masks_ride_in_the_latent_to_the_sampler() -> None:
    wf, report = convert(fixture("ui_inpaint.json"))
    n = wf["nodes"]
    assert n["5"]["type"] == "vae_encode" and n["5_mask"]["type"] == "set_latent_noise_mask"
    assert n["5_mask"]["inputs"] == {"latent": {"node": "5", "output": "latent"},
                                     "mask": {"node": "4", "output": "mask"}}
    assert n["6"]["inputs"]["latent"] == {"node": "5_mask", "output": "latent"} and "mask" not in n["6"]["inputs"]
    assert n["4"]["inputs"]["image"] == "portrait_masked.png"
    assert any(e["kind"] == "changed" and e["input"] == "grow_mask_by" for e in report["entries"])
    wf, report = convert(fixture("ui_inpaint_noise_mask.json"))   # SetLatentNoiseMask, then an upscale
    n = wf["nodes"]
    assert n["7"]["type"] == "set_latent_noise_mask"
    assert n["7"]["inputs"]["mask"] == {"node": "5", "output": "mask"}
    assert n["8"]["inputs"]["latent"] == {"node": "7", "output": "latent"}
    assert n["9"]["inputs"]["latent"] == {"node": "8", "output": "latent"} and "mask" not in n["9"]["inputs"]
    assert next(e for e in report["entries"] if e["node"] == "7")["status"] == "exact"


def test_reroutes_primitives_notes_dissolve() -> None:
    wf, report = convert(fixture("ui_groups_reroutes_primitives.json"))
    n = wf["nodes"]
    assert {t["type"] for t in n.values()} == {"load_checkpoint", "text_encode", "empty_latent", "sample",
                                               "scheduler", "vae_decode", "save_image"}
    assert n["5"]["inputs"]["encoder"] == {"node": "1", "output": "text_encoder"}
    assert n["11"]["inputs"]["vae"] == {"node": "1", "output": "vae"}
    assert (n["10"]["inputs"]["seed"], n["10"]["inputs"]["steps"]) == (123456, 30)
    assert n["10"]["ui"]["seed_control"] == {"seed": "increment"} and n["10"]["ui"]["pinned"]
    assert n["6"]["ui"]["collapsed"] is True and n["1"]["ui"]["title"] == "Model"
    titles = [g["title"] for g in wf["groups"]]
    assert titles == ["Prompts", "Sampling", "Thirty steps work best.", "About"]
    assert [x["title"] for x in wf["meta"]["notes"]] == ["Tip", "MarkdownNote"]
    assert wf["meta"]["notes"][0]["text"].endswith("Keep the seed incrementing.")
    kinds = {e["node"]: e["kind"] for e in report["entries"] if e["node"]}
    assert {kinds[i] for i in ("2", "3", "4", "8", "9", "13", "14")} == {"dissolved"}


def test_muted_and_bypassed_nodes_behave_as_in_comfyui() -> None:
    wf, report = convert(fixture("ui_muted_bypassed.json"))
    n = wf["nodes"]
    assert "8" not in n and "9" not in n and "11" not in n and "12" not in n
    assert n["5"]["inputs"]["denoiser"] == {"node": "1", "output": "denoiser"}   # through the bypassed LoRA
    assert n["2"]["inputs"]["encoder"] == {"node": "1", "output": "text_encoder"}
    assert n["10"]["inputs"]["images"] == {"node": "6", "output": "image"}     # through the bypassed invert
    assert "images" not in n["13"]["inputs"]
    problem = next(e for e in report["entries"] if e["kind"] == "problem")
    assert (problem["node"], problem["type"]) == ("13", "PreviewImage") and "muted" in problem["message"]


def test_unmapped_nodes_stay_as_placeholders_with_their_links() -> None:
    wf, report = convert(fixture("ui_sd3.json"))
    n = wf["nodes"]
    first, second = n["6"], n["7"]
    assert first["type"] == second["type"] == "comfyui:ConditioningSetTimestepRange"
    assert first["inputs"] == {"conditioning": {"node": "4", "output": "conditioning"}, "start": 0, "end": 0.1}
    assert second["inputs"]["conditioning"] == {"node": "5", "output": "conditioning"}   # fed by mapped nodes
    assert n["8"]["inputs"] == {"a": {"node": "6", "output": "CONDITIONING"},           # a mapped node fed by
                                "b": {"node": "7", "output": "CONDITIONING"}}           # placeholders
    assert first["comfyui"]["outputs"] == ["CONDITIONING"] and first["ui"]["pos"]
    entry = next(e for e in report["entries"] if e["node"] == "6")
    assert entry["kind"] == "unmapped"
    assert entry["message"] == "no Loom node yet: timestep ranges"


def test_custom_nodes_and_subgraphs_are_named_in_the_report() -> None:
    wf, report = convert(fixture("ui_custom_nodes.json"))
    reasons = {e["type"]: e["message"] for e in report["entries"] if e["kind"] == "unmapped"}
    assert "'acme-nodes'" in reasons["AcmeLatentSharpen"] and "'zeta-styles'" in reasons["ZetaPromptStyler"]
    assert "subgraph ('Face fixer')" in reasons["7f3e2c1a-5b4d-4e6f-9a8b-0c1d2e3f4a5b"]
    assert wf["nodes"]["2"]["inputs"]["text"] == {"node": "8", "output": "STRING"}
    assert wf["nodes"]["8"]["comfyui"]["widgets_values"] == ["a lantern festival", "cinematic", 0.7]


def test_bad_input_is_reported_per_node_never_raised() -> None:
    wf, report = convert(fixture("ui_bad_input.json"))
    problems = [(e["node"], e["type"], e["message"]) for e in report["entries"] if e["kind"] == "problem"]
    text = "\n".join(map(str, problems))
    assert ("5", "KSampler") in {p[:2] for p in problems} and "widgets_values holds 3 values" in text
    assert ("6", "VAEDecode") in {p[:2] for p in problems} and "link 555" in text
    assert ("41", "PreviewImage") in {p[:2] for p in problems} and "node 99" in text
    assert "the node has no type" in text and "links[10]" in text and "nodes[8]" in text
    assert wf["nodes"]["4"]["inputs"]["width"] == 496 and wf["nodes"]["4"]["inputs"]["batch"] == 64
    assert wf["nodes"]["5"]["inputs"]["seed"] == 2**53 - 1
    wf, report = convert(fixture("api_bad_input.json"))
    problems = {(e["node"], e["message"]) for e in report["entries"] if e["kind"] == "problem"}
    assert ("12", "the node is not an object; skipped") in problems
    assert ("13", "the node has no class_type; skipped") in problems
    assert wf["nodes"]["3"]["inputs"]["steps"] == 1000 and wf["nodes"]["3_scheduler"]["inputs"]["name"] == "euler"


def test_api_format_titles_layout_and_wrapper() -> None:
    wf, _ = convert(fixture("api_sd15_txt2img.json"))
    assert wf["nodes"]["6"]["ui"]["title"] == "Fox prompt" and "title" not in wf["nodes"]["4"]["ui"]
    assert all(len(n["ui"]["pos"]) == 2 for n in wf["nodes"].values())   # laid out by link depth
    assert wf["nodes"]["4"]["ui"]["pos"][0] < wf["nodes"]["3"]["ui"]["pos"][0] < wf["nodes"]["9"]["ui"]["pos"][0]
    assert convert(fixture("api_prompt_wrapper.json"))[0]["nodes"] == wf["nodes"]
    wf, _ = convert(fixture("api_img2img.json"))
    assert wf["nodes"]["1"]["inputs"]["checkpoint"] == "models/sd15/deliberate_v2.safetensors"
    assert wf["nodes"]["6_scheduler"]["inputs"] == {"name": "dpmpp_2m_sde", "sigmas": "karras", "spacing": "default"}


def test_pngs_prefer_the_workflow_chunk_and_fall_back_to_the_prompt() -> None:
    ui, _ = convert(fixture("ui_sd15_txt2img.json"))
    both, report = convert(fixture("png_sd15_both_chunks.png"))
    assert both["nodes"] == ui["nodes"] and report["source"].startswith("PNG ('workflow'")
    broken, report = convert(fixture("png_broken_workflow_chunk.png"))
    assert report["source"].startswith("PNG ('prompt'") and "6" in broken["nodes"]
    assert "not valid JSON" in report["entries"][0]["message"]


def test_schema_version_1_with_link_objects_and_native_reroutes() -> None:
    wf, report = convert(fixture("ui_schema_v1.json"))
    assert report["complete"] and wf["nodes"]["6"]["inputs"]["vae"] == {"node": "1", "output": "vae"}
    assert wf["nodes"]["2"]["ui"]["title"] == "Positive prompt"
    assert wf["nodes"]["5_scheduler"]["inputs"]["name"] == "dpmpp_2m_sde"


def test_core_primitives_become_loom_value_nodes() -> None:
    wf, report = convert(fixture("ui_core_primitives.json"))
    types = {nid: n["type"] for nid, n in wf["nodes"].items()}
    sample = wf["nodes"]["5"]["inputs"]
    assert types[sample["seed"]["node"]] == "int_value" and types[sample["cfg"]["node"]] == "float_value"
    assert types[wf["nodes"]["2"]["inputs"]["text"]["node"]] == "string_value"
    assert any(e["type"] == "PrimitiveBoolean" and e["kind"] == "dissolved" for e in report["entries"])


def test_the_table_covers_the_issue_list_and_is_consistent() -> None:
    table = specs()
    for t in ("CheckpointLoaderSimple", "VAELoader", "CLIPLoader", "UNETLoader", "CLIPTextEncode",
              "CLIPTextEncodeSDXL", "KSampler", "KSamplerAdvanced", "EmptyLatentImage", "EmptySD3LatentImage",
              "VAEEncodeTiled", "VAEEncodeForInpaint", "LatentUpscaleBy", "LatentComposite", "LatentBatch",
              "LoadImage", "SaveImage", "PreviewImage", "ImageScale", "ImageCrop", "ImageBlend", "ImageInvert",
              "ImagePadForOutpaint", "SolidMask", "ConditioningCombine", "ConditioningConcat",
              "ConditioningSetArea", "ConditioningSetMask", "CLIPSetLastLayer", "LoraLoader", "ControlNetApply",
              "UpscaleModelLoader", "TripleCLIPLoader", "FluxGuidance", "Reroute", "PrimitiveNode", "Note"):
        assert t in table, t
    for spec in table.values():
        assert (spec.handler is None) == (spec.status == "unmapped" or spec.family == "utility"), spec.type
        assert spec.note or spec.status in ("exact", "approximate"), spec.type


def test_loom_loads_comfyui_files_through_its_importer_protocol(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_bytes(fixture("ui_sd15_txt2img.json"))
    wf, report = load(path)
    assert report["importer"] == "comfyui" and wf.nodes["3"]["type"] == "sample"
    assert Workflow.load(path).nodes == wf.nodes == Workflow.load(json.loads(path.read_text())).nodes
    assert Workflow.load(fixture("png_prompt_only.png")).nodes["6"]["type"] == "sample"
    with pytest.raises(WorkflowFileError, match="not a Loom workflow: format is 'other'"):
        Workflow.load({"format": "other", "nodes": {}})   # nobody recognises it: the original error
    with pytest.raises(WorkflowFileError, match="no importer recognises it"):
        import_any({"hello": "world"})


def test_importing_the_package_is_cheap_and_loom_names_no_comfyui_node() -> None:
    code = ("import sys, loom_nodes.comfyui as c; c.importer.sniff({'1': {'class_type': 'X'}}); "
            "print('torch' in sys.modules, 'loom_nodes.comfyui.formats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "True"], out.stderr
    loom_dir = Path(__file__).resolve().parents[2] / "loom"
    for path in loom_dir.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in ("KSampler", "CLIPTextEncode", "ComfyUI", "comfyui"):
            assert name not in text, f"{path.name} names {name}"


def test_lora_stacks_map_to_load_lora() -> None:
    wf, report = convert(fixture("ui_lora_stack.json"))
    n = wf["nodes"]
    assert n["8"] == {"type": "load_lora", "inputs": {
        "denoiser": {"node": "1", "output": "denoiser"}, "lora": "detail_tweaker.safetensors",
        "strength_model": 0.8, "strength_clip": 0.8, "text_encoder": {"node": "1", "output": "text_encoder"}},
        "ui": n["8"]["ui"]}
    assert n["9"]["inputs"]["denoiser"] == {"node": "8", "output": "denoiser"}
    assert n["5"]["inputs"]["denoiser"] == {"node": "9", "output": "denoiser"}
    assert n["2"]["inputs"]["encoder"] == {"node": "9", "output": "text_encoder"}
    assert n["4"]["inputs"]["vae"] == {"node": "1", "output": "vae"}   # through the LoRAs to the loader
    wf, report = convert(fixture("api_lora_stack.json"), {"models": EMBEDDED})
    only = wf["nodes"]["3"]["inputs"]
    assert "text_encoder" not in only and only["strength_model"] == 4.0
    assert only["lora"] == "embedded/shapes-lora-random"       # LoRAs skip diffusers: replacements
    assert wf["nodes"]["1"]["inputs"] == {"model": "embedded/shapes-ldm"}
    assert any(e["kind"] == "changed" and e["node"] == "3" and e["input"] == "strength_model"
               for e in report["entries"])


def test_masks_and_paste_back_carry_their_values() -> None:
    wf, report = convert(fixture("ui_inpaint_paste_back.json"))
    n = wf["nodes"]
    assert n["5"]["inputs"] == {"mask": {"node": "4", "output": "mask"}, "radius": 12}
    assert n["6"]["inputs"]["level"] == 0.50000006
    assert n["7"]["inputs"] == {"value": 1.0, "width": 512, "height": 512}
    assert n["8"]["inputs"] == {"a": {"node": "6", "output": "mask"}, "b": {"node": "7", "output": "mask"},
                                "operation": "multiply"}
    assert n["10"]["inputs"]["mask"] == {"node": "8", "output": "mask"}   # SetLatentNoiseMask
    assert n["11"]["inputs"]["latent"] == {"node": "10", "output": "latent"}
    assert n["13"]["inputs"] == {"destination": {"node": "4", "output": "image"},
                                 "source": {"node": "12", "output": "image"}, "x": 0, "y": 0,
                                 "mask": {"node": "5", "output": "mask"}}
    assert n["13"]["ui"]["title"] == "Paste back"
    assert n["14"]["inputs"] == {"image": {"node": "13", "output": "image"}, "threshold": 0.0,
                                 "sigma": 1.0, "amount": 3.0}
    status = {e["node"]: e["status"] for e in report["entries"] if e["kind"] == "mapped"}
    assert (status["5"], status["6"], status["8"], status["13"], status["14"]) == (
        "approximate", "exact", "exact", "approximate", "approximate")


def test_outpaint_blur_crop_and_upscale_values() -> None:
    wf, _ = convert(fixture("api_outpaint.json"))
    n = wf["nodes"]
    assert n["3"]["inputs"] == {"image": {"node": "2", "output": "image"}, "fill": "gray", "left": 0,
                                "top": 0, "right": 256, "bottom": 64, "feathering": 40}
    assert n["4"]["inputs"]["count"] == 2 and n["13"]["inputs"]["sigma"] == 2.0
    assert n["7_mask"]["inputs"]["mask"] == {"node": "3", "output": "mask"}   # VAEEncodeForInpaint's mask
    assert n["8"]["inputs"]["latent"] == {"node": "7_mask", "output": "latent"}
    assert (n["11_image"]["type"], n["11"]["type"], n["11_mask"]["type"]) == (
        "mask_to_image", "crop_image", "mask_from_luminance")
    assert n["11"]["inputs"]["x"] == 256 and n["12"]["inputs"]["mask"] == {"node": "11_mask", "output": "mask"}
    wf, _ = convert(fixture("ui_upscale_esrgan.json"))
    n = wf["nodes"]
    assert n["7"]["inputs"] == {"image": {"node": "6", "output": "image"}, "index": 1, "length": 2}
    assert n["8"]["inputs"] == {"name": "RealESRGAN_x4plus.pth"}
    assert n["9"]["inputs"] == {"model": {"node": "8", "output": "upscale_model"},
                                "image": {"node": "7", "output": "image"}, "tile": 512, "overlap": 32}


@pytest.mark.parametrize("inputs,kind", [
    ({"x": 8, "y": 0, "operation": "add"}, "unmapped"), ({"x": 0, "y": 0, "operation": "xor"}, "unmapped"),
    ({"x": 0, "y": 0, "operation": "or"}, "mapped")])
def test_mask_composite_needs_no_offset_and_a_loom_operation(inputs: dict, kind: str) -> None:
    prompt = {"1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}},
              "2": {"class_type": "MaskComposite", "inputs": {**inputs, "destination": ["1", 0],
                                                                "source": ["1", 0]}}}
    wf, report = convert(prompt)
    assert next(e["kind"] for e in report["entries"] if e["node"] == "2") == kind
    if kind == "mapped":
        assert wf["nodes"]["2"]["inputs"]["operation"] == "max"


def test_threshold_levels_keep_exactly_the_pixels_comfyui_keeps() -> None:
    import torch
    from loom_nodes.comfyui.f32 import next_down, next_up
    mask = torch.rand(200_000)
    mask[:3] = torch.tensor([0.5, 0.25, 0.0])
    for value in (0.0, 0.25, 0.3, 0.5, 0.999):
        level = next_up(value)
        assert torch.equal(mask > value, mask >= level) and next_down(level) == value
