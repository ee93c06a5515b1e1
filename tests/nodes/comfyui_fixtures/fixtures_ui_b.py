"""UI-format fixture graphs, part two: custom nodes, muting, image operations, primitives,
unmapped conditioning, bad input (see build_fixtures.py)."""
from __future__ import annotations

from typing import Any

from comfy_builder import UI, txt2img

NEG = "lowres"
SUBGRAPH = "7f3e2c1a-5b4d-4e6f-9a8b-0c1d2e3f4a5b"


def custom_nodes() -> dict[str, Any]:
    g = UI()

    def wire(g: UI, n: dict[str, int]) -> dict[str, tuple[int, int]]:
        styler = g.node("ZetaPromptStyler", (20, 560), ["a lantern festival", "cinematic", 0.7], (340, 150),
                        sig=([], [("STRING", "STRING")]), properties={"cnr_id": "zeta-styles", "ver": "1.2.0"})
        g.link(styler, 0, n["pos"], "text")
        return {}

    n = txt2img(g, "v1-5-pruned-emaonly.safetensors", "(replaced by the styler)", NEG,
                [17, "fixed", 20, 7, "euler", "normal", 1.0], prefix="custom", wire=wire)
    sharpen = g.node("AcmeLatentSharpen", (880, 420), [0.5, "soft"], (315, 82),
                     sig=([("latent", "LATENT")], [("LATENT", "LATENT")]),
                     properties={"cnr_id": "acme-nodes"})
    face = g.node(SUBGRAPH, (1240, 420), [], (240, 80), sig=([("image", "IMAGE")], [("IMAGE", "IMAGE")]))
    save2 = g.node("SaveImage", (1480, 420), ["custom/fixed"])
    dec2 = g.node("VAEDecode", (1240, 560), [], (210, 46))
    for a, s, b, name in ((n["ks"], 0, sharpen, "latent"), (sharpen, 0, dec2, "samples"),
                          (n["ckpt"], 2, dec2, "vae"), (dec2, 0, face, "image"), (face, 0, save2, "images")):
        g.link(a, s, b, name)
    data = g.json()
    data["definitions"] = {"subgraphs": [{"id": SUBGRAPH, "name": "Face fixer", "nodes": [], "links": []}]}
    return data


def muted_bypassed() -> UI:
    g = UI()

    def wire(g: UI, n: dict[str, int]) -> dict[str, tuple[int, int]]:
        lora = g.node("LoraLoader", (20, 520), ["style.safetensors", 1.0, 1.0], (315, 126), mode=4)
        g.link(n["ckpt"], 0, lora, "model")
        g.link(n["ckpt"], 1, lora, "clip")
        return {"model": (lora, 0), "clip": (lora, 1)}

    n = txt2img(g, "v1-5-pruned-emaonly.safetensors", "a green apple", NEG,
                [7, "fixed", 15, 6, "ddim", "ddim_uniform", 1.0], prefix="kept", wire=wire)
    inv = g.node("ImageInvert", (1240, 420), [], (210, 26), mode=4)
    prev = g.node("PreviewImage", (1480, 420), [], (300, 300))
    muted_save = g.node("SaveImage", (1480, 760), ["muted"], mode=2)
    scale = g.node("ImageScale", (1240, 560), ["bicubic", 256, 256, "disabled"], mode=2)
    prev2 = g.node("PreviewImage", (1480, 1100), [], (300, 300))
    for a, s, b, name in ((n["dec"], 0, inv, "image"), (inv, 0, prev, "images"), (n["dec"], 0, muted_save, "images"),
                          (n["dec"], 0, scale, "image"), (scale, 0, prev2, "images")):
        g.link(a, s, b, name)
    return g


def image_ops() -> UI:
    g = UI()
    a = g.node("LoadImage", (20, 20), ["subfolder\\beach.png", "image"], (315, 314))
    b = g.node("LoadImage", (20, 380), ["sky.jpg", "image"], (315, 314))
    scale = g.node("ImageScale", (400, 20), ["lanczos", 512, 512, "center"], (315, 130))
    scale_b = g.node("ImageScale", (400, 380), ["nearest-exact", 512, 0, "disabled"], (315, 130))
    crop = g.node("ImageCrop", (760, 20), [256, 256, 64, 32], (315, 130))
    blend = g.node("ImageBlend", (760, 200), [0.4, "soft_light"], (315, 102))
    inv = g.node("ImageInvert", (1120, 200), [], (210, 26))
    batch = g.node("ImageBatch", (1120, 320), [], (210, 46))
    prev = g.node("PreviewImage", (1400, 20), [], (300, 300))
    save = g.node("SaveImage", (1400, 360), ["ops/%date:yyyy-MM-dd%/blend"])
    for x, s, y, name in ((a, 0, scale, "image"), (b, 0, scale_b, "image"), (scale, 0, crop, "image"),
                          (scale, 0, blend, "image1"), (scale_b, 0, blend, "image2"), (blend, 0, inv, "image"),
                          (inv, 0, batch, "image1"), (scale, 0, batch, "image2"), (crop, 0, prev, "images"),
                          (batch, 0, save, "images")):
        g.link(x, s, y, name)
    return g


