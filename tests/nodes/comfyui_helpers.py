"""Shared by the ComfyUI tests: the fixtures, what each should give, substitution and validation."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

FIXTURES = Path(__file__).resolve().parent / "comfyui_fixtures"
# every checkpoint → the embedded model; LoRA files (which skip diffusers: replacements) → the
# embedded random LoRA; ControlNets (control_*.pth) → the embedded random ControlNet; upscale
# models keep their names (add_model_files puts a file there)
EMBEDDED = {"*": "diffusers:embedded/shapes-ldm", "*.safetensors": "embedded/shapes-lora-random",
            "control_*": "embedded/shapes-controlnet-random"}

# fixture → (every node mapped?, ComfyUI types left unmapped)
EXPECT: dict[str, tuple[bool, set[str]]] = {
    "ui_sd15_txt2img.json": (True, set()),
    "ui_sdxl_base_refiner.json": (True, set()),
    "ui_img2img.json": (True, set()),
    "ui_inpaint.json": (True, set()),
    "ui_inpaint_noise_mask.json": (True, set()),
    "ui_lora_stack.json": (True, set()),
    "ui_controlnet.json": (True, set()),
    "ui_hires_fix.json": (True, set()),
    "ui_upscale_model.json": (False, {"ImageScaleBy"}),
    "ui_sd3.json": (False, {"ConditioningSetTimestepRange"}),
    "ui_flux.json": (True, set()),
    "ui_flux_dev.json": (True, set()),
    "ui_sd35_large.json": (True, set()),
    "ui_groups_reroutes_primitives.json": (True, set()),
    "ui_custom_nodes.json": (False, {"ZetaPromptStyler", "AcmeLatentSharpen",
                                     "7f3e2c1a-5b4d-4e6f-9a8b-0c1d2e3f4a5b"}),
    "ui_muted_bypassed.json": (False, set()),          # complete but one input leads to a muted node
    "ui_image_ops.json": (True, set()),
    "ui_schema_v1.json": (True, set()),
    "ui_core_primitives.json": (True, set()),
    "ui_conditioning_masks.json": (True, set()),
    "ui_tiled_vae_clip_skip.json": (True, set()),
    "ui_bad_input.json": (False, set()),
    "ui_inpaint_paste_back.json": (True, set()),
    "ui_upscale_esrgan.json": (True, set()),
    "ui_custom_sampling.json": (True, set()),
    "api_outpaint.json": (True, set()),
    "api_lora_stack.json": (True, set()),
    "api_sd15_txt2img.json": (True, set()),
    "api_sdxl_base_refiner.json": (True, set()),
    "api_img2img.json": (True, set()),
    "api_inpaint.json": (True, set()),
    "api_lora_controlnet.json": (True, set()),
    "api_latent_conditioning_ops.json": (True, set()),
    "api_flux.json": (True, set()),
    "api_flux_encode_beta.json": (True, set()),
    "api_sd35_medium_img2img.json": (True, set()),
    "api_sd35_all_in_one.json": (True, set()),
    "api_custom_nodes.json": (False, {"LatentUpscale", "OmegaLatentColorShift"}),
    "api_prompt_wrapper.json": (True, set()),
    "api_bad_input.json": (False, set()),
    "png_sd15_both_chunks.png": (True, set()),
    "png_prompt_only.png": (True, set()),
    "png_sdxl_workflow.png": (True, set()),
    "png_broken_workflow_chunk.png": (False, set()),  # read from the prompt chunk, with a problem
}
UNREADABLE = ["bad_truncated.json", "bad_unknown_format.json", "png_plain.png"]
# transformer (SD3/Flux) fixtures: validated and run with the tiny DiT files in test_comfyui_transformers.py
DIT = {"ui_flux.json", "api_flux.json", "ui_flux_dev.json", "ui_sd35_large.json", "api_flux_encode_beta.json",
       "api_sd35_medium_img2img.json", "api_sd35_all_in_one.json"}
MAPPED = sorted(k for k, (ok, _) in EXPECT.items() if ok and k not in DIT)
# mapped fixtures whose Loom nodes do not all export (approximate mappings have no exact way back)
EXPORT_LEFT_OUT: dict[str, set[str]] = {
    "ui_inpaint_paste_back.json": {"grow_mask", "sharpen_image"},
    "api_outpaint.json": {"pad_for_outpaint", "blur_image", "mask_from_luminance"},
    "ui_custom_sampling.json": {"sigmas"},   # its levels come from the model; ComfyUI's need numbers
}


def fixture(name: str) -> bytes:
    """A fixture file's bytes."""
    return (FIXTURES / name).read_bytes()


def add_input_images(workflow: dict[str, Any], input_dir: Path) -> None:
    """Put a small image wherever a load_image node expects an upload."""
    for node in workflow["nodes"].values():
        name = node["inputs"].get("image") if node["type"] == "load_image" else None
        if isinstance(name, str):
            path = input_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGBA" if path.suffix == ".png" else "RGB", (64, 64), (90, 120, 200)).save(path)


def add_model_files(workflow: dict[str, Any], models_dir: Path) -> None:
    """An (empty) file wherever a load_upscale_model node names one: validation only checks
    that the file is there."""
    for node in workflow["nodes"].values():
        name = node["inputs"].get("name") if node["type"] == "load_upscale_model" else None
        if isinstance(name, str):
            path = models_dir / "upscale_models" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")


def graph(workflow: dict[str, Any]) -> dict[str, Any]:
    """What a round trip must keep: each node's type, inputs and title."""
    return {nid: (n["type"], n["inputs"], (n.get("ui") or {}).get("title"))
            for nid, n in workflow["nodes"].items()}
