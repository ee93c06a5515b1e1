"""Loom's graph and diffusers' StableDiffusionPipeline give the same image on the same tiny weights."""
from __future__ import annotations

import importlib

import pytest
import torch

from loom import Executor, Registry, Settings, node
from loom.types import Image
from loom_nodes._lib.diffusion.tiny import save_diffusers, tiny_models

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes"]
L = lambda n, o: {"node": n, "output": o}  # noqa: E731


@node(output=True)
def keep_equivalence_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    save_diffusers(root / "models" / "diffusers" / "tiny", tiny_models(seed=3))
    return root


def loom_image(home, prompt, negative, steps, cfg, seed, sched, sigmas="default"):
    reg = Registry()
    for m in MODULES:
        importlib.import_module(m)
        reg.add_module(m)
    reg.add_module(__name__)
    ex = Executor(reg, settings=Settings(home=home))
    wf = {"nodes": {
        "m": {"type": "load_diffusers_model", "inputs": {"model": "tiny"}},
        "p": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": prompt}},
        "n": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": negative}},
        "e": {"type": "empty_latent", "inputs": {"width": 64, "height": 64, "vae": L("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": sched, "sigmas": sigmas}},
        "s": {"type": "sample", "inputs": {"denoiser": L("m", "denoiser"), "positive": L("p", "conditioning"),
                                           "negative": L("n", "conditioning"), "latent": L("e", "latent"),
                                           "scheduler": L("sc", "scheduler"), "steps": steps, "cfg": cfg,
                                           "seed": seed}},
        "d": {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}},
        "o": {"type": "keep_equivalence_image", "inputs": {"images": L("d", "image")}},
    }}
    return ex.run(wf).outputs["o"]["image"]


@pytest.mark.parametrize("sched,cls,kwargs", [
    ("euler", "EulerDiscreteScheduler", {}),
    ("dpmpp_2m_karras", "DPMSolverMultistepScheduler",
     {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    ("euler_ancestral", "EulerAncestralDiscreteScheduler", {}),
])
def test_graph_matches_stable_diffusion_pipeline(home, sched, cls, kwargs):
    import diffusers
    from diffusers import StableDiffusionPipeline

    folder = home / "models" / "diffusers" / "tiny"
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False)
    pipe.scheduler = getattr(diffusers, cls).from_config(pipe.scheduler.config, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    prompt, negative, steps, cfg, seed = "a red circle, top left", "blurry", 4, 7.5, 42
    ref = pipe(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=cfg,
               height=64, width=64, generator=torch.Generator().manual_seed(seed), output_type="pt").images
    ours = loom_image(home, prompt, negative, steps, cfg, seed, sched)
    assert ours.shape == ref.shape == (1, 3, 64, 64)
    assert torch.allclose(ours, ref.float(), atol=1e-5), (ours - ref).abs().max()


def test_sdxl_graph_matches_stable_diffusion_xl_pipeline(tmp_path):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    from loom_nodes._lib.diffusion.tiny import save_sdxl, tiny_sdxl_models

    folder = save_sdxl(tmp_path / "models" / "diffusers" / "tiny", tiny_sdxl_models(seed=7))
    pipe = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    prompt, negative, steps, cfg, seed = "a blue square", "noise", 3, 5.0, 11
    ref = pipe(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=cfg, height=64,
               width=64, generator=torch.Generator().manual_seed(seed), output_type="pt").images
    ours = loom_image(tmp_path, prompt, negative, steps, cfg, seed, "euler")
    assert torch.allclose(ours, ref.float(), atol=1e-5), (ours - ref).abs().max()
