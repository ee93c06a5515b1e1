"""UI-format fixture graphs, part one (see build_fixtures.py)."""
from __future__ import annotations

from comfy_builder import UI, txt2img

NEG = "blurry, jpeg artifacts"


def sdxl_base_refiner() -> UI:
    g = UI()
    base = g.node("CheckpointLoaderSimple", (20, 120), ["sd_xl_base_1.0.safetensors"], title="Base model")
    ref = g.node("CheckpointLoaderSimple", (20, 620), ["sd_xl_refiner_1.0.safetensors"], title="Refiner model")
    text = "a glass teapot on a wooden table, studio photo"
    bpos = g.node("CLIPTextEncodeSDXL", (400, 40), [4096, 4096, 0, 0, 4096, 4096, text, text], (400, 280))
    bneg = g.node("CLIPTextEncodeSDXL", (400, 360), [4096, 4096, 0, 0, 4096, 4096, NEG, "blurry"], (400, 280))
    rpos = g.node("CLIPTextEncodeSDXLRefiner", (400, 680), [6, 1024, 1024, text], (400, 200))
    rneg = g.node("CLIPTextEncodeSDXLRefiner", (400, 920), [2.5, 1024, 1024, NEG], (400, 200))
    lat = g.node("EmptyLatentImage", (880, 40), [1024, 1024, 1])
    k1 = g.node("KSamplerAdvanced", (880, 220),
                ["enable", 721, "fixed", 25, 7.5, "euler", "normal", 0, 20, "enable"], (315, 334))
    k2 = g.node("KSamplerAdvanced", (1240, 220),
                ["disable", 0, "fixed", 25, 7.5, "euler", "normal", 20, 10000, "disable"], (315, 334))
    dec = g.node("VAEDecode", (1600, 220), [], (210, 46))
    save = g.node("SaveImage", (1840, 220), ["sdxl/teapot"], (400, 420))
    for a, s, b, n in ((base, 1, bpos, "clip"), (base, 1, bneg, "clip"), (ref, 1, rpos, "clip"),
                       (ref, 1, rneg, "clip"), (base, 0, k1, "model"), (bpos, 0, k1, "positive"),
                       (bneg, 0, k1, "negative"), (lat, 0, k1, "latent_image"), (ref, 0, k2, "model"),
                       (rpos, 0, k2, "positive"), (rneg, 0, k2, "negative"), (k1, 0, k2, "latent_image"),
                       (k2, 0, dec, "samples"), (ref, 2, dec, "vae"), (dec, 0, save, "images")):
        g.link(a, s, b, n)
    g.group("Base", [0, 0, 1220, 600])
    g.group("Refiner", [0, 600, 1220, 560], "#a1309b")
    return g


def img2img() -> UI:
    g = UI()

    def wire(g: UI, n: dict[str, int]) -> dict[str, tuple[int, int]]:
        img = g.node("LoadImage", (20, 520), ["cottage.png", "image"], (315, 314))
        enc = g.node("VAEEncode", (400, 760), [], (210, 46))
        g.link(img, 0, enc, "pixels")
        g.link(n["ckpt"], 2, enc, "vae")
        return {"latent": (enc, 0)}

    txt2img(g, "dreamshaper_8.safetensors", "a cottage in a spring meadow, watercolour", NEG,
            [1024, "fixed", 20, 7, "euler_ancestral", "normal", 0.55], prefix="img2img",
            wire=wire, empty_latent=False)
    return g


def inpaint() -> UI:
    g = UI()
    ckpt = g.node("CheckpointLoaderSimple", (20, 120), ["sd-v1-5-inpainting.ckpt"])
    pos = g.node("CLIPTextEncode", (400, 40), ["a red knitted scarf"], (400, 160))
    neg = g.node("CLIPTextEncode", (400, 240), [NEG], (400, 160))
    img = g.node("LoadImage", (20, 420), ["portrait_masked.png [input]", "image"], (315, 314))
    enc = g.node("VAEEncodeForInpaint", (400, 460), [6], (315, 98))
    ks = g.node("KSampler", (880, 40), [5, "randomize", 30, 8, "dpmpp_2m", "karras", 1.0], (315, 262))
    dec = g.node("VAEDecode", (1240, 40), [], (210, 46))
    save = g.node("SaveImage", (1480, 40), ["inpaint"])
    for a, s, b, name in ((ckpt, 1, pos, "clip"), (ckpt, 1, neg, "clip"), (img, 0, enc, "pixels"),
                          (ckpt, 2, enc, "vae"), (img, 1, enc, "mask"), (ckpt, 0, ks, "model"),
                          (pos, 0, ks, "positive"), (neg, 0, ks, "negative"), (enc, 0, ks, "latent_image"),
                          (ks, 0, dec, "samples"), (ckpt, 2, dec, "vae"), (dec, 0, save, "images")):
        g.link(a, s, b, name)
    return g


