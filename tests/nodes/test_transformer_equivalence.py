"""Loom's graph equals diffusers' StableDiffusion3, Flux and PixArt-Σ pipelines on tiny random models.

load_diffusers_model → text_encode → empty_latent (or load image → vae_encode) → scheduler →
sample → vae_decode, against the pipelines (and their img2img siblings; PixArt-Σ has none in
diffusers, so a hand-written loop stands in) for the same seed, at two step counts.
Img2img gives the pipelines the latents Loom's vae_encode made (the pipelines would sample the
VAE's latent distribution with the generator; Loom takes its mean).
"""
from __future__ import annotations


import pytest
import torch

from node_test_helpers import executor_for

from loom import node
from loom.types import Image
from loom_nodes._lib.diffusion.tiny_dit import save_transformer_folder, tiny_flux, tiny_pixart, tiny_sd3

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes", "loom_nodes.transformers"]
L = lambda n, o: {"node": n, "output": o}  # noqa: E731
TOL = 1e-5
SIZE = 64
PROMPT, NEGATIVE = "a red circle, top left", "blurry"

pytestmark = pytest.mark.usefixtures("one_thread")


@node(output=True)
def keep_dit_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


def input_image() -> torch.Tensor:
    """A fixed smooth 64 px image (1, 3, H, W) in [0, 1]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    return torch.stack([x, y, (x + y) / 2]).unsqueeze(0)


@node()
def dit_input_image() -> Image:
    """Test input: a fixed smooth 64 px image."""
    return input_image()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    base = root / "models" / "diffusers"
    save_transformer_folder(base / "sd3", tiny_sd3(seed=1))
    save_transformer_folder(base / "flux", tiny_flux(seed=2))
    save_transformer_folder(base / "pixart", tiny_pixart(seed=3))
    return root


@pytest.fixture(scope="module")
def ex(home):
    return executor_for(home, MODULES, __name__)


def graph(model, steps, cfg, seed, sched, *, denoise=1.0, guidance=None):
    """The Loom workflow: text-to-image, or image-to-image when ``denoise`` < 1."""
    pos = L("p", "conditioning")
    nodes = {
        "m": {"type": "load_diffusers_model", "inputs": {"model": model}},
        "p": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": PROMPT}},
        "n": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": NEGATIVE}},
        "sc": {"type": "scheduler", "inputs": {"name": sched}},
        "d": {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}},
        "o": {"type": "keep_dit_image", "inputs": {"images": L("d", "image")}},
    }
    if guidance is not None:
        nodes["g"] = {"type": "flux_guidance", "inputs": {"conditioning": pos, "guidance": guidance}}
        pos = L("g", "conditioning")
    if denoise < 1:
        nodes["i"] = {"type": "dit_input_image", "inputs": {}}
        nodes["e"] = {"type": "vae_encode", "inputs": {"vae": L("m", "vae"), "image": L("i", "image")}}
    else:
        nodes["e"] = {"type": "empty_latent", "inputs": {"width": SIZE, "height": SIZE, "vae": L("m", "vae")}}
    nodes["s"] = {"type": "sample", "inputs": {
        "denoiser": L("m", "denoiser"), "positive": pos, "negative": L("n", "conditioning"),
        "latent": L("e", "latent"), "scheduler": L("sc", "scheduler"), "steps": steps, "cfg": cfg, "seed": seed,
        "denoise": denoise}}
    return {"nodes": nodes}


def loom_image(ex, model, steps, cfg, seed, sched, **kw):
    return ex.run(graph(model, steps, cfg, seed, sched, **kw)).outputs["o"]["image"]


def input_latents(vae):
    """What Loom's vae_encode makes of dit_input_image (the VAE's mean, shifted and scaled)."""
    z = vae.encode(input_image() * 2 - 1).latent_dist.mean
    shift = vae.config.shift_factor or 0.0
    return (z - shift) * vae.config.scaling_factor


def gen(seed):
    return torch.Generator().manual_seed(seed)


def check(ours, ref):
    assert ours.shape == ref.shape == (1, 3, SIZE, SIZE)
    diff = (ours - ref.float()).abs().max().item()
    assert diff <= TOL, diff


@pytest.mark.parametrize("steps", [2, 4])
def test_sd3_txt2img_matches_pipeline(home, ex, steps):
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(home / "models" / "diffusers" / "sd3", local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=5.0, height=SIZE,
               width=SIZE, generator=gen(7), output_type="pt").images
    check(loom_image(ex, "sd3", steps, 5.0, 7, "flow_euler"), ref)


@pytest.mark.parametrize("steps", [2, 3])
def test_sd3_img2img_matches_pipeline(home, ex, steps):
    from diffusers import StableDiffusion3Img2ImgPipeline

    pipe = StableDiffusion3Img2ImgPipeline.from_pretrained(home / "models" / "diffusers" / "sd3",
                                                           local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, negative_prompt=NEGATIVE, image=input_latents(pipe.vae), strength=0.5,
               num_inference_steps=2 * steps, guidance_scale=4.0, height=SIZE, width=SIZE, generator=gen(5),
               output_type="pt").images
    check(loom_image(ex, "sd3", steps, 4.0, 5, "flow_euler", denoise=0.5), ref)


@pytest.mark.parametrize("steps,guidance", [(2, 3.5), (4, 5.0)])
def test_flux_txt2img_matches_pipeline(home, ex, steps, guidance):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(home / "models" / "diffusers" / "flux", local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, num_inference_steps=steps, guidance_scale=guidance, height=SIZE, width=SIZE,
               generator=gen(3), output_type="pt").images
    check(loom_image(ex, "flux", steps, 1.0, 3, "flow_euler", guidance=guidance), ref)


def test_flux_true_cfg_matches_pipeline(home, ex):
    """cfg > 1 with Flux runs the negative too: FluxPipeline's true_cfg_scale (separate calls there,
    one batched call here)."""
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(home / "models" / "diffusers" / "flux", local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, negative_prompt=NEGATIVE, true_cfg_scale=2.5, num_inference_steps=3, guidance_scale=3.5,
               height=SIZE, width=SIZE, generator=gen(8), output_type="pt").images
    wf = graph("flux", 3, 2.5, 8, "flow_euler", guidance=3.5)
    wf["nodes"]["gn"] = {"type": "flux_guidance", "inputs": {"conditioning": L("n", "conditioning"), "guidance": 3.5}}
    wf["nodes"]["s"]["inputs"]["negative"] = L("gn", "conditioning")
    check(ex.run(wf).outputs["o"]["image"], ref)


@pytest.mark.parametrize("steps", [2, 3])
def test_flux_img2img_matches_pipeline(home, ex, steps):
    from diffusers import FluxImg2ImgPipeline

    pipe = FluxImg2ImgPipeline.from_pretrained(home / "models" / "diffusers" / "flux", local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, image=input_latents(pipe.vae), strength=0.5, num_inference_steps=2 * steps,
               guidance_scale=3.5, height=SIZE, width=SIZE, generator=gen(9), output_type="pt").images
    check(loom_image(ex, "flux", steps, 1.0, 9, "flow_euler", denoise=0.5), ref)


@pytest.mark.parametrize("steps", [2, 4])
def test_pixart_txt2img_matches_pipeline(home, ex, steps):
    from diffusers import PixArtSigmaPipeline

    pipe = PixArtSigmaPipeline.from_pretrained(home / "models" / "diffusers" / "pixart", local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=4.5, height=SIZE,
               width=SIZE, generator=gen(4), output_type="pt", use_resolution_binning=False,
               clean_caption=False).images
    check(loom_image(ex, "pixart", steps, 4.5, 4, "dpmpp_2m"), ref)


@pytest.mark.parametrize("steps", [2, 3])
def test_pixart_img2img_matches_hand_loop(home, ex, steps):
    """PixArt-Σ img2img against the txt2img pipeline's loop started partway down (diffusers has no
    PixArt img2img pipeline): DPM-Solver++ 2M, the input noised to the first timestep run."""
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline

    pipe = PixArtSigmaPipeline.from_pretrained(home / "models" / "diffusers" / "pixart", local_files_only=True)
    cfg, seed = 4.5, 6
    pe, pm, ne, nm = pipe.encode_prompt(PROMPT, True, NEGATIVE, clean_caption=False, max_sequence_length=300)
    sched = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    total = 2 * steps
    sched.set_timesteps(total)
    sched.set_begin_index(total - steps)
    ts = sched.timesteps[total - steps:]
    lat = input_latents(pipe.vae)
    x = sched.add_noise(lat, torch.randn(lat.shape, generator=gen(seed)), ts[:1])
    for t in ts:
        out = pipe.transformer(torch.cat([x, x]), encoder_hidden_states=torch.cat([ne, pe]),
                               encoder_attention_mask=torch.cat([nm, pm]), timestep=t.expand(2),
                               added_cond_kwargs={"resolution": None, "aspect_ratio": None}, return_dict=False)[0]
        uncond, cond = out.chunk(2)
        pred = (uncond + cfg * (cond - uncond)).chunk(2, dim=1)[0]
        x = sched.step(pred, t, x).prev_sample
    ref = (pipe.vae.decode(x / pipe.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    check(loom_image(ex, "pixart", steps, cfg, seed, "dpmpp_2m", denoise=0.5), ref)
