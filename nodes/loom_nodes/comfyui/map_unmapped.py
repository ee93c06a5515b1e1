"""ComfyUI core nodes Loom has no counterpart for yet, and the UI-only nodes that dissolve.

An unmapped node becomes a placeholder (``comfyui:<type>``) that keeps its links and widget
values, so nothing is lost and the export writes it back. When Loom gains a node, move
its line into the family module with a handler.
"""
from __future__ import annotations

from .model import CONTROL
from .table import NOT_YET, Spec, define, unmapped

M, C, S, L, I = "models", "conditioning", "sampling", "latent", "image"
W = tuple[str, ...]


def _u(type_: str, family: str, what: str, widgets: W = (), inputs: W = (), outputs: W = ()) -> None:
    unmapped(type_, family, f"{NOT_YET}: {what}", widgets, inputs, outputs)


# models, ControlNet, model patches
_u("QuadrupleCLIPLoader", M, "four text encoders", ("clip_name1", "clip_name2", "clip_name3", "clip_name4"),
   (), ("CLIP",))
_u("unCLIPCheckpointLoader", M, "unCLIP checkpoints (CLIP vision)", ("ckpt_name",), (),
   ("MODEL", "CLIP", "VAE", "CLIP_VISION"))
_u("ImageOnlyCheckpointLoader", M, "image-only (video) checkpoints", ("ckpt_name",), (),
   ("MODEL", "CLIP_VISION", "VAE"))
_u("HypernetworkLoader", M, "hypernetworks", ("hypernetwork_name", "strength"), ("model",), ("MODEL",))
_u("CLIPVisionLoader", M, "CLIP vision", ("clip_name",), (), ("CLIP_VISION",))
_u("StyleModelLoader", M, "style models", ("style_model_name",), (), ("STYLE_MODEL",))
_u("GLIGENLoader", M, "GLIGEN", ("gligen_name",), (), ("GLIGEN",))
_u("ModelSamplingDiscrete", M, "model sampling patches", ("sampling", "zsnr"), ("model",), ("MODEL",))
_u("RescaleCFG", M, "CFG rescaling", ("multiplier",), ("model",), ("MODEL",))

# conditioning
_u("ConditioningSetAreaPercentage", C, "an area as fractions of the image (set_area takes pixels, "
   "and the latent's size is not known when converting)", ("width", "height", "x", "y", "strength"),
   ("conditioning",), ("CONDITIONING",))
_u("ConditioningSetAreaStrength", C, "a strength without an area or mask (set_area and set_mask "
   "need one)", ("strength",), ("conditioning",), ("CONDITIONING",))
_u("ConditioningSetTimestepRange", C, "timestep ranges", ("start", "end"), ("conditioning",),
   ("CONDITIONING",))
_u("ControlNetApplySD3", C, "SD3/Flux ControlNets", ("strength", "start_percent", "end_percent"),
   ("positive", "negative", "control_net", "vae", "image"), ("positive", "negative"))
_u("SetUnionControlNetType", C, "union ControlNets (a control-type selector)", ("type",), ("control_net",), ("CONTROL_NET",))
_u("CLIPVisionEncode", C, "CLIP vision", (), ("clip_vision", "image"), ("CLIP_VISION_OUTPUT",))
_u("StyleModelApply", C, "style models", (), ("conditioning", "style_model", "clip_vision_output"),
   ("CONDITIONING",))
_u("unCLIPConditioning", C, "unCLIP", ("strength", "noise_augmentation"),
   ("conditioning", "clip_vision_output"), ("CONDITIONING",))
_u("GLIGENTextBoxApply", C, "GLIGEN", ("text", "width", "height", "x", "y"),
   ("conditioning_to", "clip", "gligen_textbox_model"), ("CONDITIONING",))

# custom sampling
_u("PolyexponentialScheduler", S, "custom sampling (sigmas)", ("steps", "sigma_max", "sigma_min", "rho"),
   (), ("SIGMAS",))
_u("SDTurboScheduler", S, "custom sampling (sigmas)", ("steps", "denoise"), ("model",), ("SIGMAS",))
_u("BetaSamplingScheduler", S, "custom sampling (sigmas)", ("steps", "alpha", "beta"), ("model",), ("SIGMAS",))
_u("AlignYourStepsScheduler", S, "custom sampling (sigmas)", ("model_type", "steps", "denoise"), (), ("SIGMAS",))

# latents
_u("LatentUpscale", L, "resizing latents to a size (latent_upscale takes a factor)",
   ("upscale_method", "width", "height", "crop"), ("samples",), ("LATENT",))
_u("LatentRotate", L, "latent transforms", ("rotation",), ("samples",), ("LATENT",))
_u("LatentFlip", L, "latent transforms", ("flip_method",), ("samples",), ("LATENT",))

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
