"""load_lora / merge_models on tiny random models: equal to diffusers' load_lora_weights + pipeline.

Random LoRAs are built here in each key layout (kohya, diffusers, PEFT, SDXL kohya with the
original SGM block names, LyCORIS LoHa/LoKr) for a few attention, projection, convolution and
text-encoder layers.
"""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import save_file

from loom import Executor, NodeError, Registry, Settings, node
from loom.types import Image, Latent
from loom_nodes._lib.diffusion.tiny import save_diffusers, save_sdxl, tiny_models, tiny_sdxl_models

L = lambda n, o: {"node": n, "output": o}  # noqa: E731
pytestmark = pytest.mark.usefixtures("one_thread")

UNET = ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
        "down_blocks.0.attentions.0.proj_in",                        # a 1×1 conv
        "down_blocks.0.resnets.0.conv1",                              # a 3×3 conv (LoCon)
        "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
        "mid_block.attentions.0.transformer_blocks.0.ff.net.2"]
# diffusers 0.42 with transformers 5 drops kohya text-encoder *attention* LoRAs (it renames them
# to the old to_q_lora form, which no longer loads), so the kohya reference uses MLP layers.
TE = ["encoder.layers.0.mlp.fc1", "encoder.layers.1.mlp.fc2"]
TE_ATTN = TE + ["encoder.layers.0.self_attn.q_proj", "encoder.layers.1.self_attn.out_proj"]


@node(output=True)
def keep_lora_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


@node(output=True)
def keep_lora_latent(latent: Latent) -> Latent:
    """Test output: hand the latent back."""
    return latent


