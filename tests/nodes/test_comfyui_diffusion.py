"""The ComfyUI latent, conditioning, ControlNet and custom-sampling nodes: what they map to,
with which values and status, and how they export back."""
from __future__ import annotations

from typing import Any

from comfyui_helpers import EMBEDDED, fixture

from loom_nodes.comfyui import convert
from loom_nodes.comfyui import export
from loom_nodes.comfyui.table import specs


def _status(report: dict[str, Any]) -> dict[str, str]:
    return {e["node"]: e["status"] for e in report["entries"] if e["kind"] == "mapped"}


def test_controlnet_workflows_map_and_take_the_embedded_controlnet() -> None:
    wf, report = convert(fixture("ui_controlnet.json"), {"models": EMBEDDED})
    n = wf["nodes"]
    assert report["complete"] and n["8"] == {**n["8"], "type": "load_controlnet",
                                              "inputs": {"name": "embedded/shapes-controlnet-random"}}
    assert n["10"]["type"] == "apply_controlnet_advanced"
    assert {k: n["10"]["inputs"][k] for k in ("strength", "start_percent", "end_percent")} == {
        "strength": 0.9, "start_percent": 0.0, "end_percent": 0.8}
    assert n["10"]["inputs"]["control_net"] == {"node": "8", "output": "control_net"}
    assert n["5"]["inputs"]["negative"] == {"node": "10", "output": "negative"}
    mapped = next(e for e in report["entries"] if e["node"] == "10")
    assert mapped["status"] == "approximate" and "sigma range" in mapped["message"]
    prompt, _ = export(convert(fixture("api_lora_controlnet.json"))[0])
    assert prompt["5"]["class_type"] == "ControlNetLoader" and prompt["7"]["class_type"] == "ControlNetApplyAdvanced"
    assert prompt["9"]["inputs"]["negative"] == ["7", 1]


def test_latent_and_conditioning_nodes_keep_their_values() -> None:
    wf, report = convert(fixture("api_latent_conditioning_ops.json"))
    n = wf["nodes"]
    assert report["complete"]
    assert n["2"]["type"] == "clip_set_last_layer" and n["2"]["inputs"]["clip_skip"] == 2
    assert n["7"]["inputs"] == {"to": {"node": "6", "output": "conditioning"},
                                "source": {"node": "3", "output": "conditioning"}, "to_weight": 0.7}
    assert n["10"]["inputs"] == {"image": {"node": "9", "output": "image"}, "low_threshold": 0.4,
                                 "high_threshold": 0.8, "sigma": 1.0}
    assert n["12"]["type"] == "apply_controlnet" and n["12"]["inputs"]["strength"] == 0.8
    assert (n["14"]["inputs"]["index"], n["14"]["inputs"]["length"], n["15"]["inputs"]["amount"]) == (1, 2, 2)
    assert n["21"]["inputs"]["mask"] == {"node": "20", "output": "mask"} and n["21"]["inputs"]["feather"] == 0
    assert (n["22"]["inputs"]["feather"], n["23"]["inputs"]["factor"]) == (16, 0.75)
    assert n["24"]["inputs"]["prefix"] == "latents/lighthouse"
    assert n["25"]["inputs"] == {"name": "lighthouse_00001_.latent"}
    assert [n["27"]["type"], n["28"]["inputs"]["negative"]] == ["inpaint_conditioning",
                                                                {"node": "27", "output": "negative"}]
    status = _status(report)
    assert {status[i] for i in ("6", "8", "14", "15", "16", "21", "22", "23", "24", "25", "26")} == {"exact"}
    assert {status[i] for i in ("2", "7", "10", "12", "17", "19", "27")} == {"approximate"}


def test_the_exports_write_comfyui_values() -> None:
    wf, _ = convert(fixture("api_latent_conditioning_ops.json"))
    prompt, report = export(wf)
    assert report["complete"], report
    assert prompt["2"]["inputs"]["stop_at_clip_layer"] == -2
    assert prompt["23"]["inputs"]["blend_factor"] == 0.25 and prompt["23"]["class_type"] == "LatentBlend"
    assert prompt["21"]["class_type"] == "LatentCompositeMasked" and prompt["22"]["class_type"] == "LatentComposite"
    base, refiner = prompt["17"]["inputs"], prompt["18"]["inputs"]
    assert prompt["17"]["class_type"] == "KSamplerAdvanced"
    assert (base["add_noise"], base["return_with_leftover_noise"], base["end_at_step"]) == ("enable", "enable", 20)
    assert (refiner["add_noise"], refiner["start_at_step"], refiner["scheduler"]) == ("disable", 20, "karras")
    assert prompt["12"]["class_type"] == "ControlNetApply" and prompt["10"]["class_type"] == "Canny"


