"""Loom workflow → ComfyUI API format (what ComfyUI's ``/prompt`` takes), for the nodes that map.

Each Loom node becomes the ComfyUI core node the importer maps to it, under the same id, so
importing the result gives the same graph back. ``sample`` and its ``scheduler`` become one
KSampler, ``sample_advanced`` a KSamplerAdvanced (a ``mask`` adds a SetLatentNoiseMask); placeholders of unmapped ComfyUI nodes are
written back as they came. Loom nodes with no ComfyUI counterpart are left out and reported.
"""
from __future__ import annotations

from typing import Any, Callable

from loom.workflow import Workflow, is_link

from .context import PLACEHOLDER_PREFIX
from .export_extra import CUSTOM
from .model import CNode, Report
from .samplers import to_comfy
from .table import specs

METHODS_TO_COMFY = {"nearest": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic",
                    "area": "area"}
BLEND_TO_COMFY = {"normal": "normal", "multiply": "multiply", "screen": "screen",
                  "overlay": "overlay", "difference": "difference"}
_MODEL = ("denoiser", "text_encoder", "vae")

# Loom type → (ComfyUI class, {Loom input: ComfyUI input}, Loom outputs by ComfyUI slot, fixed inputs)
SIMPLE: dict[str, tuple[str, dict[str, str], tuple[str, ...], dict[str, Any]]] = {
    "load_checkpoint": ("CheckpointLoaderSimple", {"checkpoint": "ckpt_name"}, _MODEL, {}),
    "load_diffusers_model": ("DiffusersLoader", {"model": "model_path"}, _MODEL, {}),
    "load_vae": ("VAELoader", {"vae": "vae_name"}, ("vae",), {}),
    "load_text_encoder": ("CLIPLoader", {"name": "clip_name"}, ("text_encoder",),
                          {"type": "stable_diffusion"}),
    "load_diffusion_transformer": ("UNETLoader", {"model": "unet_name", "weight_dtype": "weight_dtype"},
                                   ("denoiser",), {}),
    "load_sd3_text_encoders": ("TripleCLIPLoader", {"clip_l": "clip_name1", "clip_g": "clip_name2",
                                                    "t5": "clip_name3"}, ("text_encoder",), {}),
    "load_flux_text_encoders": ("DualCLIPLoader", {"t5": "clip_name1", "clip_l": "clip_name2"},
                                ("text_encoder",), {"type": "flux"}),
    "load_pixart_text_encoder": ("CLIPLoader", {"t5": "clip_name"}, ("text_encoder",), {"type": "pixart"}),
    "load_dit_vae": ("VAELoader", {"vae": "vae_name"}, ("vae",), {}),
    "flux_guidance": ("FluxGuidance", {"conditioning": "conditioning", "guidance": "guidance"},
                      ("conditioning",), {}),
    "text_encode": ("CLIPTextEncode", {"encoder": "clip", "text": "text"}, ("conditioning",), {}),
    "empty_latent": ("EmptyLatentImage", {"width": "width", "height": "height", "batch": "batch_size"},
                     ("latent",), {}),
    "latent_upscale": ("LatentUpscaleBy", {"latent": "samples", "scale": "scale_by",
                                           "method": "upscale_method"}, ("latent",), {}),
    "load_image": ("LoadImage", {"image": "image"}, ("image", "mask"), {}),
    "save_image": ("SaveImage", {"images": "images", "prefix": "filename_prefix"}, (), {}),
    "preview_image": ("PreviewImage", {"images": "images"}, (), {}),
    "resize_image": ("ImageScale", {"image": "image", "method": "upscale_method", "width": "width",
                                    "height": "height"}, ("image",), {"crop": "disabled"}),
    "crop_image": ("ImageCrop", {"image": "image", "width": "width", "height": "height", "x": "x",
                                 "y": "y"}, ("image",), {}),
    "blend_images": ("ImageBlend", {"a": "image1", "b": "image2", "factor": "blend_factor",
                                    "mode": "blend_mode"}, ("image",), {}),
    "invert_image": ("ImageInvert", {"image": "image"}, ("image",), {}),
    "image_batch": ("ImageBatch", {"a": "image1", "b": "image2"}, ("image",), {}),
    "int_value": ("PrimitiveInt", {"value": "value"}, ("value",), {}),
    "float_value": ("PrimitiveFloat", {"value": "value"}, ("value",), {}),
    "string_value": ("PrimitiveStringMultiline", {"value": "value"}, ("value",), {}),
    "seed_value": ("PrimitiveInt", {"seed": "value"}, ("seed",), {}),
    "vae_decode": ("VAEDecode", {"latent": "samples", "vae": "vae"}, ("image",), {}),
    "vae_encode": ("VAEEncode", {"image": "pixels", "vae": "vae"}, ("latent",), {}),
    "solid_mask": ("SolidMask", {"value": "value", "width": "width", "height": "height"}, ("mask",), {}),
    "invert_mask": ("InvertMask", {"mask": "mask"}, ("mask",), {}),
    "mask_to_image": ("MaskToImage", {"mask": "mask"}, ("image",), {}),
    "composite_images": ("ImageCompositeMasked", {"destination": "destination", "source": "source",
                                                  "x": "x", "y": "y", "mask": "mask"}, ("image",),
                         {"resize_source": False}),
    "image_from_batch": ("ImageFromBatch", {"image": "image", "index": "batch_index",
                                            "length": "length"}, ("image",), {}),
    "repeat_image_batch": ("RepeatImageBatch", {"image": "image", "count": "amount"}, ("image",), {}),
    "load_upscale_model": ("UpscaleModelLoader", {"name": "model_name"}, ("upscale_model",), {}),
    "upscale_with_model": ("ImageUpscaleWithModel", {"model": "upscale_model", "image": "image"},
                           ("image",), {}),
    "set_latent_noise_mask": ("SetLatentNoiseMask", {"latent": "samples", "mask": "mask"}, ("latent",), {}),
    "latent_crop": ("LatentCrop", {"latent": "samples", "width": "width", "height": "height", "x": "x",
                                   "y": "y"}, ("latent",), {}),
    "latent_from_batch": ("LatentFromBatch", {"latent": "samples", "index": "batch_index",
                                              "length": "length"}, ("latent",), {}),
    "repeat_latent_batch": ("RepeatLatentBatch", {"latent": "samples", "amount": "amount"}, ("latent",), {}),
    "latent_batch": ("LatentBatch", {"a": "samples1", "b": "samples2"}, ("latent",), {}),
    "save_latent": ("SaveLatent", {"latent": "samples", "prefix": "filename_prefix"}, (), {}),
    "load_latent": ("LoadLatent", {"name": "latent"}, ("latent",), {}),
    "split_sigmas": ("SplitSigmas", {"sigmas": "sigmas", "step": "step"}, ("high", "low"), {}),
    "flip_sigmas": ("FlipSigmas", {"sigmas": "sigmas"}, ("sigmas",), {}),
    "conditioning_combine": ("ConditioningCombine", {"a": "conditioning_1", "b": "conditioning_2"},
                             ("conditioning",), {}),
    "conditioning_concat": ("ConditioningConcat", {"to": "conditioning_to", "source": "conditioning_from"},
                            ("conditioning",), {}),
    "conditioning_average": ("ConditioningAverage", {"to": "conditioning_to", "source": "conditioning_from",
                                                     "to_weight": "conditioning_to_strength"},
                             ("conditioning",), {}),
    "conditioning_zero_out": ("ConditioningZeroOut", {"conditioning": "conditioning"}, ("conditioning",), {}),
    "set_area": ("ConditioningSetArea", {"conditioning": "conditioning", "width": "width", "height": "height",
                                         "x": "x", "y": "y", "strength": "strength"}, ("conditioning",), {}),
    "set_mask": ("ConditioningSetMask", {"conditioning": "conditioning", "mask": "mask", "strength": "strength"},
                 ("conditioning",), {"set_cond_area": "default"}),
    "load_controlnet": ("ControlNetLoader", {"name": "control_net_name"}, ("control_net",), {}),
    "apply_controlnet_advanced": ("ControlNetApplyAdvanced", {
        "positive": "positive", "negative": "negative", "control_net": "control_net", "image": "image",
        "strength": "strength", "start_percent": "start_percent", "end_percent": "end_percent"},
        ("positive", "negative"), {}),
    "inpaint_conditioning": ("InpaintModelConditioning", {
        "positive": "positive", "negative": "negative", "vae": "vae", "image": "pixels", "mask": "mask",
        "noise_mask": "noise_mask"}, ("positive", "negative", "latent"), {}),
    "canny_edges": ("Canny", {"image": "image", "low_threshold": "low_threshold",
                              "high_threshold": "high_threshold"}, ("image",), {}),
}
# Loom's defaults for inputs a workflow may leave out (ComfyUI's API needs every widget);
# a test checks them against the node schemas
DEFAULTS: dict[str, dict[str, Any]] = {
    "load_checkpoint": {"prediction": "auto"}, "load_vae": {"latent_space": "auto"},
    "load_diffusion_transformer": {"weight_dtype": "default"}, "load_dit_vae": {"latent_space": "auto"},
    "flux_guidance": {"guidance": 3.5},
    "model_sampling_flow": {"mode": "fixed", "shift": 3.0, "base_shift": 0.5, "max_shift": 1.15},
    "text_encode": {"text": ""},
    "empty_latent": {"width": 512, "height": 512, "batch": 1},
    "latent_upscale": {"scale": 2.0, "method": "bilinear"},
    "save_image": {"prefix": "loom"},
    "resize_image": {"width": 512, "height": 512, "method": "bilinear"},
    "crop_image": {"x": 0, "y": 0, "width": 256, "height": 256},
    "blend_images": {"factor": 0.5, "mode": "normal"},
    "int_value": {"value": 0}, "float_value": {"value": 0.0}, "string_value": {"value": ""},
    "seed_value": {"seed": 0}, "vae_decode": {"tile": 0}, "vae_encode": {"tile": 0},
    "sample": {"steps": 20, "cfg": 7.5, "seed": 0, "denoise": 1.0},
    "scheduler": {"name": "euler", "sigmas": "default", "spacing": "default"},
    "solid_mask": {"value": 1.0, "width": 512, "height": 512, "batch": 1},
    "composite_images": {"x": 0, "y": 0}, "image_from_batch": {"index": 0, "length": 1},
    "repeat_image_batch": {"count": 2}, "upscale_with_model": {"tile": 512, "overlap": 64},
    "load_lora": {"strength_model": 1.0, "strength_clip": 1.0}, "threshold_mask": {"level": 0.5},
    "combine_masks": {"operation": "max"}, "mask_from_alpha": {"invert": False},
    "latent_composite": {"x": 0, "y": 0, "feather": 0}, "latent_blend": {"factor": 0.5},
    "latent_crop": {"x": 0, "y": 0, "width": 512, "height": 512},
    "latent_from_batch": {"index": 0, "length": 1}, "repeat_latent_batch": {"amount": 2},
    "save_latent": {"prefix": "latents/loom", "embed_workflow": True}, "split_sigmas": {"step": 10},
    "conditioning_average": {"to_weight": 0.5},
    "set_area": {"x": 0, "y": 0, "width": 512, "height": 512, "strength": 1.0}, "set_mask": {"strength": 1.0},
    "apply_controlnet": {"strength": 1.0, "start_percent": 0.0, "end_percent": 1.0},
    "apply_controlnet_advanced": {"strength": 1.0, "start_percent": 0.0, "end_percent": 1.0},
    "inpaint_conditioning": {"noise_mask": True}, "clip_set_last_layer": {"clip_skip": 1},
    "canny_edges": {"low_threshold": 0.1, "high_threshold": 0.2, "sigma": 1.0},
    "sample_advanced": {"steps": 20, "cfg": 7.5, "seed": 0, "start_step": 0, "end_step": 10000,
                        "add_noise": True, "return_with_leftover_noise": False},
}
CONVERT: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("latent_upscale", "method"): lambda v: METHODS_TO_COMFY.get(v, v),
    ("resize_image", "method"): lambda v: METHODS_TO_COMFY.get(v, v),
    ("blend_images", "mode"): lambda v: BLEND_TO_COMFY.get(v, "normal"),
}