def low_rank(weight: torch.Tensor, gen: torch.Generator, rank: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (down, up) for a layer: conv layers get (r, in, kh, kw) and (out, r, 1, 1)."""
    down = torch.randn(rank, *weight.shape[1:], generator=gen) * 0.3
    up = torch.randn(weight.shape[0], rank, *([1, 1] if weight.ndim == 4 else []), generator=gen) * 0.3
    return down, up


def make_lora(models, layout: str, seed: int = 0, unet_layers=UNET, te_layers=TE, alpha: float | None = 2.0):
    """A random LoRA state dict in ``layout`` for the tiny SD model ``models``."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for root, names in (("unet", unet_layers), ("text_encoder", te_layers)):
        for name in names:
            down, up = low_rank(models[root].get_submodule(name).weight, gen)
            if layout == "kohya":
                stem = "lora_unet_" + name if root == "unet" else "lora_te_text_model_" + name
                stem = stem.replace(".", "_")
                sd |= {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up}
                if alpha is not None:
                    sd[f"{stem}.alpha"] = torch.tensor(alpha)
            elif layout == "diffusers":
                full = name if root == "unet" else "text_model." + name
                sd |= {f"{root}.{full}.lora_A.weight": down, f"{root}.{full}.lora_B.weight": up}
            elif layout == "diffusers_old":
                full = name if root == "unet" else "text_model." + name
                kind = "lora" if root == "unet" else "lora_linear_layer"
                sd |= {f"{root}.{full}.{kind}.down.weight": down, f"{root}.{full}.{kind}.up.weight": up}
            elif layout == "peft":
                sd |= {f"base_model.model.{name}.lora_A.weight": down, f"base_model.model.{name}.lora_B.weight": up}
    return sd


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    save_diffusers(root / "models" / "diffusers" / "tiny", tiny_models(seed=3))
    save_diffusers(root / "models" / "diffusers" / "other", tiny_models(seed=4))
    (root / "models" / "loras").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def models():
    return tiny_models(seed=3)


@pytest.fixture(scope="module")
def ex(home):
    reg = Registry.default(Settings(home=home))
    reg.add_module(__name__)
    return Executor(reg, settings=Settings(home=home))


def save_lora(home, name, sd, config=None):
    if name.endswith("/"):  # a PEFT folder
        folder = home / "models" / "loras" / name
        folder.mkdir(parents=True, exist_ok=True)
        save_file(sd, str(folder / "adapter_model.safetensors"))
        if config is not None:
            (folder / "adapter_config.json").write_text(json.dumps(config))
        return name.rstrip("/")
    save_file(sd, str(home / "models" / "loras" / name))
    return name


def graph(loras=(), model="tiny", out="image", prompt="a red circle", negative="blurry", steps=3, cfg=7.5,
          seed=42, merge=None):
    """txt2img; ``loras`` = [(file, strength_model, strength_clip)] chained; ``merge`` (b, t)."""
    nodes = {"m": {"type": "load_diffusers_model", "inputs": {"model": model}}}
    den, te = L("m", "denoiser"), L("m", "text_encoder")
    for i, (name, sm, sc) in enumerate(loras):
        nodes[f"l{i}"] = {"type": "load_lora", "inputs": {"denoiser": den, "text_encoder": te, "lora": name,
                                                          "strength_model": sm, "strength_clip": sc}}
        den, te = L(f"l{i}", "denoiser"), L(f"l{i}", "text_encoder")
    if merge is not None:
        nodes["mb"] = {"type": "load_diffusers_model", "inputs": {"model": merge[0]}}
        nodes["mm"] = {"type": "merge_models", "inputs": {"a": den, "b": L("mb", "denoiser"), "t": merge[1]}}
        den = L("mm", "denoiser")
    nodes |= {
        "p": {"type": "text_encode", "inputs": {"encoder": te, "text": prompt}},
        "n": {"type": "text_encode", "inputs": {"encoder": te, "text": negative}},
        "e": {"type": "empty_latent", "inputs": {"width": 64, "height": 64, "vae": L("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": "euler"}},
        "s": {"type": "sample", "inputs": {"denoiser": den, "positive": L("p", "conditioning"),
                                           "negative": L("n", "conditioning"), "latent": L("e", "latent"),
                                           "scheduler": L("sc", "scheduler"), "steps": steps, "cfg": cfg,
                                           "seed": seed}},
        "d": {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}},
    }
    if out == "image":
        nodes["o"] = {"type": "keep_lora_image", "inputs": {"images": L("d", "image")}}
    else:
        nodes["o"] = {"type": "keep_lora_latent", "inputs": {"latent": L("s", "latent")}}
    return {"nodes": nodes}


def run(ex, wf):
    value = next(iter(ex.run(wf).outputs["o"].values()))
    return value.samples if isinstance(value, Latent) else value


def pipeline(folder, sdxl=False):
    pytest.importorskip("peft")  # diffusers' load_lora_weights needs it (a test extra)
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    if sdxl:
        pipe = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
    else:
        pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                       feature_extractor=None, requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference(pipe, prompt="a red circle", negative="blurry", steps=3, cfg=7.5, seed=42):
    return pipe(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=cfg, height=64,
                width=64, generator=torch.Generator().manual_seed(seed), output_type="pt").images.float()


def checksum(*modules: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for m in modules:
        for name, t in m.state_dict().items():
            h.update(name.encode() + t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def base_modules(ex):
    den = next(k for k in ex.models.keys() if "diffusers/tiny#" in k and k.endswith("|denoiser"))
    te = next(k for k in ex.models.keys() if "diffusers/tiny#" in k and k.endswith("|text_encoder"))
    return ex.models.load(den, lambda: None).unet, ex.models.load(te, lambda: None).parts[0].model


@pytest.mark.parametrize("layout,te_layers", [("kohya", TE), ("diffusers", TE_ATTN), ("peft", [])])
def test_lora_matches_diffusers_load_lora_weights(home, models, ex, layout, te_layers):
    sd = make_lora(models, layout, seed=1, te_layers=te_layers)
    name = save_lora(home, f"{layout}.safetensors" if layout != "peft" else "peft/", sd)
    ours = run(ex, graph([(name, 1.0, 1.0)]))
    pipe = pipeline(home / "models" / "diffusers" / "tiny")
    base = reference(pipe)
    if layout == "peft":  # diffusers reads a UNet adapter through its own prefix
        sd = {k.replace("base_model.model.", "unet."): v for k, v in sd.items()}
    pipe.load_lora_weights(dict(sd), adapter_name="x")
    ref = reference(pipe)
    diff = (ours - ref).abs().max().item()
    print(f"{layout}: max |loom - diffusers| = {diff:.3g}; the LoRA moved the image by "
          f"{(ref - base).abs().max().item():.3g}")
    assert (ref - base).abs().max() > 1e-2  # the LoRA does change the image
    assert diff <= 1e-5


def test_strength_matches_diffusers_adapter_weight(home, models, ex):
    sd = make_lora(models, "kohya", seed=2)
    name = save_lora(home, "strength.safetensors", sd)
    ours = run(ex, graph([(name, 0.6, 0.6)]))
    pipe = pipeline(home / "models" / "diffusers" / "tiny")
    pipe.load_lora_weights(dict(sd), adapter_name="s")
    pipe.set_adapters(["s"], adapter_weights=[0.6])
    diff = (ours - reference(pipe)).abs().max().item()
    print(f"strength 0.6: max |loom - diffusers| = {diff:.3g}")
    assert diff <= 1e-5
    assert not torch.allclose(ours, run(ex, graph([(name, 0.6, 0.0)])))  # the text-encoder part counts


def test_old_diffusers_and_peft_alpha_layouts_read_the_same(home, models, ex):
    new = save_lora(home, "new.safetensors", make_lora(models, "diffusers", seed=5))
    old = save_lora(home, "old.safetensors", make_lora(models, "diffusers_old", seed=5))
    assert torch.equal(run(ex, graph([(new, 1.0, 1.0)], out="latent")), run(ex, graph([(old, 1.0, 1.0)], out="latent")))
    sd = make_lora(models, "peft", seed=6, te_layers=[])
    plain = save_lora(home, "peft_plain/", sd)
    alpha = save_lora(home, "peft_alpha/", sd, {"r": 4, "lora_alpha": 8})  # scale 8/4 = 2
    a = run(ex, graph([(alpha, 1.0, 1.0)], out="latent"))
    b = run(ex, graph([(plain, 2.0, 1.0)], out="latent"))
    assert torch.allclose(a, b, atol=1e-5)


def test_strength_zero_is_no_lora_and_unloading_is_free(home, models, ex):
    name = save_lora(home, "free.safetensors", make_lora(models, "kohya", seed=3))
    base = run(ex, graph())
    unet, te = base_modules(ex)
    before = checksum(unet, te)
    assert torch.equal(run(ex, graph([(name, 0.0, 0.0)])), base)
    with_lora = run(ex, graph([(name, 1.0, 1.0)]))
    assert not torch.allclose(with_lora, base)
    assert checksum(unet, te) == before  # the model manager's modules were never modified
    ex.cache.clear()
    assert torch.equal(run(ex, graph()), base)  # a run without the LoRA: the original, bit for bit
    assert base_modules(ex)[0] is unet and checksum(unet, te) == before


def test_two_stacked_loras_equal_their_sum(home, models, ex):
    a, b = make_lora(models, "kohya", seed=7, alpha=None), make_lora(models, "kohya", seed=8, alpha=None)
    both = {k: torch.cat([a[k], b[k]], dim=0 if "lora_down" in k else 1) for k in a}  # rank 8
    na, nb = save_lora(home, "sa.safetensors", a), save_lora(home, "sb.safetensors", b)
    nboth = save_lora(home, "sab.safetensors", both)
    stacked = run(ex, graph([(na, 1.0, 1.0), (nb, 1.0, 1.0)]))
    summed = run(ex, graph([(nboth, 1.0, 1.0)]))
    diff = (stacked - summed).abs().max().item()
    print(f"stacked vs summed: max diff {diff:.3g}")
    assert diff <= 1e-5
    assert not torch.allclose(stacked, run(ex, graph([(na, 1.0, 1.0)])))


def test_merge_weighted_sum_ends_are_the_inputs(ex):
    a = run(ex, graph(out="latent"))
    wf = graph(merge=("other", 0.0), out="latent")  # b's denoiser with a's text encoder
    wf["nodes"]["s"]["inputs"]["denoiser"] = L("mb", "denoiser")
    b = run(ex, wf)
    assert torch.equal(run(ex, graph(merge=("other", 0.0), out="latent")), a)
    assert torch.equal(run(ex, graph(merge=("other", 1.0), out="latent")), b)
    half = run(ex, graph(merge=("other", 0.5), out="latent"))
    assert not torch.allclose(half, a) and not torch.allclose(half, b)


def test_merge_keeps_an_input_lora_and_add_difference(home, models, ex):
    name = save_lora(home, "merged.safetensors", make_lora(models, "kohya", seed=9))
    patched = run(ex, graph([(name, 1.0, 1.0)], out="latent"))
    merged = run(ex, graph([(name, 1.0, 1.0)], merge=("other", 0.0), out="latent"))
    assert torch.allclose(patched, merged, atol=1e-5), (patched - merged).abs().max()
    wf = graph(out="latent")
    wf["nodes"]["mm"] = {"type": "merge_models", "inputs": {"a": L("m", "denoiser"), "b": L("m", "denoiser"),
                                                             "c": L("m", "denoiser"), "mode": "add_difference",
                                                             "t": 1.0}}
    wf["nodes"]["s"]["inputs"]["denoiser"] = L("mm", "denoiser")
    assert torch.equal(run(ex, wf), run(ex, graph(out="latent")))  # a + (a − a) = a
    del wf["nodes"]["mm"]["inputs"]["c"]
    with pytest.raises(NodeError) as err:
        run(ex, wf)
    assert err.value.node == "mm" and "'c'" in err.value.message


def lycoris(models, kind, seed=0, alpha=2.0):
    """A LoHa or LoKr for two UNet layers (one linear, one conv), and the ΔW each means."""
    gen = torch.Generator().manual_seed(seed)
    sd, deltas = {}, {}
    for name in ("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v", "down_blocks.0.resnets.0.conv2"):
        w = models["unet"].get_submodule(name).weight
        stem = "lora_unet_" + name.replace(".", "_")
        r = 3
        rnd = lambda *s: torch.randn(*s, generator=gen) * 0.3  # noqa: E731
        if kind == "loha":
            t = {"hada_w1_a": rnd(w.shape[0], r), "hada_w1_b": rnd(r, w[0].numel()),
                 "hada_w2_a": rnd(w.shape[0], r), "hada_w2_b": rnd(r, w[0].numel())}
            dw = (t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"])
        else:  # LoKr: kron(w1 (4 × 2), w2_a @ w2_b) over (out, in·kh·kw)
            o2, i2 = w.shape[0] // 4, w.shape[1] // 2
            t = {"lokr_w1": rnd(4, 2), "lokr_w2_a": rnd(o2, r), "lokr_w2_b": rnd(r, i2 * w[0, 0].numel())}
            w2 = (t["lokr_w2_a"] @ t["lokr_w2_b"]).reshape(o2, i2, *w.shape[2:])
            dw = torch.kron(t["lokr_w1"].reshape(4, 2, *([1] * (w.ndim - 2))), w2)
        sd |= {f"{stem}.{k}": v for k, v in t.items()} | {f"{stem}.alpha": torch.tensor(alpha)}
        deltas[name] = dw.reshape(w.shape) * (alpha / r)
    return sd, deltas


@pytest.mark.parametrize("kind", ["loha", "lokr"])
def test_lycoris_matches_the_merged_weights(home, models, ex, kind):
    sd, deltas = lycoris(models, kind, seed=11)
    name = save_lora(home, f"{kind}.safetensors", sd)
    ours = run(ex, graph([(name, 1.0, 1.0)]))
    pipe = pipeline(home / "models" / "diffusers" / "tiny")
    base = reference(pipe)
    with torch.no_grad():
        for layer, dw in deltas.items():
            pipe.unet.get_submodule(layer).weight += dw
    ref = reference(pipe)
    diff = (ours - ref).abs().max().item()
    print(f"{kind}: max |loom - merged weights| = {diff:.3g}; moved by {(ref - base).abs().max().item():.3g}")
    assert (ref - base).abs().max() > 1e-2 and diff <= 1e-5


def test_sdxl_kohya_sgm_names_match_diffusers(tmp_path):
    folder = save_sdxl(tmp_path / "models" / "diffusers" / "tiny", tiny_sdxl_models(seed=7))
    m = tiny_sdxl_models(seed=7)
    gen = torch.Generator().manual_seed(3)
    layers = {  # the original SGM names kohya's SDXL LoRAs use (layers_per_block 1)
        "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q":
            ("unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"),
        "lora_unet_middle_block_1_transformer_blocks_0_attn2_to_k":
            ("unet", "mid_block.attentions.0.transformer_blocks.0.attn2.to_k"),
        "lora_unet_output_blocks_1_1_proj_out": ("unet", "up_blocks.0.attentions.1.proj_out"),
        "lora_unet_output_blocks_0_0_in_layers_2": ("unet", "up_blocks.0.resnets.0.conv1"),
        "lora_te1_text_model_encoder_layers_0_mlp_fc1": ("text_encoder", "encoder.layers.0.mlp.fc1"),
        "lora_te2_text_model_encoder_layers_1_mlp_fc2": ("text_encoder_2", "text_model.encoder.layers.1.mlp.fc2"),
    }
    sd = {}
    for stem, (root, name) in layers.items():
        down, up = low_rank(m[root].get_submodule(name).weight, gen)
        sd |= {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up, f"{stem}.alpha": torch.tensor(2.0)}
    (tmp_path / "models" / "loras").mkdir(parents=True)
    save_file(sd, str(tmp_path / "models" / "loras" / "xl.safetensors"))
    settings = Settings(home=tmp_path)
    reg = Registry.default(settings)
    reg.add_module(__name__)
    ours = run(Executor(reg, settings=settings), graph([("xl.safetensors", 1.0, 1.0)], prompt="a blue square",
                                                        negative="noise", cfg=5.0, seed=11))
    pipe = pipeline(folder, sdxl=True)
    base = reference(pipe, "a blue square", "noise", cfg=5.0, seed=11)
    pipe.load_lora_weights(dict(sd), adapter_name="xl")
    ref = reference(pipe, "a blue square", "noise", cfg=5.0, seed=11)
    diff = (ours - ref).abs().max().item()
    print(f"sdxl kohya: max |loom - diffusers| = {diff:.3g}; moved by {(ref - base).abs().max().item():.3g}")
    assert (ref - base).abs().max() > 1e-2 and diff <= 1e-5


def test_bad_loras_are_clear_errors(home, models, ex):
    name = save_lora(home, "foreign.safetensors", {
        "lora_unet_some_other_model_layer.lora_down.weight": torch.zeros(2, 8),
        "lora_unet_some_other_model_layer.lora_up.weight": torch.zeros(8, 2)})
    with pytest.raises(NodeError) as err:
        run(ex, graph([(name, 1.0, 1.0)]))
    assert err.value.node == "l0" and "input 'lora'" in err.value.message
    assert "matches" in err.value.message and "lora_unet_some_other_model_layer" in err.value.message
    stem = "lora_unet_" + UNET[0].replace(".", "_")
    name = save_lora(home, "wrong_size.safetensors", {f"{stem}.lora_down.weight": torch.zeros(4, 99),
                                                      f"{stem}.lora_up.weight": torch.zeros(32, 4)})
    with pytest.raises(NodeError) as err:
        run(ex, graph([(name, 1.0, 1.0)]))
    assert "do not fit" in err.value.message and "(32, 32)" in err.value.message


def test_without_a_text_encoder_the_unet_part_still_applies(home, models, ex):
    name = save_lora(home, "unet_only.safetensors", make_lora(models, "kohya", seed=12))
    full = graph([(name, 1.0, 0.0)], out="latent")
    wf = graph([(name, 1.0, 0.0)], out="latent")
    del wf["nodes"]["l0"]["inputs"]["text_encoder"]
    for enc in ("p", "n"):
        wf["nodes"][enc]["inputs"]["encoder"] = L("m", "text_encoder")
    assert torch.equal(run(ex, wf), run(ex, full))  # the text-encoder layers were skipped
    wf["nodes"]["p"]["inputs"]["encoder"] = L("l0", "text_encoder")
    with pytest.raises(NodeError) as err:
        run(ex, wf)
    assert err.value.node == "p" and "link the model's text encoder into load_lora" in err.value.message