def inpaint_noise_mask() -> UI:
    g = UI()
    ckpt = g.node("CheckpointLoaderSimple", (20, 120), ["realisticVision_v51.safetensors"])
    pos = g.node("CLIPTextEncode", (400, 40), ["a bouquet of tulips"], (400, 160))
    neg = g.node("CLIPTextEncode", (400, 240), [NEG], (400, 160))
    img = g.node("LoadImage", (20, 420), ["vase.png", "image"], (315, 314))
    mask = g.node("LoadImageMask", (20, 760), ["vase_mask.png", "alpha", "image"], (315, 318),
                  sig=([], [("MASK", "MASK")]))
    enc = g.node("VAEEncode", (400, 460), [], (210, 46))
    setm = g.node("SetLatentNoiseMask", (400, 560), [], (264, 46))
    up = g.node("LatentUpscaleBy", (640, 560), ["bislerp", 1.25], (315, 82))
    ks = g.node("KSampler", (880, 40), [11, "fixed", 24, 6, "heun", "exponential", 0.8], (315, 262))
    dec = g.node("VAEDecode", (1240, 40), [], (210, 46))
    prev = g.node("PreviewImage", (1480, 40), [], (300, 300))
    for a, s, b, name in ((ckpt, 1, pos, "clip"), (ckpt, 1, neg, "clip"), (img, 0, enc, "pixels"),
                          (ckpt, 2, enc, "vae"), (enc, 0, setm, "samples"), (mask, 0, setm, "mask"),
                          (setm, 0, up, "samples"), (ckpt, 0, ks, "model"), (pos, 0, ks, "positive"),
                          (neg, 0, ks, "negative"), (up, 0, ks, "latent_image"), (ks, 0, dec, "samples"),
                          (ckpt, 2, dec, "vae"), (dec, 0, prev, "images")):
        g.link(a, s, b, name)
    return g


def lora_stack() -> UI:
    g = UI()

    def wire(g: UI, n: dict[str, int]) -> dict[str, tuple[int, int]]:
        l1 = g.node("LoraLoader", (20, 520), ["detail_tweaker.safetensors", 0.8, 0.8], (315, 126))
        l2 = g.node("LoraLoader", (20, 700), ["film_grain.safetensors", 0.5, 1.0], (315, 126))
        for a, s, b, name in ((n["ckpt"], 0, l1, "model"), (n["ckpt"], 1, l1, "clip"),
                              (l1, 0, l2, "model"), (l1, 1, l2, "clip")):
            g.link(a, s, b, name)
        return {"model": (l2, 0), "clip": (l2, 1)}

    txt2img(g, "epicrealism.safetensors", "portrait of an old sailor, detailed skin", NEG,
            [99, "increment", 28, 5, "dpmpp_sde", "karras", 1.0], prefix="lora", wire=wire)
    return g


def controlnet() -> UI:
    g = UI()

    def wire(g: UI, n: dict[str, int]) -> dict[str, tuple[int, int]]:
        cnl = g.node("ControlNetLoader", (20, 560), ["control_v11p_sd15_canny.pth"], (315, 58))
        img = g.node("LoadImage", (20, 660), ["edges.png", "image"], (315, 314))
        apply = g.node("ControlNetApplyAdvanced", (640, 360), [0.9, 0.0, 0.8], (315, 186))
        for a, s, b, name in ((n["pos"], 0, apply, "positive"), (n["neg"], 0, apply, "negative"),
                              (cnl, 0, apply, "control_net"), (img, 0, apply, "image")):
            g.link(a, s, b, name)
        return {"positive": (apply, 0), "negative": (apply, 1)}

    txt2img(g, "v1-5-pruned-emaonly.safetensors", "a robot in a sunflower field", NEG,
            [3, "fixed", 20, 7, "euler", "normal", 1.0], prefix="controlnet", wire=wire)
    return g


