"""ComfyUI core nodes Loom has no counterpart for yet, and the UI-only nodes that dissolve.

An unmapped node becomes a placeholder (``comfyui:<type>``) that keeps its links and widget
values, so nothing is lost and the export writes it back. When Loom gains a node
(ControlNet, SD3, Flux…), move its line into the family module with a handler.
"""
from __future__ import annotations

from .model import CONTROL
from .table import NOT_YET, Spec, define, unmapped

M, C, S, L, I = "models", "conditioning", "sampling", "latent", "image"
W = tuple[str, ...]


def _u(type_: str, family: str, what: str, widgets: W = (), inputs: W = (), outputs: W = ()) -> None:
    unmapped(type_, family, f"{NOT_YET}: {what}", widgets, inputs, outputs)


# models, ControlNet, model patches
_u("UNETLoader", M, "a diffusion-model-only loader (SD3, Flux)", ("unet_name", "weight_dtype"), (), ("MODEL",))
_u("DualCLIPLoader", M, "two text encoders from separate files (SDXL, SD3, Flux)",
   ("clip_name1", "clip_name2", "type"), (), ("CLIP",))
_u("TripleCLIPLoader", M, "SD3's three text encoders", ("clip_name1", "clip_name2", "clip_name3"), (), ("CLIP",))
_u("QuadrupleCLIPLoader", M, "four text encoders", ("clip_name1", "clip_name2", "clip_name3", "clip_name4"),
   (), ("CLIP",))
_u("unCLIPCheckpointLoader", M, "unCLIP checkpoints (CLIP vision)", ("ckpt_name",), (),
   ("MODEL", "CLIP", "VAE", "CLIP_VISION"))
_u("ImageOnlyCheckpointLoader", M, "image-only (video) checkpoints", ("ckpt_name",), (),
   ("MODEL", "CLIP_VISION", "VAE"))
_u("HypernetworkLoader", M, "hypernetworks", ("hypernetwork_name", "strength"), ("model",), ("MODEL",))
_u("ControlNetLoader", M, "ControlNet", ("control_net_name",), (), ("CONTROL_NET",))
_u("DiffControlNetLoader", M, "ControlNet", ("control_net_name",), ("model",), ("CONTROL_NET",))
_u("CLIPVisionLoader", M, "CLIP vision", ("clip_name",), (), ("CLIP_VISION",))
_u("StyleModelLoader", M, "style models", ("style_model_name",), (), ("STYLE_MODEL",))
_u("GLIGENLoader", M, "GLIGEN", ("gligen_name",), (), ("GLIGEN",))
_u("ModelSamplingDiscrete", M, "model sampling patches", ("sampling", "zsnr"), ("model",), ("MODEL",))
_u("ModelSamplingSD3", M, "SD3 models (sigma shift)", ("shift",), ("model",), ("MODEL",))
_u("ModelSamplingFlux", M, "Flux models (sigma shift)", ("max_shift", "base_shift", "width", "height"),
   ("model",), ("MODEL",))
_u("ModelSamplingAuraFlow", M, "AuraFlow models (sigma shift)", ("shift",), ("model",), ("MODEL",))
_u("RescaleCFG", M, "CFG rescaling", ("multiplier",), ("model",), ("MODEL",))

# conditioning
_u("ConditioningCombine", C, "combining conditionings", (), ("conditioning_1", "conditioning_2"),
   ("CONDITIONING",))
_u("ConditioningConcat", C, "concatenating conditionings", (), ("conditioning_to", "conditioning_from"),
   ("CONDITIONING",))
_u("ConditioningAverage", C, "averaging conditionings", ("conditioning_to_strength",),
   ("conditioning_to", "conditioning_from"), ("CONDITIONING",))
_u("ConditioningSetArea", C, "area conditioning", ("width", "height", "x", "y", "strength"),
   ("conditioning",), ("CONDITIONING",))
_u("ConditioningSetAreaPercentage", C, "area conditioning", ("width", "height", "x", "y", "strength"),
   ("conditioning",), ("CONDITIONING",))
_u("ConditioningSetAreaStrength", C, "area conditioning", ("strength",), ("conditioning",), ("CONDITIONING",))
_u("ConditioningSetMask", C, "masked conditioning", ("strength", "set_cond_area"),
   ("conditioning", "mask"), ("CONDITIONING",))
_u("ConditioningZeroOut", C, "zeroed conditioning", (), ("conditioning",), ("CONDITIONING",))
_u("ConditioningSetTimestepRange", C, "timestep ranges", ("start", "end"), ("conditioning",),
   ("CONDITIONING",))
_u("ControlNetApply", C, "ControlNet", ("strength",), ("conditioning", "control_net", "image"),
   ("CONDITIONING",))
_u("ControlNetApplyAdvanced", C, "ControlNet", ("strength", "start_percent", "end_percent"),
   ("positive", "negative", "control_net", "image", "vae"), ("positive", "negative"))
_u("ControlNetApplySD3", C, "ControlNet", ("strength", "start_percent", "end_percent"),
   ("positive", "negative", "control_net", "vae", "image"), ("positive", "negative"))
_u("SetUnionControlNetType", C, "ControlNet", ("type",), ("control_net",), ("CONTROL_NET",))
_u("CLIPVisionEncode", C, "CLIP vision", (), ("clip_vision", "image"), ("CLIP_VISION_OUTPUT",))
_u("StyleModelApply", C, "style models", (), ("conditioning", "style_model", "clip_vision_output"),
   ("CONDITIONING",))
_u("unCLIPConditioning", C, "unCLIP", ("strength", "noise_augmentation"),
   ("conditioning", "clip_vision_output"), ("CONDITIONING",))
