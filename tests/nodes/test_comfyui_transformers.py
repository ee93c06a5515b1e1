"""ComfyUI workflows for transformer models (Flux, SD3.5) → Loom: loaders, prompts, guidance,
shift, split sampling (SamplerCustomAdvanced) and flow scheduler names; they validate with the
tiny DiT files, a Flux dev workflow runs end to end, and the export writes them back."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from comfyui_helpers import add_input_images, fixture, graph
from dit_file_fixtures import sd3_all_in_one, write_dit_files, write_t5_tokenizer
from PIL import Image
from safetensors.torch import save_file

from loom import Executor, Registry, Settings, Workflow, validate
from loom.settings import SHIPPED_WORKFLOWS
from loom_nodes.comfyui import convert, export
from loom_nodes.comfyui.exporter import DEFAULTS
from loom_nodes.comfyui.samplers import choose_flow, to_comfy
from loom_nodes.comfyui.table import specs

DIT = ["ui_flux_dev.json", "api_flux_encode_beta.json", "ui_sd35_large.json", "api_sd35_medium_img2img.json",
       "api_sd35_all_in_one.json", "ui_flux.json", "api_flux.json"]
# the published file names → the tiny files write_dit_files makes (checkpoints keep their names)
TINY = {"*flux1-*": "tiny-flux.safetensors", "sd3.5_medium.safetensors": "tiny-flux.safetensors",
        "clip_l.safetensors": "tiny-clip-l.safetensors", "clip_g.safetensors": "tiny-clip-g.safetensors",
        "t5xxl*": "tiny-t5.safetensors", "ae.safetensors": "tiny-vae16.safetensors",
        "sd3_vae.safetensors": "tiny-vae16.safetensors", "sd3.5_medium_incl_clips*": "tiny-sd3.safetensors"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dit_home")
    write_dit_files(root / "models")
    return root


def _types(wf: dict[str, Any]) -> dict[str, str]:
    return {nid: n["type"] for nid, n in wf["nodes"].items()}


@pytest.mark.parametrize("name", DIT)
def test_transformer_workflows_map_completely_and_validate(name: str, home: Path) -> None:
    wf, report = convert(fixture(name), {"models": TINY})
    assert report["complete"], report
    assert not any(t.startswith("comfyui:") for t in _types(wf).values())
    settings = Settings(home=home, device="cpu")
    add_input_images(wf, settings.inputs)
    for node in wf["nodes"].values():   # validation checks that checkpoint files are there
        if node["type"] == "load_checkpoint":
            path = home / "models" / "checkpoints" / node["inputs"]["checkpoint"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    problems = validate(wf, Registry.default(settings), settings)
    assert not problems, "\n".join(map(str, problems))


def test_flux_dev_split_sampling_becomes_one_sample() -> None:
    wf, report = convert(fixture("ui_flux_dev.json"))
    n = wf["nodes"]
    assert _types(wf) == {"1": "load_diffusion_transformer", "2": "load_flux_text_encoders", "3": "load_dit_vae",
                          "4": "text_encode", "5": "flux_guidance", "8": "model_sampling_flow", "9": "empty_latent",
                          "14": "sample", "14_scheduler": "scheduler", "15": "vae_decode", "16": "save_image"}
    assert n["2"]["inputs"] == {"clip_l": "clip_l.safetensors", "t5": "t5xxl_fp16.safetensors"}
    assert n["3"]["inputs"] == {"vae": "ae.safetensors", "latent_space": "flux"}
    assert n["8"]["inputs"] == {"denoiser": {"node": "1", "output": "denoiser"}, "mode": "dynamic",
                                "base_shift": 0.5, "max_shift": 1.15}
    assert n["5"]["inputs"]["guidance"] == 3.5
    sample = n["14"]["inputs"]
    assert sample["denoiser"] == {"node": "8", "output": "denoiser"}
    assert sample["positive"] == sample["negative"] == {"node": "5", "output": "conditioning"}
    assert (sample["cfg"], sample["steps"], sample["seed"], sample["denoise"]) == (1.0, 20, 219670278747233, 1.0)
    assert n["14"]["ui"]["seed_control"] == {"seed": "randomize"}
    assert n["14_scheduler"]["inputs"] == {"name": "flow_euler", "sigmas": "default", "spacing": "default"}
    assert n["9"]["inputs"] == {"width": 1024, "height": 1024, "batch": 1, "vae": {"node": "3", "output": "vae"}}
    kinds = {e["node"]: e["kind"] for e in report["entries"] if e["node"]}
    assert [kinds[i] for i in ("10", "11", "12", "13")] == ["dissolved"] * 4
    assert n["4"]["ui"]["title"] == "CLIP Text Encode (Positive Prompt)"


def test_sd35_and_flux_prompt_encoders_and_loaders() -> None:
    wf, report = convert(fixture("api_flux_encode_beta.json"))
    n = wf["nodes"]
    assert n["10"]["inputs"] == {"model": "flux/flux1-dev-fp8.safetensors", "weight_dtype": "fp8_e4m3fn"}
    assert n["11"]["inputs"] == {"clip_l": "clip_l.safetensors", "t5": "t5xxl_fp8_e4m3fn.safetensors"}
    assert n["14"]["inputs"]["text"] == "a red bicycle leaning on a blue door, film photo"
    assert n["14_guidance"]["inputs"] == {"conditioning": {"node": "14", "output": "conditioning"}, "guidance": 4.0}
    assert n["15"]["inputs"]["conditioning"] == {"node": "14_guidance", "output": "conditioning"}
    assert n["17_scheduler"]["inputs"] == {"name": "flow_euler", "sigmas": "beta", "spacing": "default"}
    changed = {(e["node"], e["input"]) for e in report["entries"] if e["kind"] == "changed"}
    assert {("10", "weight_dtype"), ("14", "clip_l")} <= changed
    wf, _ = convert(fixture("ui_sd35_large.json"))
    n = wf["nodes"]
    assert n["2"] == {"type": "load_sd3_text_encoders", "ui": n["2"]["ui"], "inputs": {
        "clip_l": "clip_l.safetensors", "clip_g": "clip_g.safetensors", "t5": "t5xxl_fp16.safetensors"}}
    assert n["3"]["inputs"] == {"denoiser": {"node": "1", "output": "denoiser"}, "mode": "fixed", "shift": 3.0}
    assert n["6"]["inputs"]["vae"] == {"node": "1", "output": "vae"}    # through the shift to the checkpoint
    assert n["7_scheduler"]["inputs"]["name"] == "flow_euler" and n["7"]["inputs"]["cfg"] == 4.5
    wf, _ = convert(fixture("api_sd35_medium_img2img.json"))
    n = wf["nodes"]   # files in another order are matched by name; CFGGuider keeps both prompts and cfg
    assert n["2"]["inputs"] == {"clip_l": "clip_l.safetensors", "clip_g": "clip_g.safetensors",
                                "t5": "t5xxl_fp8_e4m3fn.safetensors"}
    assert n["3"]["inputs"] == {"vae": "sd3_vae.safetensors", "latent_space": "sd3"}
    s = n["12"]["inputs"]
    assert (s["negative"], s["cfg"], s["steps"], s["denoise"], s["seed"]) == (
        {"node": "7", "output": "conditioning"}, 5.0, 12, 0.6, 77)
    assert n["12_scheduler"]["inputs"]["name"] == "flow_heun"


def test_what_loom_cannot_express_stays_a_placeholder() -> None:
    prompt = {
        "1": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                          "clip_name2": "clip_g.safetensors", "type": "sdxl"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "pixart"}},
        "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "ltxv"}},
        "4": {"class_type": "VAELoader", "inputs": {"vae_name": "vae-ft-mse-840000.safetensors"}},
        "5": {"class_type": "UNETLoader", "inputs": {"unet_name": "m.safetensors", "weight_dtype": "default"}},
        "6": {"class_type": "SDTurboScheduler", "inputs": {"steps": 1, "denoise": 1.0, "model": ["5", 0]}},
        "7": {"class_type": "BasicGuider", "inputs": {"model": ["5", 0], "conditioning": ["8", 0]}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["2", 0]}},
        "9": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "10": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}},
        "11": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["10", 0], "guider": ["7", 0], "sampler": ["9", 0], "sigmas": ["6", 0]}}}
    wf, report = convert(prompt)
    t = _types(wf)
    assert t["1"] == "comfyui:DualCLIPLoader" and t["3"] == "comfyui:CLIPLoader"
    assert t["2"] == "load_pixart_text_encoder" and t["4"] == "load_vae"   # an SD VAE in a non-DiT workflow
    assert t["5"] == "load_diffusion_transformer" and t["9"] == "scheduler"   # its sampler is not merged
    assert t["7"] == "comfyui:BasicGuider" and t["11"] == "comfyui:SamplerCustomAdvanced"
    reasons = {e["node"]: e["message"] for e in report["entries"] if e["kind"] == "unmapped"}
    assert "SDXL's two CLIPs" in reasons["1"] and "BasicScheduler" in reasons["11"]


def test_flow_sampler_names() -> None:
    c = choose_flow("euler", "simple")
    assert (c.name, c.sigmas, c.spacing, c.exact_method) == ("flow_euler", "default", "default", True)
    c = choose_flow("heun", "beta")   # FlowMatchHeun has no beta sigmas
    assert (c.name, c.sigmas, c.exact_method) == ("flow_heun", "default", False)
    c = choose_flow("dpmpp_2m", "karras")
    assert (c.name, c.sigmas, c.exact_method) == ("flow_euler", "karras", False)
    assert to_comfy("flow_euler", "default", "default") == ("euler", "simple", [])
    assert to_comfy("flow_heun", "beta", "default")[:2] == ("heun", "beta")


@pytest.mark.parametrize("name", DIT)
def test_round_trip_through_the_api_format_keeps_the_graph(name: str) -> None:
    wf, _ = convert(fixture(name))
    prompt, report = export(wf)
    assert report["complete"], report
    back, _ = convert(json.loads(json.dumps(prompt)))
    assert graph(back) == graph(wf)


def _meaning(wf: dict[str, Any]) -> dict[str, Any]:
    """Each node's type and non-default inputs, a sampler's scheduler folded into it."""
    nodes, out = wf["nodes"], {}
    for nid, n in nodes.items():
        if n["type"] == "scheduler":
            continue
        inputs = {k: v for k, v in n["inputs"].items() if DEFAULTS.get(n["type"], {}).get(k, ...) != v}
        if n["type"] == "sample":
            s = {**DEFAULTS["scheduler"], **nodes[inputs.pop("scheduler")["node"]]["inputs"]}
            inputs["scheduler"] = (s["name"], s["sigmas"])
        out[nid] = (n["type"], inputs)
    return out


@pytest.mark.parametrize("name", ["flux_template", "sd3_template", "text_to_image_dit"])
def test_loom_transformer_examples_round_trip(name: str) -> None:
    wf = Workflow.load(SHIPPED_WORKFLOWS / f"{name}.json").to_dict()
    prompt, report = export(wf)
    assert report["complete"], report
    back, _ = convert(json.loads(json.dumps(prompt)))
    assert _meaning(back) == _meaning(wf)


def test_the_export_writes_comfyuis_transformer_nodes() -> None:
    wf, _ = convert(fixture("ui_flux_dev.json"))
    prompt, _ = export(wf)
    assert prompt["1"] == {"class_type": "UNETLoader", "_meta": prompt["1"]["_meta"],
                           "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}}
    assert prompt["2"]["inputs"] == {"type": "flux", "clip_name1": "t5xxl_fp16.safetensors",
                                     "clip_name2": "clip_l.safetensors"}
    assert prompt["8"]["class_type"] == "ModelSamplingFlux" and prompt["8"]["inputs"]["max_shift"] == 1.15
    assert prompt["9"]["class_type"] == "EmptySD3LatentImage" and prompt["5"]["class_type"] == "FluxGuidance"
    assert {k: prompt["14"]["inputs"][k] for k in ("sampler_name", "scheduler", "cfg")} == {
        "sampler_name": "euler", "scheduler": "simple", "cfg": 1.0}
    wf, _ = convert(fixture("ui_sd35_large.json"))
    prompt, _ = export(wf)
    assert prompt["2"]["class_type"] == "TripleCLIPLoader" and prompt["3"]["class_type"] == "ModelSamplingSD3"


def test_the_table_maps_the_sd3_and_flux_core_nodes() -> None:
    table = specs()
    for t in ("UNETLoader", "DualCLIPLoader", "TripleCLIPLoader", "FluxGuidance", "ModelSamplingFlux",
              "ModelSamplingSD3", "CLIPTextEncodeFlux", "CLIPTextEncodeSD3", "EmptySD3LatentImage",
              "SamplerCustomAdvanced", "BasicGuider", "CFGGuider", "RandomNoise"):
        assert table[t].handler is not None and table[t].status != "unmapped", t
    assert "load_dit_vae" in table["VAELoader"].loom


def test_samplercustom_on_a_flow_model_and_disabled_noise_merge_too() -> None:
    wf, _ = convert(fixture("api_sd35_all_in_one.json"))
    prompt = {k: v for k, v in json.loads(fixture("api_sd35_all_in_one.json")).items() if k != "3"}
    prompt.update({
        "20": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "21": {"class_type": "BasicScheduler", "inputs": {"scheduler": "beta", "steps": 9, "denoise": 1.0,
                                                          "model": ["13", 0]}},
        "3": {"class_type": "SamplerCustom", "inputs": {
            "add_noise": True, "noise_seed": 5, "cfg": 4.5, "model": ["13", 0], "positive": ["6", 0],
            "negative": ["7", 0], "sampler": ["20", 0], "sigmas": ["21", 0], "latent_image": ["135", 0]}},
        "22": {"class_type": "DisableNoise", "inputs": {}},
        "23": {"class_type": "CFGGuider", "inputs": {"cfg": 2.0, "model": ["13", 0], "positive": ["6", 0],
                                                     "negative": ["7", 0]}},
        "24": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 4, "denoise": 0.5,
                                                          "model": ["13", 0]}},
        "25": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["22", 0], "guider": ["23", 0], "sampler": ["20", 0], "sigmas": ["24", 0],
            "latent_image": ["3", 0]}}})
    prompt["8"]["inputs"]["samples"] = ["25", 0]
    wf, report = convert(prompt)
    n = wf["nodes"]
    assert report["complete"] and "20" not in n and "21" not in n and "24" not in n
    assert n["3"]["type"] == "sample" and n["3_scheduler"]["inputs"] == {
        "name": "flow_euler", "sigmas": "beta", "spacing": "default"}
    assert (n["3"]["inputs"]["steps"], n["3"]["inputs"]["seed"], n["3"]["inputs"]["cfg"]) == (9, 5, 4.5)
    s = n["25"]["inputs"]   # a 4-step pass at denoise 0.5 of an 8-step schedule, without added noise
    assert n["25"]["type"] == "sample_advanced" and (s["steps"], s["start_step"], s["add_noise"], s["cfg"]) == (
        8, 4, False, 2.0)
    assert s["latent"] == {"node": "3", "output": "latent"}


def _saved_image(output: Path, prefix: str) -> Image.Image:
    saved = [p for p in output.rglob(f"{prefix}*") if p.is_file()]
    assert len(saved) == 1, saved
    return Image.open(saved[0])


def _run_tiny(wf: dict[str, Any], home: Path, latent: str, sampler: str) -> None:
    wf["nodes"][latent]["inputs"].update(width=32, height=32)   # tiny images and two steps on the CPU
    wf["nodes"][sampler]["inputs"]["steps"] = 2
    settings = Settings(home=home, device="cpu")
    registry = Registry.default(settings)
    assert not validate(wf, registry, settings)
    Executor(registry, settings=settings).run(wf)


def test_an_imported_flux_dev_workflow_runs_on_the_tiny_files(tmp_path: Path) -> None:
    write_dit_files(tmp_path / "models")
    wf, report = convert(fixture("ui_flux_dev.json"), {"models": TINY})
    assert report["complete"]
    _run_tiny(wf, tmp_path, "9", "14")
    with _saved_image(tmp_path / "output", "flux_dev") as img:
        assert img.size == (32, 32)
        assert torch.tensor(list(img.convert("L").getdata()), dtype=torch.float32).std() > 0


def test_an_imported_sd35_checkpoint_workflow_runs_on_a_tiny_checkpoint(tmp_path: Path) -> None:
    sd, _ = sd3_all_in_one()
    path = tmp_path / "models" / "checkpoints" / "tiny-sd3.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    write_t5_tokenizer(tmp_path / "models" / "tokenizers" / "t5")
    wf, report = convert(fixture("api_sd35_all_in_one.json"), {"models": TINY})
    assert report["complete"] and wf["nodes"]["3_scheduler"]["inputs"]["name"] == "flow_euler"
    _run_tiny(wf, tmp_path, "135", "3")
    with _saved_image(tmp_path / "output", "sd35_medium") as img:
        assert img.size == (32, 32)
