"""The transformer path beyond plain txt2img/img2img: text encoders equal the pipelines'
``encode_prompt``, inpainting equals StableDiffusion3InpaintPipeline, a shapes-dit-style
(MiniLM-conditioned SD3) folder runs, the shift override changes the schedule, and mismatched
schedulers, latents and encoders are clear errors naming the node and input."""
from __future__ import annotations


import pytest
import torch

from node_test_helpers import executor_for

from loom import NodeError, node
from loom.types import Image, Latent, Mask
from loom_nodes._lib.diffusion.loading import load_diffusers
from loom_nodes._lib.diffusion.tiny_dit import (save_transformer_folder, tiny_flux, tiny_minilm_dit, tiny_pixart,
                                                tiny_sd3)

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes", "loom_nodes.transformers"]
L = lambda n, o: {"node": n, "output": o}  # noqa: E731
TOL = 1e-5
SIZE = 64
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_thread")


@node(output=True)
def keep_dit_run_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


def block_mask() -> torch.Tensor:
    """(1, 1, 64, 64): 1 (repaint) on the right half, on whole 8 px latent cells."""
    m = torch.zeros(1, 1, SIZE, SIZE)
    m[..., SIZE // 2:] = 1.0
    return m


@node()
def dit_run_mask() -> Mask:
    """Test input: the right half of a 64 px image."""
    return block_mask()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    base = root / "models" / "diffusers"
    save_transformer_folder(base / "sd3", tiny_sd3(seed=11))
    save_transformer_folder(base / "sd3-no-t5", tiny_sd3(seed=12, t5=False))
    save_transformer_folder(base / "flux", tiny_flux(seed=13))
    save_transformer_folder(base / "pixart", tiny_pixart(seed=14))
    save_transformer_folder(base / "dit", tiny_minilm_dit(seed=15),
                            loom={"kind": "diffusers", "text_encoder": "minilm"})
    return root


@pytest.fixture(scope="module")
def ex(home):
    return executor_for(home, MODULES, __name__)


def folder(home, name):
    return home / "models" / "diffusers" / name


def graph(model, *, sched="flow_euler", steps=2, cfg=4.0, seed=1, denoise=1.0, mask=False, shift=None,
          size=SIZE, out="image"):
    nodes = {
        "m": {"type": "load_diffusers_model", "inputs": {"model": model}},
        "p": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": "a blue square"}},
        "n": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": ""}},
        "e": {"type": "empty_latent", "inputs": {"width": size, "height": size, "vae": L("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": sched}},
        "s": {"type": "sample", "inputs": {
            "denoiser": L("m", "denoiser"), "positive": L("p", "conditioning"), "negative": L("n", "conditioning"),
            "latent": L("e", "latent"), "scheduler": L("sc", "scheduler"), "steps": steps, "cfg": cfg, "seed": seed,
            "denoise": denoise}},
        "d": {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}},
        "o": {"type": "keep_dit_run_image", "inputs": {"images": L("d", "image")}},
    }
    if mask:
        nodes["mk"] = {"type": "dit_run_mask", "inputs": {}}
        nodes["s"]["inputs"]["mask"] = L("mk", "mask")
    if shift is not None:
        nodes["ms"] = {"type": "model_sampling_flow", "inputs": {"denoiser": L("m", "denoiser"), "shift": shift}}
        nodes["s"]["inputs"]["denoiser"] = L("ms", "denoiser")
    if out == "latent":
        nodes["o"] = {"type": "keep_dit_run_latent", "inputs": {"latent": L("s", "latent")}}
        del nodes["d"]
    return {"nodes": nodes}


# --- text encoders ---------------------------------------------------------------------
def encode(ex, home, model, prompt):
    loaded = load_diffusers(folder(home, model), CPU, torch.float32, model)
    return loaded.text_encoder.encode(prompt, ex.models, CPU)


@pytest.mark.parametrize("model", ["sd3", "sd3-no-t5"])
def test_sd3_encoder_equals_encode_prompt(home, ex, model):
    from diffusers import StableDiffusion3Pipeline

    extra = {"text_encoder_3": None, "tokenizer_3": None} if model == "sd3-no-t5" else {}
    pipe = StableDiffusion3Pipeline.from_pretrained(folder(home, model), local_files_only=True, **extra)
    prompt = "a red circle, top left"
    embeds, _, pooled, _ = pipe.encode_prompt(prompt, None, None, do_classifier_free_guidance=False)
    cond = encode(ex, home, model, prompt)
    assert cond.family == "sd3" and cond.embeds.shape == embeds.shape == (1, 77 + 256, 32)
    assert torch.allclose(cond.embeds, embeds, atol=TOL) and torch.allclose(cond.pooled, pooled, atol=TOL)


def test_flux_encoder_equals_encode_prompt(home, ex):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(folder(home, "flux"), local_files_only=True)
    embeds, pooled, _ = pipe.encode_prompt("a green triangle", None)
    cond = encode(ex, home, "flux", "a green triangle")
    assert cond.family == "flux" and cond.embeds.shape == (1, 512, 32) and cond.pooled.shape == (1, 16)
    assert torch.allclose(cond.embeds, embeds, atol=TOL) and torch.allclose(cond.pooled, pooled, atol=TOL)


def test_pixart_encoder_equals_encode_prompt_with_its_mask(home, ex):
    from diffusers import PixArtSigmaPipeline

    pipe = PixArtSigmaPipeline.from_pretrained(folder(home, "pixart"), local_files_only=True)
    prompt = "  A Big Red Circle "
    embeds, mask, _, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False, clean_caption=False)
    cond = encode(ex, home, "pixart", prompt)
    assert cond.family == "pixart" and cond.pooled is None and cond.embeds.shape == (1, 300, 32)
    assert torch.equal(cond.mask, mask) and 1 < int(mask.sum()) < 300
    assert torch.allclose(cond.embeds, embeds, atol=TOL)