def hires_fix() -> UI:
    g = UI()
    n = txt2img(g, "v1-5-pruned-emaonly.safetensors", "a mountain lake at sunrise", NEG,
                [8, "fixed", 20, 7, "dpmpp_2m", "karras", 1.0], prefix="hires")
    up = g.node("LatentUpscaleBy", (880, 420), ["nearest-exact", 1.5], (315, 82))
    k2 = g.node("KSampler", (1240, 420), [8, "fixed", 12, 7, "dpmpp_2m", "karras", 0.5], (315, 262))
    dec2 = g.node("VAEDecodeTiled", (1600, 420), [512, 64, 64, 8], (315, 150))
    save2 = g.node("SaveImage", (1840, 420), ["hires/final"])
    for a, s, b, name in ((n["ks"], 0, up, "samples"), (up, 0, k2, "latent_image"), (n["ckpt"], 0, k2, "model"),
                          (n["pos"], 0, k2, "positive"), (n["neg"], 0, k2, "negative"),
                          (k2, 0, dec2, "samples"), (n["ckpt"], 2, dec2, "vae"), (dec2, 0, save2, "images")):
        g.link(a, s, b, name)
    return g


def upscale_model() -> UI:
    g = UI()
    n = txt2img(g, "v1-5-pruned-emaonly.safetensors", "a tiny village, isometric", NEG,
                [21, "fixed", 20, 7, "lms", "normal", 1.0], prefix="small")
    loader = g.node("UpscaleModelLoader", (1240, 420), ["4x_ultrasharp.pth"], (315, 58))
    up = g.node("ImageUpscaleWithModel", (1600, 420), [], (241, 46))
    down = g.node("ImageScaleBy", (1840, 420), ["lanczos", 0.5], (315, 82))
    save = g.node("SaveImage", (2200, 420), ["upscaled"])
    for a, s, b, name in ((loader, 0, up, "upscale_model"), (n["dec"], 0, up, "image"),
                          (up, 0, down, "image"), (down, 0, save, "images")):
        g.link(a, s, b, name)
    return g


def sd3() -> UI:
    g = UI()
    ckpt = g.node("CheckpointLoaderSimple", (20, 120), ["sd3_medium_incl_clips.safetensors"])
    msd3 = g.node("ModelSamplingSD3", (400, 20), [3.0], (315, 58))
    pos = g.node("CLIPTextEncode", (400, 120), ["a paper boat on a puddle, macro"], (400, 160))
    neg = g.node("CLIPTextEncode", (400, 320), ["cartoon"], (400, 160))
    zero = g.node("ConditioningZeroOut", (860, 520), [], (317, 26))
    r1 = g.node("ConditioningSetTimestepRange", (860, 320), [0, 0.1], (317, 82))
    r2 = g.node("ConditioningSetTimestepRange", (860, 420), [0.1, 1], (317, 82))
    comb = g.node("ConditioningCombine", (1200, 380), [], (228, 46))
    lat = g.node("EmptySD3LatentImage", (400, 540), [1024, 1024, 1])
    ks = g.node("KSampler", (1240, 20), [0, "randomize", 28, 4.5, "dpmpp_2m", "sgm_uniform", 1.0], (315, 262))
    dec = g.node("VAEDecode", (1600, 20), [], (210, 46))
    save = g.node("SaveImage", (1840, 20), ["sd3"])
    for a, s, b, name in ((ckpt, 0, msd3, "model"), (ckpt, 1, pos, "clip"), (ckpt, 1, neg, "clip"),
                          (neg, 0, r1, "conditioning"), (neg, 0, zero, "conditioning"),
                          (zero, 0, r2, "conditioning"), (r1, 0, comb, "conditioning_1"),
                          (r2, 0, comb, "conditioning_2"), (msd3, 0, ks, "model"), (pos, 0, ks, "positive"),
                          (comb, 0, ks, "negative"), (lat, 0, ks, "latent_image"), (ks, 0, dec, "samples"),
                          (ckpt, 2, dec, "vae"), (dec, 0, save, "images")):
        g.link(a, s, b, name)
    return g


