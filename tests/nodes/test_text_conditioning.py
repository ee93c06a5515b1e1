"""CLIP skip, textual-inversion embeddings and SDXL size conditioning, against diffusers' pipelines.

Tiny random-weight models (``_lib/diffusion/tiny.py``); every comparison is Loom's graph against
the diffusers pipeline on the same weights, within 1e-5.
"""
from __future__ import annotations

import os
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from node_test_helpers import executor_for
from loom import NodeError, Settings, node
from loom.types import Image
from loom_nodes._lib.diffusion import embeddings as emb
from loom_nodes._lib.diffusion.sdxl import SizeConditioning, time_ids
from loom_nodes._lib.diffusion.tiny import save_diffusers, save_sdxl, tiny_models, tiny_sdxl_models

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes", "loom_nodes.lora"]
L = lambda n, o: {"node": n, "output": o}  # noqa: E731
pytestmark = pytest.mark.usefixtures("one_thread")
NEGATIVE, STEPS, CFG, SEED = "blurry", 3, 6.0, 42


@node(output=True)
def keep_text_cond_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    save_diffusers(root / "models" / "diffusers" / "sd1", tiny_models(seed=3))
    save_sdxl(root / "models" / "diffusers" / "sdxl", tiny_sdxl_models(seed=7))
    (root / "models" / "embeddings").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def ex(home):
    return executor_for(home, MODULES, __name__)


def graph(model="sd1", prompt="a red circle", negative=NEGATIVE, clip_skip=None, size=None, lora=None,
          lora_first=False, negative_skip=False):
    """txt2img, 64 px; ``clip_skip`` through clip_set_last_layer (for the negative too only with
    ``negative_skip``: diffusers skips layers for the positive prompt alone), ``size``:
    sdxl_conditioning inputs on both sides, ``lora``: a load_lora (before or after the CLIP skip)."""
    nodes = {"m": {"type": "load_diffusers_model", "inputs": {"model": model}}}
    te = L("m", "text_encoder")

    def add_lora(te):
        nodes["l"] = {"type": "load_lora", "inputs": {"denoiser": L("m", "denoiser"), "text_encoder": te,
                                                      "lora": lora}}
        return L("l", "text_encoder")
    if lora and lora_first:
        te = add_lora(te)
    neg_te = te
    if clip_skip is not None:
        nodes["k"] = {"type": "clip_set_last_layer", "inputs": {"encoder": te, "clip_skip": clip_skip}}
        te = L("k", "text_encoder")
        neg_te = te if negative_skip else neg_te
    if lora and not lora_first:  # after the CLIP skip: one load_lora for both prompts
        te = neg_te = add_lora(te)
    nodes |= {
        "p": {"type": "text_encode", "inputs": {"encoder": te, "text": prompt}},
        "n": {"type": "text_encode", "inputs": {"encoder": neg_te, "text": negative}},
        "e": {"type": "empty_latent", "inputs": {"width": 64, "height": 64, "vae": L("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": "euler"}},
        "d": {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}},
        "o": {"type": "keep_text_cond_image", "inputs": {"images": L("d", "image")}},
    }
    pos, neg = L("p", "conditioning"), L("n", "conditioning")
    if size is not None:
        for side in ("p", "n"):
            nodes[f"z{side}"] = {"type": "sdxl_conditioning",
                                 "inputs": {"conditioning": L(side, "conditioning"), **size}}
        pos, neg = L("zp", "conditioning"), L("zn", "conditioning")
    nodes["s"] = {"type": "sample", "inputs": {
        "denoiser": L("m", "denoiser"), "positive": pos, "negative": neg, "latent": L("e", "latent"),
        "scheduler": L("sc", "scheduler"), "steps": STEPS, "cfg": CFG, "seed": SEED}}
    return {"nodes": nodes}


def run(ex, wf):
    return ex.run(wf).outputs["o"]["image"]


def pipeline(home, model="sd1"):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    folder = home / "models" / "diffusers" / model
    if model == "sdxl":
        pipe = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
    else:
        pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                       feature_extractor=None, requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference(pipe, prompt="a red circle", negative=NEGATIVE, **kwargs):
    te = pipe.text_encoder
    if kwargs.get("clip_skip") and not hasattr(pipe, "text_encoder_2") and not hasattr(te, "text_model"):
        # diffusers 0.42 reads text_encoder.text_model.final_layer_norm, a level transformers 5 removed
        # from CLIPTextModel: point it at the same layer norm (a plain attribute, not a submodule)
        te.__dict__["text_model"] = types.SimpleNamespace(final_layer_norm=te.final_layer_norm)
    return pipe(prompt, negative_prompt=negative, num_inference_steps=STEPS, guidance_scale=CFG, height=64,
                width=64, generator=torch.Generator().manual_seed(SEED), output_type="pt", **kwargs).images.float()


