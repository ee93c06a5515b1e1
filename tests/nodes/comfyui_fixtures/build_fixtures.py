"""Writes the generated ComfyUI fixtures of tests/nodes/test_comfyui_import.py.

    python tests/nodes/comfyui_fixtures/build_fixtures.py

The graphs are in fixtures_ui_a.py, fixtures_ui_b.py (UI format), fixtures_api.py (API
format), fixtures_masks.py and fixtures_diffusion.py (both); PNGs carry them in ``workflow`` / ``prompt`` tEXt chunks as ComfyUI saves them. The
hand-written ``ui_sd15_txt2img.json`` and ``ui_schema_v1.json`` are not touched.
"""
from __future__ import annotations

import json
from typing import Any

import fixtures_api as A
import fixtures_diffusion as D
import fixtures_masks as K
import fixtures_ui_a as U1
import fixtures_ui_b as U2
from comfy_builder import HERE, UI
from PIL import Image
from PIL.PngImagePlugin import PngInfo

UI_GRAPHS = {
    "ui_sdxl_base_refiner": U1.sdxl_base_refiner, "ui_img2img": U1.img2img, "ui_inpaint": U1.inpaint,
    "ui_inpaint_noise_mask": U1.inpaint_noise_mask, "ui_lora_stack": U1.lora_stack,
    "ui_controlnet": U1.controlnet, "ui_hires_fix": U1.hires_fix, "ui_upscale_model": U1.upscale_model,
    "ui_sd3": U1.sd3, "ui_flux": U1.flux, "ui_groups_reroutes_primitives": U1.groups_reroutes_primitives,
    "ui_custom_nodes": U2.custom_nodes, "ui_muted_bypassed": U2.muted_bypassed, "ui_image_ops": U2.image_ops,
    "ui_core_primitives": U2.core_primitives, "ui_conditioning_masks": U2.conditioning_masks,
    "ui_tiled_vae_clip_skip": U2.tiled_vae_clip_skip, "ui_bad_input": U2.bad_input,
    "ui_inpaint_paste_back": K.inpaint_paste_back, "ui_upscale_esrgan": K.upscale_esrgan,
    "ui_custom_sampling": D.custom_sampling,
}
API_PROMPTS = {
    "api_sd15_txt2img": A.sd15_txt2img, "api_sdxl_base_refiner": A.sdxl_base_refiner,
    "api_img2img": A.img2img, "api_inpaint": A.inpaint, "api_lora_controlnet": A.lora_controlnet,
    "api_flux": A.flux, "api_custom_nodes": A.custom_nodes, "api_prompt_wrapper": A.prompt_wrapper,
    "api_bad_input": A.bad_input, "api_outpaint": K.outpaint, "api_lora_stack": K.lora_stack,
    "api_latent_conditioning_ops": D.latent_conditioning_ops,
}


def _write_json(name: str, data: Any) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _png(name: str, chunks: dict[str, str], color: tuple[int, int, int]) -> None:
    info = PngInfo()
    for key, text in chunks.items():
        info.add_text(key, text)
    Image.new("RGB", (16, 16), color).save(HERE / f"{name}.png", pnginfo=info)


def main() -> None:
    for name, build in UI_GRAPHS.items():
        graph = build()
        _write_json(name, graph.json() if isinstance(graph, UI) else graph)
    for name, build in API_PROMPTS.items():
        _write_json(name, build())
    sd15_ui = (HERE / "ui_sd15_txt2img.json").read_text(encoding="utf-8")
    _png("png_sd15_both_chunks", {"prompt": json.dumps(A.sd15_txt2img()),
                                  "workflow": json.dumps(json.loads(sd15_ui))}, (200, 120, 40))
    _png("png_prompt_only", {"prompt": json.dumps(A.img2img())}, (40, 120, 200))
    _png("png_sdxl_workflow", {"workflow": json.dumps(U1.sdxl_base_refiner().json())}, (90, 90, 90))
    _png("png_broken_workflow_chunk", {"workflow": json.dumps(json.loads(sd15_ui))[:400],
                                       "prompt": json.dumps(A.sd15_txt2img())}, (10, 200, 10))
    _png("png_plain", {}, (255, 255, 255))
    (HERE / "bad_truncated.json").write_text(json.dumps(json.loads(sd15_ui))[:700], encoding="utf-8")
    _write_json("bad_unknown_format", {"name": "not a workflow", "items": [1, 2, 3]})


if __name__ == "__main__":
    main()
