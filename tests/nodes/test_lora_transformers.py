"""load_lora on transformer denoisers (Flux, SD3): equal to diffusers' load_lora_weights + pipeline.

Tiny random Flux and SD3 models; random LoRAs written here for a few attention / linear layers in
the diffusers layout (``transformer.<module>.lora_A/B.weight``, with a CLIP-L text-encoder layer)
and, for Flux, in the kohya layout (BFL block names, fused q/k/v, alpha), which Loom converts with
diffusers' own converter. Strength 1 and 0.5 match the pipeline with the adapter at weight 1 and
0.5; strength 0 and the graph without load_lora give the base image.
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from node_test_helpers import executor_for

from loom import NodeError, node
from loom.types import Image
from loom_nodes._lib.diffusion.tiny_dit import save_transformer_folder, tiny_flux, tiny_sd3

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes", "loom_nodes.transformers", "loom_nodes.lora"]
L = lambda n, o: {"node": n, "output": o}  # noqa: E731
TOL = 1e-5
SIZE, STEPS, SEED, GUIDANCE = 64, 2, 3, 3.5
PROMPT, NEGATIVE = "a red circle, top left", "blurry"
FLUX_LAYERS = ["transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_out.0",
               "transformer_blocks.0.attn.add_k_proj", "transformer_blocks.0.ff.net.0.proj",
               "single_transformer_blocks.0.proj_out", "single_transformer_blocks.0.attn.to_v"]
SD3_LAYERS = ["transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_out.0",
              "transformer_blocks.0.attn.add_k_proj", "transformer_blocks.0.ff.net.2"]
TE_LAYERS = ["encoder.layers.0.mlp.fc1"]
# kohya / sd-scripts Flux keys (BFL block names) and the widths of their layers in tiny_flux
KOHYA_FLUX = {"double_blocks_0_img_attn_qkv": (96, 32), "double_blocks_0_img_attn_proj": (32, 32),
              "double_blocks_0_txt_attn_proj": (32, 32), "double_blocks_0_img_mlp_0": (128, 32),
              "single_blocks_0_linear2": (32, 160)}

pytestmark = [pytest.mark.usefixtures("one_thread")]


@node(output=True)
def keep_dit_lora_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


@pytest.fixture(scope="module")
def parts():
    return {"flux": tiny_flux(seed=2), "sd3": tiny_sd3(seed=1)}


@pytest.fixture(scope="module")
def home(tmp_path_factory, parts):
    root = tmp_path_factory.mktemp("home")
    for name, p in parts.items():
        save_transformer_folder(root / "models" / "diffusers" / name, p)
    (root / "models" / "loras").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def ex(home):
    return executor_for(home, MODULES, __name__)


def diffusers_lora(parts, layers, seed, te_layers=(), rank=4):
    """Random lora_A/lora_B for ``layers`` of the transformer (and ``te_layers`` of CLIP-L)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for root, names in (("transformer", layers), ("text_encoder", te_layers)):
        for name in names:
            module = parts[root] if root == "transformer" else getattr(parts[root], "text_model", parts[root])
            w = module.get_submodule(name).weight
            # diffusers' Flux/SD3 loaders read text-encoder LoRAs in the lora_linear_layer form only
            full, down, up = ((name, "lora_A.weight", "lora_B.weight") if root == "transformer" else
                              ("text_model." + name, "lora_linear_layer.down.weight", "lora_linear_layer.up.weight"))
            sd[f"{root}.{full}.{down}"] = torch.randn(rank, w.shape[1], generator=gen) * 0.3
            sd[f"{root}.{full}.{up}"] = torch.randn(w.shape[0], rank, generator=gen) * 0.3
    return sd


def kohya_flux_lora(seed, rank=4, alpha=2.0):
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for stem, (out, inp) in KOHYA_FLUX.items():
        sd[f"lora_unet_{stem}.lora_down.weight"] = torch.randn(rank, inp, generator=gen) * 0.3
        sd[f"lora_unet_{stem}.lora_up.weight"] = torch.randn(out, rank, generator=gen) * 0.3
        sd[f"lora_unet_{stem}.alpha"] = torch.tensor(alpha)
    return sd


def graph(model, lora=None, strength=1.0):
    """Text-to-image (Flux: distilled guidance, cfg 1; SD3: cfg 5), optionally through load_lora."""
    den, te = L("m", "denoiser"), L("m", "text_encoder")
    nodes = {"m": {"type": "load_diffusers_model", "inputs": {"model": model}}}
    if lora is not None:
        nodes["l"] = {"type": "load_lora", "inputs": {"denoiser": den, "text_encoder": te, "lora": lora,
                                                      "strength_model": strength, "strength_clip": strength}}
        den, te = L("l", "denoiser"), L("l", "text_encoder")
    pos = L("p", "conditioning")
    nodes |= {
        "p": {"type": "text_encode", "inputs": {"encoder": te, "text": PROMPT}},
        "n": {"type": "text_encode", "inputs": {"encoder": te, "text": NEGATIVE}},
        "sc": {"type": "scheduler", "inputs": {"name": "flow_euler"}},
        "e": {"type": "empty_latent", "inputs": {"width": SIZE, "height": SIZE, "vae": L("m", "vae")}},
        "d": {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}},
        "o": {"type": "keep_dit_lora_image", "inputs": {"images": L("d", "image")}},
    }
    if model == "flux":
        nodes["g"] = {"type": "flux_guidance", "inputs": {"conditioning": pos, "guidance": GUIDANCE}}
        pos = L("g", "conditioning")
    nodes["s"] = {"type": "sample", "inputs": {
        "denoiser": den, "positive": pos, "negative": L("n", "conditioning"), "latent": L("e", "latent"),
        "scheduler": L("sc", "scheduler"), "steps": STEPS, "cfg": 1.0 if model == "flux" else 5.0, "seed": SEED}}
    return {"nodes": nodes}


