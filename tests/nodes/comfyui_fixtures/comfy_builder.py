"""Builders for the ComfyUI fixtures (used by build_fixtures.py).

The UI-format files are built the way ComfyUI's canvas serializes a graph (litegraph nodes with
``inputs``/``outputs``/``widgets_values``, ``links`` as ``[id, origin, slot, target, slot,
type]`` arrays); the API-format files are written out as ComfyUI's "Export (API)" lays them
out. ``ui_sd15_txt2img.json`` and ``ui_schema_v1.json`` are written by hand and left alone.
All graphs, prompts and values are made up for these tests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
C, M, V, L, I, K = "CONDITIONING", "MODEL", "VAE", "LATENT", "IMAGE", "MASK"
SIG: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "CheckpointLoaderSimple": ([], [(M, M), ("CLIP", "CLIP"), (V, V)]),
    "CLIPTextEncode": ([("clip", "CLIP")], [(C, C)]),
    "CLIPTextEncodeSDXL": ([("clip", "CLIP")], [(C, C)]),
    "CLIPTextEncodeSDXLRefiner": ([("clip", "CLIP")], [(C, C)]),
    "EmptyLatentImage": ([], [(L, L)]), "EmptySD3LatentImage": ([], [(L, L)]),
    "KSampler": ([("model", M), ("positive", C), ("negative", C), ("latent_image", L)], [(L, L)]),
    "KSamplerAdvanced": ([("model", M), ("positive", C), ("negative", C), ("latent_image", L)], [(L, L)]),
    "VAEDecode": ([("samples", L), ("vae", V)], [(I, I)]),
    "VAEDecodeTiled": ([("samples", L), ("vae", V)], [(I, I)]),
    "VAEEncode": ([("pixels", I), ("vae", V)], [(L, L)]),
    "VAEEncodeTiled": ([("pixels", I), ("vae", V)], [(L, L)]),
    "VAEEncodeForInpaint": ([("pixels", I), ("vae", V), ("mask", K)], [(L, L)]),
    "SetLatentNoiseMask": ([("samples", L), ("mask", K)], [(L, L)]),
    "SaveImage": ([("images", I)], []), "PreviewImage": ([("images", I)], []),
    "LoadImage": ([], [(I, I), (K, K)]),
    "LoraLoader": ([("model", M), ("clip", "CLIP")], [(M, M), ("CLIP", "CLIP")]),
    "ControlNetLoader": ([], [("CONTROL_NET", "CONTROL_NET")]),
    "ControlNetApplyAdvanced": ([("positive", C), ("negative", C), ("control_net", "CONTROL_NET"),
                                 ("image", I), ("vae", V)], [("positive", C), ("negative", C)]),
    "LatentUpscaleBy": ([("samples", L)], [(L, L)]),
    "UpscaleModelLoader": ([], [("UPSCALE_MODEL", "UPSCALE_MODEL")]),
    "ImageUpscaleWithModel": ([("upscale_model", "UPSCALE_MODEL"), ("image", I)], [(I, I)]),
    "ImageScaleBy": ([("image", I)], [(I, I)]), "ImageScale": ([("image", I)], [(I, I)]),
    "ImageCrop": ([("image", I)], [(I, I)]), "ImageInvert": ([("image", I)], [(I, I)]),
    "ImageBlend": ([("image1", I), ("image2", I)], [(I, I)]),
    "ImageBatch": ([("image1", I), ("image2", I)], [(I, I)]),
    "ModelSamplingSD3": ([("model", M)], [(M, M)]),
    "ConditioningZeroOut": ([("conditioning", C)], [(C, C)]),
    "ConditioningSetTimestepRange": ([("conditioning", C)], [(C, C)]),
    "ConditioningCombine": ([("conditioning_1", C), ("conditioning_2", C)], [(C, C)]),
    "ConditioningSetArea": ([("conditioning", C)], [(C, C)]),
    "ConditioningSetMask": ([("conditioning", C), ("mask", K)], [(C, C)]),
    "SolidMask": ([], [(K, K)]), "InvertMask": ([("mask", K)], [(K, K)]),
    "TripleCLIPLoader": ([], [("CLIP", "CLIP")]), "DualCLIPLoader": ([], [("CLIP", "CLIP")]),
    "UNETLoader": ([], [(M, M)]), "VAELoader": ([], [(V, V)]), "CLIPLoader": ([], [("CLIP", "CLIP")]),
    "CLIPSetLastLayer": ([("clip", "CLIP")], [("CLIP", "CLIP")]),
    "FluxGuidance": ([("conditioning", C)], [(C, C)]),
    "KSamplerSelect": ([], [("SAMPLER", "SAMPLER")]),
    "BasicScheduler": ([("model", M)], [("SIGMAS", "SIGMAS")]),
    "RandomNoise": ([], [("NOISE", "NOISE")]),
    "BasicGuider": ([("model", M), ("conditioning", C)], [("GUIDER", "GUIDER")]),
    "SamplerCustomAdvanced": ([("noise", "NOISE"), ("guider", "GUIDER"), ("sampler", "SAMPLER"),
                               ("sigmas", "SIGMAS"), ("latent_image", L)],
                              [("output", L), ("denoised_output", L)]),
    "PrimitiveInt": ([], [("INT", "INT")]), "PrimitiveFloat": ([], [("FLOAT", "FLOAT")]),
    "PrimitiveStringMultiline": ([], [("STRING", "STRING")]),
    "PrimitiveBoolean": ([], [("BOOLEAN", "BOOLEAN")]),
    "Note": ([], []), "MarkdownNote": ([], []),
    "GrowMask": ([("mask", K)], [(K, K)]), "ThresholdMask": ([("mask", K)], [(K, K)]),
    "CropMask": ([("mask", K)], [(K, K)]), "MaskToImage": ([("mask", K)], [(I, I)]),
    "ImageToMask": ([("image", I)], [(K, K)]),
    "MaskComposite": ([("destination", K), ("source", K)], [(K, K)]),
    "ImageCompositeMasked": ([("destination", I), ("source", I), ("mask", K)], [(I, I)]),
    "ImageSharpen": ([("image", I)], [(I, I)]), "ImageBlur": ([("image", I)], [(I, I)]),
    "ImageFromBatch": ([("image", I)], [(I, I)]), "RepeatImageBatch": ([("image", I)], [(I, I)]),
    "LoraLoaderModelOnly": ([("model", M)], [(M, M)]),
    "SamplerCustom": ([("model", M), ("positive", C), ("negative", C), ("sampler", "SAMPLER"),
                       ("sigmas", "SIGMAS"), ("latent_image", L)], [("output", L), ("denoised_output", L)]),
    "KarrasScheduler": ([], [("SIGMAS", "SIGMAS")]),
    "SplitSigmas": ([("sigmas", "SIGMAS")], [("high_sigmas", "SIGMAS"), ("low_sigmas", "SIGMAS")]),
    "FlipSigmas": ([("sigmas", "SIGMAS")], [("SIGMAS", "SIGMAS")]),
}


class UI:
    """A graph serialized the way ComfyUI's canvas saves it (schema 0.4)."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.links: list[list[Any]] = []
        self.groups: list[dict[str, Any]] = []

    def node(self, type_: str, pos: tuple[float, float], widgets: list[Any] | None = None,
             size: tuple[float, float] = (315, 110), sig: tuple[list, list] | None = None,
             **extra: Any) -> int:
        ins, outs = sig or SIG[type_]
        nid = extra.pop("id", None) or (max((n["id"] for n in self.nodes), default=0) + 1)
        node = {"id": nid, "type": type_, "pos": list(pos), "size": list(size), "flags": {},
                "order": len(self.nodes), "mode": extra.pop("mode", 0),
                "inputs": [{"name": n, "type": t, "link": None} for n, t in ins],
                "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                            for i, (n, t) in enumerate(outs)],
                "properties": {"Node name for S&R": type_, **extra.pop("properties", {})},
                "widgets_values": widgets if widgets is not None else []}
        for flag in ("collapsed", "pinned"):
            if extra.pop(flag, False):
                node["flags"][flag] = True
        node.update(extra)
        self.nodes.append(node)
        return nid

    def _get(self, nid: int) -> dict[str, Any]:
        return next(n for n in self.nodes if n["id"] == nid)

    def link(self, src: int, slot: int, dst: int, name: str) -> int:
        lid = len(self.links) + 1
        out = self._get(src)["outputs"][slot]
        target = self._get(dst)
        idx = next((i for i, inp in enumerate(target["inputs"]) if inp["name"] == name), None)
        if idx is None:   # a widget converted to an input
            target["inputs"].append({"name": name, "type": out["type"], "widget": {"name": name},
                                     "link": None})
            idx = len(target["inputs"]) - 1
        target["inputs"][idx]["link"] = lid
        out["links"].append(lid)
        self.links.append([lid, src, slot, dst, idx, out["type"]])
        return lid

    def group(self, title: str, bounding: list[float], color: str = "#3f789e") -> None:
        self.groups.append({"title": title, "bounding": bounding, "color": color, "font_size": 24,
                            "flags": {}})

    def json(self) -> dict[str, Any]:
        return {"last_node_id": max((n["id"] for n in self.nodes), default=0),
                "last_link_id": len(self.links), "nodes": self.nodes, "links": self.links,
                "groups": self.groups, "config": {}, "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
                "version": 0.4}