def close(ours, ref):
    diff = float((ours - ref).abs().max())
    print(f"max |loom - diffusers| = {diff:.3g}")
    assert ours.shape == ref.shape and diff <= 1e-5, diff
    return diff


# --- CLIP skip ---------------------------------------------------------------------------
@pytest.mark.parametrize("model,skip", [("sd1", 2), ("sd1", 3), ("sdxl", 2)])
def test_clip_skip_matches_diffusers(home, ex, model, skip):
    ours = run(ex, graph(model, clip_skip=skip))
    close(ours, reference(pipeline(home, model), clip_skip=skip - 1))
    assert not torch.allclose(ours, run(ex, graph(model)), atol=1e-4)  # it does change the image


def test_clip_skip_one_is_the_encoder_itself_and_bad_values_are_clear(home, ex):
    base = run(ex, graph())
    assert torch.equal(run(ex, graph(clip_skip=1)), base) and torch.equal(run(ex, graph(clip_skip=0)), base)
    with pytest.raises(NodeError) as err:
        run(ex, graph(clip_skip=4))  # 2 layers: 3 is the token embeddings, 4 is beyond
    assert err.value.node == "k" and "clip_skip 4" in err.value.message
    from loom_nodes.text_encoders import clip_set_last_layer
    from loom_nodes.lora import NoTextEncoder
    assert clip_set_last_layer(NoTextEncoder(), 1).__class__ is NoTextEncoder
    with pytest.raises(Exception, match="needs a CLIP text encoder"):
        clip_set_last_layer(NoTextEncoder(), 2)


def test_clip_skip_composes_with_lora_in_either_order(home, ex):
    pytest.importorskip("peft")
    base = tiny_models(seed=3)["text_encoder"]
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for name in ("encoder.layers.0.mlp.fc1", "encoder.layers.0.self_attn.q_proj"):
        w = base.get_submodule(name).weight
        sd[f"text_encoder.text_model.{name}.lora_A.weight"] = torch.randn(4, w.shape[1], generator=gen) * 0.3
        sd[f"text_encoder.text_model.{name}.lora_B.weight"] = torch.randn(w.shape[0], 4, generator=gen) * 0.3
    (home / "models" / "loras").mkdir(parents=True, exist_ok=True)
    save_file(sd, str(home / "models" / "loras" / "te.safetensors"))
    after = run(ex, graph(clip_skip=2, lora="te.safetensors", negative_skip=True))
    before = run(ex, graph(clip_skip=2, lora="te.safetensors", lora_first=True, negative_skip=True))
    assert torch.equal(after, before)
    assert not torch.allclose(after, run(ex, graph(clip_skip=2, negative_skip=True)), atol=1e-4)
    pipe = pipeline(home)
    pipe.load_lora_weights(dict(sd), adapter_name="te")  # diffusers: the LoRA on both prompts, the CLIP skip on the positive
    close(run(ex, graph(clip_skip=2, lora="te.safetensors", lora_first=True)), reference(pipe, clip_skip=1))


# --- textual inversion -------------------------------------------------------------------
def vectors(n, width, seed):
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed)) * 0.5


def test_embeddings_match_diffusers_load_textual_inversion(home, ex):
    folder = home / "models" / "embeddings"
    multi, single = vectors(3, 32, 1), vectors(1, 32, 2)
    save_file({"emb_params": multi}, str(folder / "Multi.safetensors"))
    torch.save({"string_to_param": {"*": single}, "string_to_token": {"*": 265}, "name": "single", "step": 10},
               folder / "single.pt")
    prompt = "a embedding:Multi red, (embedding:single.pt:1.0) circle embedding:Multi"
    ours = run(ex, graph(prompt=prompt))
    pipe = pipeline(home)
    pipe.load_textual_inversion(multi, token="<multi>")
    pipe.load_textual_inversion({"string_to_param": {"*": single}, "name": "single"}, token="<single>")
    close(ours, reference(pipe, "a <multi> red, <single> circle <multi>"))
    assert not torch.allclose(ours, run(ex, graph(prompt="a red, circle")), atol=1e-4)