def core_primitives() -> UI:
    g = UI()

    def wire(g: UI, n: dict[str, int]) -> dict[str, tuple[int, int]]:
        seed = g.node("PrimitiveInt", (880, 420), [77, "fixed"], (315, 82))
        cfg = g.node("PrimitiveFloat", (880, 540), [5.5], (315, 58))
        text = g.node("PrimitiveStringMultiline", (20, 560), ["a castle on a hill, (fog:1.1)"], (400, 120))
        g.node("PrimitiveBoolean", (20, 720), [True], (315, 58))
        g.link(seed, 0, n["ks"], "seed")
        g.link(cfg, 0, n["ks"], "cfg")
        g.link(text, 0, n["pos"], "text")
        return {}

    txt2img(g, "v1-5-pruned-emaonly.safetensors", "", NEG,
            [1, "fixed", 20, 8, "dpmpp_2m", "karras", 1.0], prefix="primitives", wire=wire)
    return g


def conditioning_masks() -> UI:
    g = UI()

    def wire(g: UI, n: dict[str, int]) -> dict[str, tuple[int, int]]:
        skip = g.node("CLIPSetLastLayer", (20, 520), [-2], (315, 58))
        area = g.node("ConditioningSetArea", (400, 560), [256, 512, 0, 0, 1.0], (315, 154))
        solid = g.node("SolidMask", (20, 640), [1.0, 512, 512], (315, 106))
        inv = g.node("InvertMask", (20, 780), [], (210, 26))
        cmask = g.node("ConditioningSetMask", (400, 740), [1.0, "default"], (315, 102))
        comb = g.node("ConditioningCombine", (760, 560), [], (228, 46))
        for a, s, b, name in ((n["ckpt"], 1, skip, "clip"), (n["pos"], 0, area, "conditioning"),
                              (solid, 0, inv, "mask"), (n["pos"], 0, cmask, "conditioning"),
                              (inv, 0, cmask, "mask"), (area, 0, comb, "conditioning_1"),
                              (cmask, 0, comb, "conditioning_2")):
            g.link(a, s, b, name)
        return {"clip": (skip, 0), "positive": (comb, 0)}

    txt2img(g, "anything-v5.safetensors", "a dragon and a knight", NEG,
            [5, "fixed", 20, 7, "euler", "normal", 1.0], prefix="areas", wire=wire)
    return g


def tiled_vae_clip_skip() -> UI:
    g = UI()

    def wire(g: UI, n: dict[str, int]) -> dict[str, tuple[int, int]]:
        vae = g.node("VAELoader", (20, 440), ["vae-ft-mse-840000-ema-pruned.safetensors"], (315, 58))
        skip = g.node("CLIPSetLastLayer", (20, 540), [-1], (315, 58))
        img = g.node("LoadImage", (20, 640), ["large_photo.png", "image"], (315, 314))
        enc = g.node("VAEEncodeTiled", (400, 640), [512, 64, 64, 8], (315, 150))
        for a, s, b, name in ((n["ckpt"], 1, skip, "clip"), (img, 0, enc, "pixels"), (vae, 0, enc, "vae")):
            g.link(a, s, b, name)
        return {"clip": (skip, 0), "latent": (enc, 0)}

    n = txt2img(g, "v1-5-pruned-emaonly.safetensors", "the same photo, autumn colours", NEG,
                [2, "fixed", 25, 6, "uni_pc", "beta", 0.7], prefix="tiled", wire=wire, empty_latent=False)
    for node in g.nodes:   # decode tiled, with the separate VAE
        if node["id"] == n["dec"]:
            node["type"] = "VAEDecodeTiled"
            node["properties"]["Node name for S&R"] = "VAEDecodeTiled"
            node["widgets_values"] = [1000, 64, 64, 8]
    return g


def bad_input() -> dict[str, Any]:
    g = UI()
    n = txt2img(g, "v1-5-pruned-emaonly.safetensors", "a teacup", NEG,
                [18446744073709551615, "randomize", 20], size=(500, 513), prefix="bad")
    data = g.json()
    for node in data["nodes"]:
        if node["id"] == n["lat"]:
            node["widgets_values"] = [500, 513, 100]
        if node["id"] == n["dec"]:
            node["inputs"][1]["link"] = 555          # a link id that is not in the links list
    data["nodes"].append({"id": 40, "pos": [0, 0], "size": [100, 50], "mode": 0, "widgets_values": []})
    data["nodes"].append("not a node")
    data["links"].append([60, 99, 0, n["save"], 0, "IMAGE"])   # from a node that is not there
    data["links"].append(["broken"])
    prev = {"id": 41, "type": "PreviewImage", "pos": [1480, 500], "size": [300, 300], "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": 60}], "outputs": [],
            "properties": {}, "widgets_values": []}
    data["nodes"].append(prev)
    data["groups"].append({"title": "no box"})
    return data