@pytest.mark.parametrize("model", ["sd3", "flux", "pixart"])
def test_load_text_encoder_reads_a_transformer_folders_encoders(home, ex, model):
    from loom_nodes._lib.diffusion.loading import load_text_encoder_path

    te = load_text_encoder_path(folder(home, model), CPU, torch.float32, model)
    alone, bundled = te.encode("a red circle", ex.models, CPU), encode(ex, home, model, "a red circle")
    assert alone.family == bundled.family == model
    assert torch.equal(alone.embeds, bundled.embeds)


def test_weighted_prompt_scales_t5_tokens(home, ex):
    plain = encode(ex, home, "flux", "a red circle")
    weighted = encode(ex, home, "flux", "a (red:1.5) circle")
    assert weighted.embeds.shape == plain.embeds.shape and not torch.allclose(weighted.embeds, plain.embeds)


# --- inpainting ----------------------------------------------------------------------------
@pytest.mark.parametrize("denoise,steps", [(1.0, 3), (0.5, 2)])
def test_sd3_inpainting_matches_inpaint_pipeline(home, ex, denoise, steps):
    """Compared as latents: diffusers 0.42's SD3 inpaint pipeline decodes without the VAE's
    shift_factor (its txt2img and img2img pipelines add it), so its images are off by that shift."""
    from diffusers import StableDiffusion3InpaintPipeline

    pipe = StableDiffusion3InpaintPipeline.from_pretrained(folder(home, "sd3"), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    lat = torch.zeros(1, 16, 8, 8)  # empty_latent's
    total = int(round(steps / denoise))
    ref = pipe("a blue square", negative_prompt="", image=lat, mask_image=block_mask(), masked_image_latents=lat,
               strength=denoise, num_inference_steps=total, guidance_scale=4.0, height=SIZE, width=SIZE,
               generator=torch.Generator().manual_seed(1), output_type="latent").images
    ours = ex.run(graph("sd3", steps=steps, denoise=denoise, mask=True, out="latent")).outputs["o"]["latent"].samples
    assert torch.equal(ours[..., :4], lat[..., :4])  # the kept (left) half is the input
    assert (ours - ref).abs().max().item() <= TOL and (ours[..., 4:] - lat[..., 4:]).abs().max() > 0.1


# --- shapes-dit-style folder (SD3 architecture, MiniLM conditioning) ------------------------------
@pytest.mark.parametrize("sched,cls", [("flow_euler", "FlowMatchEulerDiscreteScheduler"),
                                       ("flow_heun", "FlowMatchHeunDiscreteScheduler")])
def test_minilm_dit_folder_loads_and_equals_a_hand_loop(home, ex, sched, cls):
    import diffusers

    loaded = load_diffusers(folder(home, "dit"), CPU, torch.float32, "dit")
    den, te = loaded.denoiser, loaded.text_encoder
    assert den.arch == "sd3" and den.flow and den.latent_channels == 4 and te.family == "minilm"
    pos, neg = te.encode("a blue square", ex.models, CPU), te.encode("", ex.models, CPU)
    assert pos.embeds.shape == (1, 32, 384) and pos.pooled.shape == (1, 384)
    scheduler = getattr(diffusers, cls).from_config(den.scheduler_config)
    scheduler.set_timesteps(3)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    for t in scheduler.timesteps:
        out = den.module(hidden_states=torch.cat([x, x]), timestep=t.expand(2),
                         encoder_hidden_states=torch.cat([neg.embeds, pos.embeds]),
                         pooled_projections=torch.cat([neg.pooled, pos.pooled]), return_dict=False)[0]
        u, c = out.chunk(2)
        x = scheduler.step(u + 3.0 * (c - u), t, x).prev_sample
    ours = ex.run(graph("dit", sched=sched, steps=3, cfg=3.0, seed=2, out="latent")).outputs["o"]["latent"]
    assert ours.family == loaded.vae.family
    assert (ours.samples - x).abs().max().item() <= TOL


@node(output=True)
def keep_dit_run_latent(latent: Latent) -> Latent:
    """Test output: hand the latent back."""
    return latent


def test_shift_override_changes_the_result_and_one_is_no_shift(home, ex):
    base = ex.run(graph("dit", seed=4, out="latent")).outputs["o"]["latent"].samples  # the folder's shift: 1.0
    same = ex.run(graph("dit", seed=4, shift=1.0, out="latent")).outputs["o"]["latent"].samples
    shifted = ex.run(graph("dit", seed=4, shift=3.0, out="latent")).outputs["o"]["latent"].samples
    assert torch.equal(base, same) and (base - shifted).abs().max() > 1e-3


# --- errors ---------------------------------------------------------------------------------
def failure(ex, wf):
    with pytest.raises(NodeError) as err:
        ex.run(wf)
    return err.value


def test_unet_scheduler_on_a_flow_model_is_an_error_naming_the_input(ex):
    err = failure(ex, graph("sd3", sched="euler"))
    assert err.node == "s" and "scheduler" in err.message and "flow_euler" in err.message


def test_flow_scheduler_on_pixart_is_an_error(ex):
    err = failure(ex, graph("pixart", sched="flow_euler"))
    assert err.node == "s" and "flow-matching" in err.message and "scheduler" in err.message


def test_flux_latent_sides_must_fit_its_2x2_packing(ex):
    err = failure(ex, graph("flux", cfg=1.0, size=72))
    assert err.node == "s" and "16 px" in err.message


def test_minilm_conditioning_on_sd3_names_the_encoder(ex):
    wf = graph("sd3")
    wf["nodes"]["mini"] = {"type": "load_diffusers_model", "inputs": {"model": "dit"}}
    wf["nodes"]["p"]["inputs"]["encoder"] = L("mini", "text_encoder")
    err = failure(ex, wf)
    assert err.node == "s" and "positive" in err.message and "384" in err.message


def test_shift_override_refuses_a_noise_prediction_model(ex):
    err = failure(ex, graph("pixart", sched="dpmpp_2m", shift=2.0))
    assert err.node == "ms" and "flow" in err.message


def test_split_run_with_sample_advanced_equals_one_run(ex):
    """Base → refiner handoff on a flow model: steps 0..2 keeping the noise, then 2..4 without new noise."""
    one = ex.run(graph("dit", steps=4, seed=8, out="latent")).outputs["o"]["latent"].samples
    wf = graph("dit", steps=4, seed=8, out="latent")
    common = {k: wf["nodes"]["s"]["inputs"][k] for k in ("denoiser", "positive", "negative", "scheduler", "steps",
                                                         "cfg", "seed")}
    wf["nodes"]["s"] = {"type": "sample_advanced", "inputs": {**common, "latent": L("e", "latent"), "end_step": 2,
                                                              "return_with_leftover_noise": True}}
    wf["nodes"]["s2"] = {"type": "sample_advanced", "inputs": {**common, "latent": L("s", "latent"), "start_step": 2,
                                                               "add_noise": False}}
    wf["nodes"]["o"]["inputs"]["latent"] = L("s2", "latent")
    two = ex.run(wf).outputs["o"]["latent"].samples
    assert (one - two).abs().max().item() <= TOL


def test_empty_latent_without_the_vae_is_refused_with_a_hint(ex):
    wf = graph("sd3")
    del wf["nodes"]["e"]["inputs"]["vae"]  # SD's 4 channels instead of SD3's 16
    err = failure(ex, wf)
    assert err.node == "s" and "16 channels" in err.message and "empty_latent" in err.message