def test_sdxl_embedding_with_clip_l_and_clip_g(home, ex):
    folder = home / "models" / "embeddings"
    l_vec, g_vec = vectors(2, 16, 3), vectors(2, 32, 4)
    save_file({"clip_l": l_vec, "clip_g": g_vec}, str(folder / "xl.safetensors"))
    ours = run(ex, graph("sdxl", prompt="a blue embedding:xl square"))
    pipe = pipeline(home, "sdxl")
    pipe.load_textual_inversion(l_vec, token="<xl>", text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(g_vec, token="<xl>", text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2)
    close(ours, reference(pipe, "a blue <xl> square"))


def test_missing_embedding_names_it_and_where_to_put_it(home, ex):
    with pytest.raises(NodeError) as err:
        run(ex, graph(prompt="a embedding:nowhere circle"))
    msg = err.value.message
    assert err.value.node == "p" and "'nowhere'" in msg and str(home / "models" / "embeddings") in msg


def test_embedding_file_is_part_of_the_cache_key_and_the_model_is_untouched(home, ex):
    folder = home / "models" / "embeddings"
    path = folder / "edit.safetensors"
    save_file({"emb_params": vectors(1, 32, 5)}, str(path))
    wf = graph(prompt="a embedding:edit circle")
    first = run(ex, wf)
    assert "p" in ex.run(wf).cached
    save_file({"emb_params": vectors(1, 32, 6)}, str(path))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    result = ex.run(wf)
    assert "p" in result.executed and not torch.allclose(result.outputs["o"]["image"], first, atol=1e-4)
    ex.cache.clear()  # the cached base text encoder was never changed: it still equals diffusers'
    close(run(ex, graph(prompt="a circle")), reference(pipeline(home), "a circle"))


def test_embedding_formats_and_references():
    p = Path("x.pt")
    t = torch.ones(2, 8)
    assert torch.equal(emb.parse({"emb_params": t}, p)["*"], t)
    assert torch.equal(emb.parse({"string_to_param": {"*": t}, "name": "x"}, p)["*"], t)
    assert torch.equal(emb.parse({"<tok>": t[0]}, p)["*"], t[:1])  # diffusers' learned_embeds
    assert set(emb.parse({"clip_l": t, "clip_g": torch.ones(2, 4)}, p)) == {"clip_l", "clip_g"}
    with pytest.raises(Exception, match="not a textual-inversion embedding"):
        emb.parse({"a": t, "b": t}, p)
    assert emb.references("embedding:a, (embedding:b.pt:1.2) embedding:a. xembedding:c Embedding:d") == ["a", "b.pt"]
    one = emb.Embedding("a", p, {"*": torch.ones(1, 8)})
    with pytest.raises(Exception, match="made for another model"):
        one.for_part(0, 1, 16)
    with pytest.raises(Exception, match="not an SDXL embedding"):
        one.for_part(0, 2, 8)


def test_embeddings_need_a_clip_encoder():
    from loom_nodes._lib.diffusion.components import MiniLMTextEncoder
    from loom_nodes.text_encoders import text_encode

    ctx = types.SimpleNamespace(models=None, device="cpu", settings=Settings())
    with pytest.raises(Exception, match="need a CLIP text encoder"):
        text_encode(ctx, MiniLMTextEncoder(None), "a embedding:foo")


# --- SDXL size conditioning --------------------------------------------------------------
def test_sdxl_size_conditioning_matches_diffusers(home, ex):
    size = {"original_width": 96, "original_height": 128, "crop_left": 16, "crop_top": 8,
            "target_width": 48, "target_height": 72}
    ours = run(ex, graph("sdxl", size=size))
    ref = reference(pipeline(home, "sdxl"), original_size=(128, 96), crops_coords_top_left=(8, 16),
                    target_size=(72, 48))
    close(ours, ref)
    assert not torch.allclose(ours, run(ex, graph("sdxl")), atol=1e-4)
    zeros = {k: 0 for k in size}  # 0 everywhere: the latent's size, uncropped (the default)
    assert torch.equal(run(ex, graph("sdxl", size=zeros)), run(ex, graph("sdxl")))


def test_time_ids_layouts_and_bad_sizes(ex):
    base = types.SimpleNamespace(addition_time_embed_dim=8, projection_class_embeddings_input_dim=8 * 6 + 32)
    refiner = types.SimpleNamespace(addition_time_embed_dim=8, projection_class_embeddings_input_dim=8 * 5 + 32)
    assert time_ids({}, 64, 48, base, 32) == [64, 48, 0, 0, 64, 48]
    size = SizeConditioning((128, 96), (8, 16), None, 2.5)
    assert time_ids({"sdxl": size}, 64, 48, base, 32) == [128, 96, 8, 16, 64, 48]
    assert time_ids({"sdxl": size}, 64, 48, refiner, 32) == [128, 96, 8, 16, 2.5]
    with pytest.raises(NodeError) as err:
        run(ex, graph("sdxl", size={"original_width": 64}))
    assert err.value.node == "zp" and "original_width" in err.value.message