_u("GLIGENTextBoxApply", C, "GLIGEN", ("text", "width", "height", "x", "y"),
   ("conditioning_to", "clip", "gligen_textbox_model"), ("CONDITIONING",))
_u("CLIPTextEncodeSD3", C, "SD3's text encoders", ("clip_l", "clip_g", "t5xxl", "empty_padding"),
   ("clip",), ("CONDITIONING",))
_u("CLIPTextEncodeFlux", C, "Flux's text encoders", ("clip_l", "t5xxl", "guidance"), ("clip",),
   ("CONDITIONING",))
_u("FluxGuidance", C, "Flux guidance", ("guidance",), ("conditioning",), ("CONDITIONING",))
_u("InpaintModelConditioning", C, "inpainting models", ("noise_mask",),
   ("positive", "negative", "vae", "pixels", "mask"), ("positive", "negative", "latent"))

# custom sampling (Flux and SD3 workflows use these)
_u("SamplerCustom", S, "custom sampling", ("add_noise", "noise_seed", CONTROL, "cfg"),
   ("model", "positive", "negative", "sampler", "sigmas", "latent_image"), ("output", "denoised_output"))
_u("SamplerCustomAdvanced", S, "custom sampling", (), ("noise", "guider", "sampler", "sigmas", "latent_image"),
   ("output", "denoised_output"))
_u("KSamplerSelect", S, "custom sampling", ("sampler_name",), (), ("SAMPLER",))
_u("BasicScheduler", S, "custom sampling (sigmas)", ("scheduler", "steps", "denoise"), ("model",), ("SIGMAS",))
_u("KarrasScheduler", S, "custom sampling (sigmas)", ("steps", "sigma_max", "sigma_min", "rho"), (), ("SIGMAS",))
_u("ExponentialScheduler", S, "custom sampling (sigmas)", ("steps", "sigma_max", "sigma_min"), (), ("SIGMAS",))
_u("PolyexponentialScheduler", S, "custom sampling (sigmas)", ("steps", "sigma_max", "sigma_min", "rho"),
   (), ("SIGMAS",))
_u("SDTurboScheduler", S, "custom sampling (sigmas)", ("steps", "denoise"), ("model",), ("SIGMAS",))
_u("BetaSamplingScheduler", S, "custom sampling (sigmas)", ("steps", "alpha", "beta"), ("model",), ("SIGMAS",))
_u("AlignYourStepsScheduler", S, "custom sampling (sigmas)", ("model_type", "steps", "denoise"), (), ("SIGMAS",))
_u("SplitSigmas", S, "custom sampling (sigmas)", ("step",), ("sigmas",), ("high_sigmas", "low_sigmas"))
_u("RandomNoise", S, "custom sampling (noise)", ("noise_seed", CONTROL), (), ("NOISE",))
_u("DisableNoise", S, "custom sampling (noise)", (), (), ("NOISE",))
_u("BasicGuider", S, "custom sampling (guiders)", (), ("model", "conditioning"), ("GUIDER",))
_u("CFGGuider", S, "custom sampling (guiders)", ("cfg",), ("model", "positive", "negative"), ("GUIDER",))

# latents
_u("LatentUpscale", L, "resizing latents to a size (latent_upscale takes a factor)",
   ("upscale_method", "width", "height", "crop"), ("samples",), ("LATENT",))
_u("LatentComposite", L, "latent compositing", ("x", "y", "feather"), ("samples_to", "samples_from"),
   ("LATENT",))
_u("LatentCompositeMasked", L, "latent compositing", ("x", "y", "resize_source"),
   ("destination", "source", "mask"), ("LATENT",))
_u("LatentBlend", L, "latent blending", ("blend_factor",), ("samples1", "samples2"), ("LATENT",))
_u("LatentBatch", L, "latent batches", (), ("samples1", "samples2"), ("LATENT",))
_u("LatentFromBatch", L, "latent batches", ("batch_index", "length"), ("samples",), ("LATENT",))
_u("RepeatLatentBatch", L, "latent batches", ("amount",), ("samples",), ("LATENT",))
_u("LatentRotate", L, "latent transforms", ("rotation",), ("samples",), ("LATENT",))
_u("LatentFlip", L, "latent transforms", ("flip_method",), ("samples",), ("LATENT",))
_u("LatentCrop", L, "latent transforms", ("width", "height", "x", "y"), ("samples",), ("LATENT",))
_u("SaveLatent", L, "latent files", ("filename_prefix",), ("samples",), ())
_u("LoadLatent", L, "latent files", ("latent",), (), ("LATENT",))

# images
_u("ImageScaleBy", I, "resizing by a factor (resize_image takes a width and height, and the "
   "input's size is not known when converting)", ("upscale_method", "scale_by"),
   ("image",), ("IMAGE",))
_u("ImageScaleToTotalPixels", I, "resizing to a pixel count", ("upscale_method", "megapixels"),
   ("image",), ("IMAGE",))
_u("EmptyImage", I, "solid images", ("width", "height", "batch_size", "color"), (), ("IMAGE",))
_u("ImageQuantize", I, "colour quantizing", ("colors", "dither"), ("image",), ("IMAGE",))

# UI-only nodes: the converter dissolves them (they never reach ComfyUI's server either)
U = "utility"
define(Spec("Reroute", U, loom="(links)", status="dissolved", note="its link goes straight to its consumers"))
define(Spec("PrimitiveNode", U, ("value", CONTROL), loom="(values)", status="dissolved",
            note="its value goes into every widget it feeds"))
for _t in ("Note", "MarkdownNote"):
    define(Spec(_t, U, ("text",), loom="(group + meta.notes)", status="dissolved",
                note="a titled group where it was, and its text in meta.notes"))