def txt2img(g: UI, ckpt_name: str, positive: str, negative: str, sampler: list[Any],
            size: tuple[int, int] = (512, 512), prefix: str = "ComfyUI",
            wire: Any = None, empty_latent: bool = True) -> dict[str, int]:
    """checkpoint → two prompts → empty latent → KSampler → decode → save.

    ``wire(g, nodes)`` may add nodes and return other sources, as (node, slot), for "model",
    "clip", "latent", "positive" or "negative"."""
    ckpt = g.node("CheckpointLoaderSimple", (20, 300), [ckpt_name], (315, 98))
    pos = g.node("CLIPTextEncode", (400, 100), [positive], (420, 160))
    neg = g.node("CLIPTextEncode", (400, 320), [negative], (420, 160))
    lat = g.node("EmptyLatentImage", (400, 540), [size[0], size[1], 1], (315, 106)) if empty_latent else 0
    ks = g.node("KSampler", (880, 100), sampler, (315, 262))
    dec = g.node("VAEDecode", (1240, 100), [], (210, 46))
    save = g.node("SaveImage", (1480, 100), [prefix], (320, 300))
    n = {"ckpt": ckpt, "pos": pos, "neg": neg, "lat": lat, "ks": ks, "dec": dec, "save": save}
    src = {"model": (ckpt, 0), "clip": (ckpt, 1), "latent": (lat, 0), "positive": (pos, 0),
           "negative": (neg, 0)}
    src.update(wire(g, n) if wire else {})
    for (a, s), b, name in ((src["clip"], pos, "clip"), (src["clip"], neg, "clip"),
                            (src["model"], ks, "model"), (src["positive"], ks, "positive"),
                            (src["negative"], ks, "negative"), (src["latent"], ks, "latent_image"),
                            ((ks, 0), dec, "samples"), ((ckpt, 2), dec, "vae"), ((dec, 0), save, "images")):
        g.link(a, s, b, name)
    return n


def api(*nodes: tuple[str, str, dict[str, Any]], titles: dict[str, str] | None = None) -> dict[str, Any]:
    """An API-format prompt: (id, class_type, inputs) triples."""
    titles = titles or {}
    return {nid: {"inputs": inputs, "class_type": ct, "_meta": {"title": titles.get(nid, ct)}}
            for nid, ct, inputs in nodes}