def loom_image(ex, model, lora=None, strength=1.0):
    return ex.run(graph(model, lora, strength)).outputs["o"]["image"]


def pipeline(home, model):
    pytest.importorskip("peft")  # diffusers' load_lora_weights needs it (a test extra)
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    cls = FluxPipeline if model == "flux" else StableDiffusion3Pipeline
    pipe = cls.from_pretrained(home / "models" / "diffusers" / model, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference(pipe, model):
    kw = {"guidance_scale": GUIDANCE} if model == "flux" else {"guidance_scale": 5.0, "negative_prompt": NEGATIVE}
    return pipe(PROMPT, num_inference_steps=STEPS, height=SIZE, width=SIZE,
                generator=torch.Generator().manual_seed(SEED), output_type="pt", **kw).images.float()


def close(ours, ref):
    assert ours.shape == ref.shape == (1, 3, SIZE, SIZE)
    diff = (ours - ref).abs().max().item()
    assert diff <= TOL, diff


@pytest.mark.parametrize("model,layout", [("flux", "diffusers"), ("flux", "kohya"), ("sd3", "diffusers")])
def test_transformer_lora_matches_diffusers(home, parts, ex, model, layout):
    if layout == "kohya":
        sd = kohya_flux_lora(seed=5)
    else:
        layers = FLUX_LAYERS if model == "flux" else SD3_LAYERS
        sd = diffusers_lora(parts[model], layers, seed=4, te_layers=TE_LAYERS)
    name = f"{model}-{layout}.safetensors"
    save_file(sd, str(home / "models" / "loras" / name))
    pipe = pipeline(home, model)
    base = reference(pipe, model)
    pipe.load_lora_weights(dict(sd), adapter_name="x")
    full = reference(pipe, model)
    pipe.set_adapters("x", adapter_weights=0.5)
    half = reference(pipe, model)
    assert (full - base).abs().max() > 1e-2  # the LoRA does change the image
    assert (half - full).abs().max() > 1e-3
    close(loom_image(ex, model, name, 1.0), full)
    close(loom_image(ex, model, name, 0.5), half)
    assert torch.equal(loom_image(ex, model, name, 0.0), loom_image(ex, model))
    close(loom_image(ex, model), base)  # the base model was not changed


def test_lora_for_other_model_is_a_clear_error(home, parts, ex):
    sd = diffusers_lora(parts["flux"], ["single_transformer_blocks.0.proj_out"], seed=6)
    save_file(sd, str(home / "models" / "loras" / "flux-only.safetensors"))
    with pytest.raises(NodeError) as err:
        loom_image(ex, "sd3", "flux-only.safetensors")
    assert "load_lora" in str(err.value) and "proj_out" in str(err.value)


def test_kohya_flux_lora_with_wrong_sizes_names_the_file(home, ex):
    sd = kohya_flux_lora(seed=7)
    sd["lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight"] = torch.randn(97, 4)
    save_file(sd, str(home / "models" / "loras" / "broken.safetensors"))
    with pytest.raises(NodeError) as err:
        loom_image(ex, "flux", "broken.safetensors")
    assert "broken.safetensors" in str(err.value)


def test_kohya_sd3_lora_is_refused_by_name(home, ex):
    sd = {"lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight": torch.randn(4, 32),
          "lora_unet_joint_blocks_0_x_block_attn_qkv.lora_up.weight": torch.randn(96, 4)}
    save_file(sd, str(home / "models" / "loras" / "sd3-kohya.safetensors"))
    with pytest.raises(NodeError) as err:
        loom_image(ex, "sd3", "sd3-kohya.safetensors")
    assert "kohya SD3" in str(err.value) and "sd3-kohya.safetensors" in str(err.value)


def test_fp8_stored_transformer_is_refused(home, parts, ex):
    """LoRA patches compute in the layer's weight dtype; fp8 storage is refused with a clear message."""
    import threading

    from loom import Context, UserInputError
    from loom_nodes._lib.diffusion.transformer import TransformerDenoiser
    from loom_nodes._lib.diffusion.transformer_loading import scheduler_config_for

    module = tiny_flux(seed=2)["transformer"]
    module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    den = TransformerDenoiser(module, scheduler_config_for("flux"), "flux", "flux-fp8")
    ctx = Context(node_id="l", node_type="load_lora", run_id="r", settings=ex.settings, device=ex.device,
                  dtype=ex.dtype, models=ex.models, interrupt_event=threading.Event(), workflow={}, run_info={})
    save_file(kohya_flux_lora(seed=8), str(home / "models" / "loras" / "fp8.safetensors"))
    with pytest.raises(UserInputError, match="fp8") as err:
        ex.registry["load_lora"].fn(ctx, den, home / "models" / "loras" / "fp8.safetensors")
    assert err.value.input == "denoiser"