def flux() -> UI:
    g = UI()
    unet = g.node("UNETLoader", (20, 20), ["flux1-dev.safetensors", "default"])
    clip = g.node("DualCLIPLoader", (20, 160), ["t5xxl_fp16.safetensors", "clip_l.safetensors", "flux"])
    vae = g.node("VAELoader", (20, 320), ["ae.safetensors"])
    enc = g.node("CLIPTextEncode", (400, 160), ["a neon sign that says 'open late'"], (400, 160))
    guid = g.node("FluxGuidance", (860, 160), [3.5], (317, 58))
    lat = g.node("EmptySD3LatentImage", (400, 400), [1024, 768, 1])
    sel = g.node("KSamplerSelect", (860, 280), ["euler"], (315, 58))
    sched = g.node("BasicScheduler", (860, 380), ["simple", 20, 1.0], (315, 106))
    noise = g.node("RandomNoise", (860, 520), [1234, "randomize"], (315, 82))
    guider = g.node("BasicGuider", (1200, 160), [], (222, 46))
    samp = g.node("SamplerCustomAdvanced", (1200, 280), [], (272, 326))
    dec = g.node("VAEDecode", (1540, 160), [], (210, 46))
    save = g.node("SaveImage", (1780, 160), ["flux"])
    for a, s, b, name in ((clip, 0, enc, "clip"), (enc, 0, guid, "conditioning"), (unet, 0, guider, "model"),
                          (guid, 0, guider, "conditioning"), (unet, 0, sched, "model"), (noise, 0, samp, "noise"),
                          (guider, 0, samp, "guider"), (sel, 0, samp, "sampler"), (sched, 0, samp, "sigmas"),
                          (lat, 0, samp, "latent_image"), (samp, 0, dec, "samples"), (vae, 0, dec, "vae"),
                          (dec, 0, save, "images")):
        g.link(a, s, b, name)
    return g


def groups_reroutes_primitives() -> UI:
    g = UI()
    ckpt = g.node("CheckpointLoaderSimple", (20, 120), ["anything-v5.safetensors"], title="Model",
                  color="#223", bgcolor="#335")
    r_clip = g.node("Reroute", (360, 200), [], (75, 26), sig=([("", "*")], [("", "CLIP")]),
                    properties={"showOutputText": False, "horizontal": False})
    r_vae1 = g.node("Reroute", (360, 420), [], (75, 26), sig=([("", "*")], [("", "VAE")]))
    r_vae2 = g.node("Reroute", (1200, 420), [], (75, 26), sig=([("", "*")], [("", "VAE")]))
    pos = g.node("CLIPTextEncode", (480, 40), ["a cat astronaut, pastel colours"], (400, 160), collapsed=False)
    neg = g.node("CLIPTextEncode", (480, 240), [NEG], (400, 160), collapsed=True)
    lat = g.node("EmptyLatentImage", (480, 460), [768, 512, 2])
    seed = g.node("PrimitiveNode", (480, 620), [123456, "increment"], (315, 82), title="Seed",
                  sig=([], [("INT", "INT")]), properties={"Run widget replace on values": False})
    g.nodes[-1]["outputs"][0]["widget"] = {"name": "seed"}
    steps = g.node("PrimitiveNode", (480, 740), [30, "fixed"], (315, 82), title="Steps",
                   sig=([], [("INT", "INT")]))
    g.nodes[-1]["outputs"][0]["widget"] = {"name": "steps"}
    ks = g.node("KSampler", (960, 40), [1, "fixed", 20, 7, "euler", "simple", 1.0], (315, 262), pinned=True)
    dec = g.node("VAEDecode", (1320, 40), [], (210, 46))
    save = g.node("SaveImage", (1560, 40), ["cats"])
    g.node("Note", (960, 360), ["Thirty steps work best.\nKeep the seed incrementing."], (300, 120),
           title="Tip", color="#432", bgcolor="#653")
    g.node("MarkdownNote", (20, 420), ["## About\nMade for the Loom import tests."], (300, 140))
    for a, s, b, name in ((ckpt, 1, r_clip, ""), (r_clip, 0, pos, "clip"), (r_clip, 0, neg, "clip"),
                          (ckpt, 2, r_vae1, ""), (r_vae1, 0, r_vae2, ""), (r_vae2, 0, dec, "vae"),
                          (ckpt, 0, ks, "model"), (pos, 0, ks, "positive"), (neg, 0, ks, "negative"),
                          (lat, 0, ks, "latent_image"), (seed, 0, ks, "seed"), (steps, 0, ks, "steps"),
                          (ks, 0, dec, "samples"), (dec, 0, save, "images")):
        g.link(a, s, b, name)
    g.group("Prompts", [460, -40, 460, 500], "#88A")
    g.group("Sampling", [940, -40, 380, 360], "#b58b2a")
    return g