def test_custom_sampling_gives_the_sigmas_the_samplers_model() -> None:
    wf, report = convert(fixture("ui_custom_sampling.json"))
    n = wf["nodes"]
    assert n["5"] == {**n["5"], "type": "scheduler", "inputs": {"name": "euler", "sigmas": "default",
                                                                "spacing": "default"}}
    assert n["6"]["inputs"] == {"steps": 20, "schedule": "karras", "denoiser": {"node": "1", "output": "denoiser"},
                                "scheduler": {"node": "5", "output": "scheduler"}}
    high, low = n["8"]["inputs"], n["9"]["inputs"]
    assert high["sigmas"] == {"node": "7", "output": "high"} and low["sigmas"] == {"node": "7", "output": "low"}
    assert (high["add_noise"], low["add_noise"], low["return_with_leftover_noise"]) == (True, False, True)
    assert n["10"]["inputs"]["steps"] == 20 and n["10_denoise"]["inputs"]["step"] == 10   # denoise 0.5
    assert n["11"]["inputs"]["sigmas"] == {"node": "10_denoise", "output": "low"}
    prompt, report = export(wf)
    assert prompt["8"]["class_type"] == "SamplerCustom" and prompt["8"]["inputs"]["sampler"] == ["5", 0]
    assert prompt["5"]["class_type"] == "KSamplerSelect" and prompt["7"]["class_type"] == "SplitSigmas"
    assert {e["type"] for e in report["entries"] if e["kind"] == "unmapped"} == {"sigmas"}


def test_denoised_output_and_odd_options_are_reported() -> None:
    prompt = {"1": {"class_type": "LatentCompositeMasked", "inputs": {"x": 8, "y": 0, "resize_source": True,
                                                                      "destination": ["2", 0], "source": ["2", 0]}},
              "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
              "3": {"class_type": "ConditioningSetMask", "inputs": {"strength": 1, "set_cond_area": "mask bounds",
                                                                    "conditioning": ["9", 0], "mask": ["9", 1]}},
              "4": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -1, "clip": ["9", 0]}},
              "5": {"class_type": "SamplerCustom", "inputs": {"add_noise": True, "noise_seed": 1, "cfg": 5,
                                                              "latent_image": ["2", 0]}},
              "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 1]}}}
    wf, report = convert(prompt)
    changed = {(e["node"], e["input"]) for e in report["entries"] if e["kind"] == "changed"}
    assert {("1", "resize_source"), ("3", "set_cond_area")} <= changed
    assert {k: v for k, v in _status(report).items() if k != "5"} == {
        "1": "approximate", "2": "exact", "3": "approximate", "6": "exact"}
    problem = next(e for e in report["entries"] if e["kind"] == "problem" and e["node"] == "6")
    assert "denoised_output" in problem["message"]
    assert "4" not in wf["nodes"]   # −1 is the encoder as it is


def test_the_new_nodes_are_in_the_table_with_their_loom_nodes() -> None:
    table = specs()
    expected = {"LatentComposite": "latent_composite", "SetLatentNoiseMask": "set_latent_noise_mask",
                "SaveLatent": "save_latent", "LoadLatent": "load_latent", "SplitSigmas": "split_sigmas",
                "FlipSigmas": "flip_sigmas", "ConditioningZeroOut": "conditioning_zero_out",
                "ControlNetLoader": "load_controlnet", "InpaintModelConditioning": "inpaint_conditioning",
                "Canny": "canny_edges", "CLIPSetLastLayer": "clip_set_last_layer"}
    for comfy, loom in expected.items():
        assert table[comfy].loom == loom and table[comfy].status in ("exact", "approximate"), comfy
    assert table["KSamplerAdvanced"].loom.startswith("sample_advanced")
    assert table["ConditioningSetAreaPercentage"].status == "unmapped"


def test_the_package_export_stays_a_function_after_it_is_used() -> None:
    """Its submodule is named ``exporter``: importing it lazily cannot rebind ``export``."""
    import types

    import loom_nodes.comfyui as package
    package.export({"format": "loom.workflow", "version": 1, "nodes": {}})
    assert callable(package.export) and not isinstance(package.export, types.ModuleType)