class _Export:
    def __init__(self, nodes: dict[str, Any]) -> None:
        self.nodes = nodes
        self.report = Report("Loom workflow → ComfyUI prompt (API format)")
        self.prompt: dict[str, Any] = {}
        self.display = {t: s.display or t for t, s in specs().items()}

    def cnode(self, nid: str) -> CNode:
        entry = self.nodes.get(nid)
        return CNode(nid, str(entry.get("type")) if isinstance(entry, dict) else "?")

    def output_slot(self, src: str, output: str) -> int | None:
        entry = self.nodes.get(src)
        if not isinstance(entry, dict):
            return None
        t = entry.get("type")
        if isinstance(t, str) and t.startswith(PLACEHOLDER_PREFIX):
            names = (entry.get("comfyui") or {}).get("outputs") or []
            if output in names:
                return names.index(output)
            return int(output[7:]) if output.startswith("output_") and output[7:].isdigit() else None
        outs = SIMPLE[t][2] if t in SIMPLE else CUSTOM[t][0] if t in CUSTOM else \
            ("latent",) if t == "sample" else ()
        return outs.index(output) if output in outs else None

    def value(self, nid: str, name: str, v: Any) -> Any:
        """A link as ``[source id, slot]``, else the value; None when the link cannot be written."""
        if not is_link(v):
            return v
        src, out = str(v["node"]), str(v["output"])
        slot = self.output_slot(src, out)
        if slot is None or self.nodes.get(src, {}).get("type") == "scheduler":
            self.report.problem(self.cnode(nid), f"input {name!r}: its source {src}.{out} has no "
                                                 "ComfyUI counterpart; left out")
            return None
        return [src, slot]

    def emit(self, nid: str, class_type: str, inputs: dict[str, Any], entry: dict[str, Any]) -> None:
        title = (entry.get("ui") or {}).get("title")
        self.prompt[nid] = {"inputs": {k: v for k, v in inputs.items() if v is not None},
                            "class_type": class_type,
                            "_meta": {"title": title if isinstance(title, str) and title
                                      else self.display.get(class_type, class_type)}}

    def mapped(self, nid: str, what: str) -> None:
        """Report a Loom node written as ComfyUI node(s) ``what``."""
        self.report.add("mapped", self.cnode(nid), f"→ {what}")

    def changed(self, nid: str, message: str) -> None:
        """Report something ComfyUI will compute differently."""
        self.report.add("changed", self.cnode(nid), message)

    def unmapped(self, nid: str, message: str) -> None:
        """Report a Loom node left out of the prompt."""
        self.report.add("unmapped", self.cnode(nid), message)

    def custom(self, nid: str, entry: dict[str, Any]) -> None:
        t = entry["type"]
        given = {**DEFAULTS.get(t, {}), **(entry.get("inputs") or {})}
        CUSTOM[t][1](self, nid, entry, given)

    def simple(self, nid: str, entry: dict[str, Any]) -> None:
        t = entry["type"]
        class_type, names, _, fixed = SIMPLE[t]
        given = {**DEFAULTS.get(t, {}), **(entry.get("inputs") or {})}
        if t in ("vae_decode", "vae_encode") and isinstance(given.get("tile"), int) and given["tile"] > 0:
            tile = given["tile"]
            class_type = "VAEDecodeTiled" if t == "vae_decode" else "VAEEncodeTiled"
            fixed = {"tile_size": tile, "overlap": tile // 4, "temporal_size": 64, "temporal_overlap": 8}
        vae = given.get("vae")
        if t == "empty_latent" and is_link(vae) and (self.nodes.get(vae["node"]) or {}).get("type") == "load_dit_vae":
            class_type = "EmptySD3LatentImage"   # 16 channels, as the SD3/Flux VAE it is made for
        inputs = dict(fixed)
        for loom_name, comfy_name in names.items():
            if loom_name in given:
                v = given[loom_name]
                conv = CONVERT.get((t, loom_name))
                if conv and not is_link(v):
                    new = conv(v)
                    if new != v:
                        self.report.add("changed", self.cnode(nid), f"{loom_name}: {v!r} → {new!r} "
                                        "(ComfyUI's nearest option)" if v == "nearest" else
                                        f"{loom_name}: {v!r} → {new!r} (ComfyUI has no such option)",
                                        input=loom_name)
                    v = new
                inputs[comfy_name] = self.value(nid, loom_name, v)
        unset = object()
        dropped = [k for k, v in (entry.get("inputs") or {}).items()
                   if k not in names and k != "tile" and DEFAULTS.get(t, {}).get(k, unset) != v]
        if t == "empty_latent" and "vae" in dropped:
            dropped.remove("vae")
            self.report.add("note", self.cnode(nid), "vae: ComfyUI's empty latents take no VAE "
                                                     "(importing links it again from the sampler's model)")
        if dropped:
            self.report.add("changed", self.cnode(nid), f"{', '.join(dropped)}: not written "
                            f"({class_type} has no such input; ComfyUI sets it by itself)")
        self.emit(nid, class_type, inputs, entry)
        self.report.add("mapped", self.cnode(nid), f"→ {class_type}")

    def sampler_names(self, nid: str, given: dict[str, Any]) -> tuple[str, str]:
        """ComfyUI's sampler_name and scheduler for the scheduler node a sampler links."""
        sched_link = given.get("scheduler")
        sched = self.nodes.get(sched_link["node"]) if is_link(sched_link) else None
        if not (isinstance(sched, dict) and sched.get("type") == "scheduler"):
            self.report.problem(self.cnode(nid), "its scheduler input is not a scheduler node; "
                                                 "euler / normal written")
            sched = {"inputs": {}}
        s = {**DEFAULTS["scheduler"], **(sched.get("inputs") or {})}
        if any(is_link(v) for v in s.values()):
            self.report.problem(self.cnode(nid), "the scheduler's options come from links; "
                                                 "euler / normal written")
            s = dict(DEFAULTS["scheduler"])
        sampler_name, scheduler, notes = to_comfy(str(s["name"]), str(s["sigmas"]), str(s["spacing"]))
        for why in notes:
            self.report.add("changed", self.cnode(nid), f"scheduler: {why}")
        return sampler_name, scheduler

    def noise_masked(self, nid: str, given: dict[str, Any]) -> tuple[Any, str]:
        """The sampler's latent; a linked ``mask`` puts a SetLatentNoiseMask ``<nid>_mask`` before it."""
        latent = self.value(nid, "latent", given.get("latent"))
        mask = given.get("mask")
        if mask is None:
            return latent, ""
        mid = f"{nid}_mask"
        self.emit(mid, "SetLatentNoiseMask", {"samples": latent, "mask": self.value(nid, "mask", mask)}, {})
        return [mid, 0], f" + SetLatentNoiseMask {mid}"

    def sample(self, nid: str, entry: dict[str, Any]) -> None:
        given = {**DEFAULTS["sample"], **(entry.get("inputs") or {})}
        sampler_name, scheduler = self.sampler_names(nid, given)
        latent, masked = self.noise_masked(nid, given)
        inputs = {"seed": self.value(nid, "seed", given["seed"]), "steps": self.value(nid, "steps", given["steps"]),
                  "cfg": self.value(nid, "cfg", given["cfg"]), "sampler_name": sampler_name,
                  "scheduler": scheduler, "denoise": self.value(nid, "denoise", given["denoise"]),
                  "model": self.value(nid, "denoiser", given.get("denoiser")),
                  "positive": self.value(nid, "positive", given.get("positive")),
                  "negative": self.value(nid, "negative", given.get("negative")),
                  "latent_image": latent}
        self.emit(nid, "KSampler", inputs, entry)
        self.report.add("mapped", self.cnode(nid), f"→ KSampler ({sampler_name}, {scheduler}){masked}")

    def scheduler(self, nid: str, entry: dict[str, Any]) -> None:
        """Written into the KSampler(s) that use it; one that also feeds something else (a
        SamplerCustom, a sigmas node) becomes a KSamplerSelect as well."""
        users = [n for n in self.nodes.values() if isinstance(n, dict) and any(
            is_link(v) and v["node"] == nid for v in (n.get("inputs") or {}).values())]
        if users and all(n.get("type") == "sample" or (n.get("type") == "sample_advanced" and not
                                                       is_link((n.get("inputs") or {}).get("sigmas")))
                         for n in users):
            self.report.add("dissolved", self.cnode(nid), "written into the KSampler that uses it")
            return
        s = {**DEFAULTS["scheduler"], **(entry.get("inputs") or {})}
        if is_link(s["name"]):
            self.unmapped(nid, "its solver name comes from a link; left out")
            return
        sampler_name, _, _ = to_comfy(str(s["name"]), "default", "default")
        if (s["sigmas"], s["spacing"]) != ("default", "default"):
            self.changed(nid, f"sigmas={s['sigmas']}, spacing={s['spacing']}: KSamplerSelect names the "
                              "solver only (the linked sigmas set the levels)")
        self.emit(nid, "KSamplerSelect", {"sampler_name": sampler_name}, entry)
        self.mapped(nid, f"KSamplerSelect ({sampler_name})")

    def placeholder(self, nid: str, entry: dict[str, Any]) -> None:
        data = entry.get("comfyui") if isinstance(entry.get("comfyui"), dict) else {}
        class_type = str(data.get("class_type") or entry["type"][len(PLACEHOLDER_PREFIX):])
        inputs = {name: self.value(nid, name, v) for name, v in (entry.get("inputs") or {}).items()}
        if data.get("widgets_values") and not any(not is_link(v) for v in (entry.get("inputs") or {}).values()):
            self.report.add("changed", self.cnode(nid), "its widget values have no names in the file "
                                                        "they came from; written without them")
        self.emit(nid, class_type, inputs, entry)
        self.report.add("mapped", self.cnode(nid), f"→ {class_type} (written back as it came)")

    def run(self) -> None:
        for nid, entry in self.nodes.items():
            t = entry.get("type") if isinstance(entry, dict) else None
            if not isinstance(t, str):
                self.report.problem(self.cnode(nid), "not a node with a type; left out")
            elif t.startswith(PLACEHOLDER_PREFIX):
                self.placeholder(nid, entry)
            elif t == "sample":
                self.sample(nid, entry)
            elif t == "scheduler":
                self.scheduler(nid, entry)
            elif t in SIMPLE:
                self.simple(nid, entry)
            elif t in CUSTOM:
                self.custom(nid, entry)
            else:
                self.report.add("unmapped", self.cnode(nid), f"no ComfyUI core node does what "
                                                             f"Loom's {t} does; left out")


def export(workflow: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Loom workflow (dict, ``Workflow``, file path) → (ComfyUI API prompt, report)."""
    wf = workflow if isinstance(workflow, Workflow) else Workflow.load(workflow)
    job = _Export(wf.nodes)
    job.run()
    return job.prompt, job.report.to_dict(exported=len(job.prompt))
