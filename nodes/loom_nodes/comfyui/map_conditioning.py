"""Conditioning, ControlNet and inpainting-model conditioning (and the Canny preprocessor).

ComfyUI keeps a conditioning as a list of (tokens, options) pairs; Loom as one ``Conditioning``
whose parts carry the same options (area, mask, strength, ControlNets, inpainting channels).
Where the two evaluate an option differently the report says how.
"""
from __future__ import annotations

from typing import Any

from .context import Mapper
from .model import CNode, as_float
from .table import Spec, define, direct, is_value, ranged

FAMILY = "conditioning"
STRENGTH = ranged(0.0, 10.0, "strength")
PIXELS = ranged(8, 16384, "size")
OFFSET = ranged(0, 16384, "offset")
FRACTION = ranged(0.0, 1.0, "fraction")
WINDOW_NOTE = ("start/end percent: ComfyUI turns them into noise levels of the model's sigma "
               "range, Loom (as diffusers) into fractions of the sampler's steps")
HINT_NOTE = ("a hint of another size than the image is resized bilinearly (ComfyUI: "
             "nearest-exact with a centre crop)")


def _values(ctx: Mapper, node: CNode, names: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """ComfyUI inputs → Loom inputs (``names``: comfy → (loom, coerce or None))."""
    out: dict[str, Any] = {}
    for comfy, (loom, fix) in names.items():
        v = ctx.value(node, comfy)
        if v is ctx.ABSENT:
            continue
        out[loom] = fix(ctx, node, comfy, v) if fix is not None and is_value(v) else v
    return out


def set_mask(ctx: Mapper, node: CNode) -> None:
    """ConditioningSetMask → set_mask: "default" weighs the prompt by the mask over the whole
    latent, as Loom does; "mask bounds" makes ComfyUI run the model on the mask's box only."""
    inputs = _values(ctx, node, {"conditioning": ("conditioning", None), "mask": ("mask", None),
                                 "strength": ("strength", STRENGTH)})
    nid = ctx.add(node, "set_mask", inputs)
    ctx.output(node, 0, ctx.link(nid, "conditioning"))
    area = ctx.value(node, "set_cond_area", "default")
    if area not in ("default", ctx.ABSENT):
        ctx.changed(node, "set_cond_area", area, "default", "Loom predicts on the whole latent "
                                                            "and weighs by the mask (no crop to its bounds)")
        ctx.mapped(node, [nid], "approximate")
        return
    ctx.mapped(node, [nid], "exact")


def controlnet_loader(ctx: Mapper, node: CNode) -> None:
    """ControlNetLoader / DiffControlNetLoader → load_controlnet (the file substituted by
    ``--models``; a diff ControlNet's model input is not needed by Loom's loader)."""
    name = ctx.value(node, "control_net_name")
    if isinstance(name, str):
        name, _ = ctx.substitute(node, "control_net_name", name, folders=False)
    nid = ctx.add(node, "load_controlnet", {} if name is ctx.ABSENT else {"name": name})
    ctx.output(node, 0, ctx.link(nid, "control_net"))
    if node.type == "DiffControlNetLoader":
        ctx.mapped(node, [nid], "approximate", "the model input is not used: a regular ControlNet "
                                               "file loads the same; Loom refuses diff ControlNets")
        return
    ctx.mapped(node, [nid], "exact")


def controlnet_apply(ctx: Mapper, node: CNode) -> None:
    """ControlNetApply (one conditioning, full window) → apply_controlnet."""
    inputs = _values(ctx, node, {"conditioning": ("conditioning", None),
                                 "control_net": ("control_net", None), "image": ("image", None),
                                 "strength": ("strength", STRENGTH)})
    nid = ctx.add(node, "apply_controlnet", inputs)
    ctx.output(node, 0, ctx.link(nid, "conditioning"))
    ctx.mapped(node, [nid], "approximate", "a negative prompt without a ControlNet of its own "
                                           "borrows this one in Loom (as diffusers); ComfyUI "
                                           "runs the negative uncontrolled; " + HINT_NOTE)


def controlnet_apply_advanced(ctx: Mapper, node: CNode) -> None:
    """ControlNetApplyAdvanced → apply_controlnet_advanced (the VAE input, for SD3/Flux
    ControlNets, is not used)."""
    inputs = _values(ctx, node, {"positive": ("positive", None), "negative": ("negative", None),
                                 "control_net": ("control_net", None), "image": ("image", None),
                                 "strength": ("strength", STRENGTH),
                                 "start_percent": ("start_percent", FRACTION),
                                 "end_percent": ("end_percent", FRACTION)})
    nid = ctx.add(node, "apply_controlnet_advanced", inputs)
    ctx.output(node, 0, ctx.link(nid, "positive"))
    ctx.output(node, 1, ctx.link(nid, "negative"))
    start, end = inputs.get("start_percent", 0.0), inputs.get("end_percent", 1.0)
    full = as_float(start) == 0.0 and as_float(end) == 1.0
    ctx.mapped(node, [nid], "approximate", HINT_NOTE if full else f"{WINDOW_NOTE}; {HINT_NOTE}")


def inpaint_model_conditioning(ctx: Mapper, node: CNode) -> None:
    """InpaintModelConditioning → inpaint_conditioning (prompts, latent, noise mask)."""
    inputs = _values(ctx, node, {"vae": ("vae", None), "pixels": ("image", None), "mask": ("mask", None),
                                 "positive": ("positive", None), "negative": ("negative", None),
                                 "noise_mask": ("noise_mask", None)})
    nid = ctx.add(node, "inpaint_conditioning", inputs)
    for slot, out in enumerate(("positive", "negative", "latent")):
        ctx.output(node, slot, ctx.link(nid, out))
    ctx.mapped(node, [nid], "approximate", "the masked image is greyed where the mask is at "
                                           "least 0.5 in both; Loom's mask channel is that binary "
                                           "mask shrunk by nearest neighbour (as diffusers' "
                                           "inpainting pipeline), ComfyUI passes the soft mask and "
                                           "resizes it itself: soft edges differ")


def canny(ctx: Mapper, node: CNode) -> None:
    """Canny (comfy_extras) → canny_edges: both threshold the Sobel gradient magnitude of the
    blurred grey image (values of a [0, 1] image) with hysteresis."""
    inputs = _values(ctx, node, {"image": ("image", None), "low_threshold": ("low_threshold", FRACTION),
                                 "high_threshold": ("high_threshold", FRACTION)})
    inputs["sigma"] = 1.0
    nid = ctx.add(node, "canny_edges", inputs)
    ctx.output(node, 0, ctx.link(nid, "image"))
    ctx.mapped(node, [nid], "approximate", "the same thresholds and a blur of sigma 1; ComfyUI "
                                           "(kornia) greys with Rec. 601 weights and blurs with a "
                                           "5×5 kernel, Loom (scikit-image) with Rec. 709 weights "
                                           "and a full Gaussian: edges match up to single pixels")


_C = ("CONDITIONING",)
define(Spec("ConditioningCombine", FAMILY, inputs=("conditioning_1", "conditioning_2"), outputs=_C,
            loom="conditioning_combine", status="exact", display="Conditioning (Combine)",
            handler=direct("conditioning_combine", {"conditioning_1": "a", "conditioning_2": "b"},
                           ("conditioning",)),
            note="the sampler averages the predictions of the parts, weighted by strength, area and mask"))
define(Spec("ConditioningConcat", FAMILY, inputs=("conditioning_to", "conditioning_from"), outputs=_C,
            loom="conditioning_concat", status="exact", display="Conditioning (Concat)",
            handler=direct("conditioning_concat", {"conditioning_to": "to", "conditioning_from": "source"},
                           ("conditioning",))))
define(Spec("ConditioningAverage", FAMILY, ("conditioning_to_strength",),
            inputs=("conditioning_to", "conditioning_from"), outputs=_C, loom="conditioning_average",
            status="approximate", display="ConditioningAverage",
            handler=direct("conditioning_average", {"conditioning_to": "to", "conditioning_from": "source",
                                                    "conditioning_to_strength": "to_weight"},
                           ("conditioning",), {"conditioning_to_strength": FRACTION}, "approximate"),
            note="the same for prompts of the same token length; for other lengths ComfyUI cuts or "
                 "zero-pads conditioning_from, Loom repeats both to a common length"))
define(Spec("ConditioningZeroOut", FAMILY, inputs=("conditioning",), outputs=_C,
            loom="conditioning_zero_out", status="exact", display="ConditioningZeroOut",
            handler=direct("conditioning_zero_out", {"conditioning": "conditioning"}, ("conditioning",))))
define(Spec("ConditioningSetArea", FAMILY, ("width", "height", "x", "y", "strength"),
            inputs=("conditioning",), outputs=_C, loom="set_area", status="approximate",
            display="Conditioning (Set Area)",
            handler=direct("set_area", {"conditioning": "conditioning", "x": "x", "y": "y", "width": "width",
                                        "height": "height", "strength": "strength"}, ("conditioning",),
                           {"x": OFFSET, "y": OFFSET, "width": PIXELS, "height": PIXELS,
                            "strength": STRENGTH}, "approximate"),
            note="ComfyUI runs the model on the area's crop, Loom on the whole latent and uses the "
                 "prediction inside the area; cells no prompt covers take the negative's prediction "
                 "(ComfyUI: zero)"))
define(Spec("ConditioningSetMask", FAMILY, ("strength", "set_cond_area"), inputs=("conditioning", "mask"),
            outputs=_C, loom="set_mask", status="approximate", handler=set_mask,
            display="Conditioning (Set Mask)",
            note="set_cond_area default is exact; mask bounds (a crop to the mask's box) is not"))
define(Spec("ControlNetLoader", FAMILY, ("control_net_name",), outputs=("CONTROL_NET",),
            loom="load_controlnet", status="exact", handler=controlnet_loader,
            display="Load ControlNet Model",
            note="ControlNet folders and single files (not T2I-Adapters or Control-LoRAs)"))
define(Spec("DiffControlNetLoader", FAMILY, ("control_net_name",), inputs=("model",),
            outputs=("CONTROL_NET",), loom="load_controlnet", status="approximate",
            handler=controlnet_loader, display="Load ControlNet Model (diff)",
            note="regular ControlNet files load the same; diff ControlNets are refused"))
define(Spec("ControlNetApply", FAMILY, ("strength",), inputs=("conditioning", "control_net", "image"),
            outputs=_C, loom="apply_controlnet", status="approximate", handler=controlnet_apply,
            display="Apply ControlNet (OLD)",
            note="Loom lends the ControlNet to an uncontrolled negative (ComfyUI does not); " + HINT_NOTE))
define(Spec("ControlNetApplyAdvanced", FAMILY, ("strength", "start_percent", "end_percent"),
            inputs=("positive", "negative", "control_net", "image", "vae"), outputs=("positive", "negative"),
            loom="apply_controlnet_advanced", status="approximate", handler=controlnet_apply_advanced,
            display="Apply ControlNet", note=f"{WINDOW_NOTE}; {HINT_NOTE}"))
define(Spec("InpaintModelConditioning", FAMILY, ("noise_mask",), variants=((),),
            inputs=("positive", "negative", "vae", "pixels", "mask"), outputs=("positive", "negative", "latent"),
            loom="inpaint_conditioning", status="approximate", handler=inpaint_model_conditioning,
            display="InpaintModelConditioning",
            note="the mask channel is binary and shrunk by nearest neighbour (as diffusers); "
                 "ComfyUI passes the soft mask"))
define(Spec("Canny", FAMILY, ("low_threshold", "high_threshold"), inputs=("image",), outputs=("IMAGE",),
            loom="canny_edges", status="approximate", handler=canny, display="Canny",
            note="the same thresholds on the Sobel gradient; grey weights and blur kernels differ "
                 "(edges within a pixel)"))
