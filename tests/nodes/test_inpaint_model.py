"""Inpainting checkpoints (9-channel UNets): Loom's graph against StableDiffusionInpaintPipeline.

Tiny random weights; the UNet takes 4 latents + 1 mask + 4 masked-image latents. diffusers
samples the VAE's posterior when it encodes the masked image and Loom takes its mean, so the
pipeline's ``retrieve_latents`` is patched to the mean (``argmax``) for the comparison.
"""
from __future__ import annotations

import importlib

import pytest
import torch
from safetensors.torch import save_file

from loom import Executor, NodeError, Registry, Settings, node
from loom.types import Image, Mask
from loom_nodes._lib.diffusion.tiny import save_diffusers, tiny_models

from test_diffusion_single_file import clip_to_ldm, unet_to_ldm, vae_to_ldm

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes", "loom_nodes.inpaint"]
L = lambda n, o: {"node": n, "output": o}  # noqa: E731

pytestmark = pytest.mark.usefixtures("one_thread")


@node(output=True)
def keep_inpaint_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


def _image_and_mask() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    image = torch.rand(1, 3, 64, 64, generator=g)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 8:40] = 1.0
    mask[..., 14:16, 8:40] = 0.7   # soft edges: binarized at 0.5 like the pipeline's mask processor
    mask[..., 48:50, 8:40] = 0.3
    return image, mask


@node(category="test")
def inpaint_test_image() -> Image:
    """Test input: a seeded random image."""
    return _image_and_mask()[0]


@node(category="test")
def inpaint_test_mask() -> Mask:
    """Test input: a rectangle mask with soft edges."""
    return _image_and_mask()[1]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    models = tiny_models(seed=6, in_channels=9)
    save_diffusers(root / "models" / "diffusers" / "tiny-inpaint", models)
    save_diffusers(root / "models" / "diffusers" / "tiny", tiny_models(seed=6))
    sd = {**unet_to_ldm(models["unet"].state_dict(), models["unet"].config),
          **vae_to_ldm(models["vae"].state_dict(), len(models["vae"].config.block_out_channels)),
          **clip_to_ldm(models["text_encoder"].state_dict())}
    save_diffusers(root / "config", models, loom={"tokenizers": {"tokenizer": "<|endoftext|>"}})
    (root / "models" / "checkpoints").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(root / "models" / "checkpoints" / "inpaint.safetensors"))
    return root


def _executor(home) -> Executor:
    reg = Registry()
    for m in MODULES:
        importlib.import_module(m)
        reg.add_module(m)
    reg.add(keep_inpaint_image, inpaint_test_image, inpaint_test_mask)
    return Executor(reg, settings=Settings(home=home))


def _graph(loader: dict, prompt: str, negative: str, steps: int, cfg: float, seed: int, *,
           conditioning: bool = True, noise_mask: bool = False, sample_mask: bool = False) -> dict:
    mask = L("mi", "mask")
    nodes = {
        "m": loader,
        "im": {"type": "inpaint_test_image", "inputs": {}},
        "mi": {"type": "inpaint_test_mask", "inputs": {}},
        "p": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": prompt}},
        "n": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": negative}},
        "sc": {"type": "scheduler", "inputs": {"name": "euler"}},
        "d": {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}},
        "o": {"type": "keep_inpaint_image", "inputs": {"images": L("d", "image")}},
    }
    sample = {"denoiser": L("m", "denoiser"), "scheduler": L("sc", "scheduler"), "steps": steps, "cfg": cfg,
              "seed": seed}
    if conditioning:
        nodes["ic"] = {"type": "inpaint_conditioning", "inputs": {
            "vae": L("m", "vae"), "image": L("im", "image"), "mask": mask, "positive": L("p", "conditioning"),
            "negative": L("n", "conditioning"), "noise_mask": noise_mask}}
        sample.update(positive=L("ic", "positive"), negative=L("ic", "negative"), latent=L("ic", "latent"))
    else:
        nodes["e"] = {"type": "vae_encode", "inputs": {"vae": L("m", "vae"), "image": L("im", "image")}}
        sample.update(positive=L("p", "conditioning"), negative=L("n", "conditioning"), latent=L("e", "latent"))
    if sample_mask:
        sample["mask"] = mask
    nodes["s"] = {"type": "sample", "inputs": sample}
    return {"nodes": nodes}


def _pipeline_image(folder, prompt, negative, steps, cfg, seed, monkeypatch):
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint as mod
    from diffusers import EulerDiscreteScheduler, StableDiffusionInpaintPipeline

    monkeypatch.setattr(mod, "retrieve_latents",
                        lambda out, generator=None, sample_mode="sample": out.latent_dist.mode())
    pipe = StableDiffusionInpaintPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                          feature_extractor=None, requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    image, mask = _image_and_mask()
    return pipe(prompt, image=image, mask_image=mask, negative_prompt=negative, num_inference_steps=steps,
                guidance_scale=cfg, height=64, width=64, strength=1.0,
                generator=torch.Generator().manual_seed(seed), output_type="pt").images


@pytest.mark.parametrize("cfg", [7.5, 1.0])
def test_graph_matches_stable_diffusion_inpaint_pipeline(home, monkeypatch, cfg):
    prompt, negative, steps, seed = "a red circle", "blurry", 3, 42
    ref = _pipeline_image(home / "models" / "diffusers" / "tiny-inpaint", prompt, negative, steps, cfg, seed,
                          monkeypatch)
    loader = {"type": "load_diffusers_model", "inputs": {"model": "tiny-inpaint"}}
    ours = _executor(home).run(_graph(loader, prompt, negative, steps, cfg, seed)).outputs["o"]["image"]
    assert ours.shape == ref.shape == (1, 3, 64, 64)
    diff = (ours - ref.float()).abs().max().item()
    assert diff <= 1e-5, diff
    print(f"inpaint pipeline cfg {cfg}: max abs difference {diff:.3g}")


def test_single_file_inpainting_checkpoint_loads(home):
    """A 9-channel UNet in a single file loads (no longer refused) with the weights of the folder."""
    from diffusers import UNet2DConditionModel

    from loom_nodes._lib.diffusion.single_file import detect_architecture, load_checkpoint_file, read_state_dict

    path = home / "models" / "checkpoints" / "inpaint.safetensors"
    assert detect_architecture(read_state_dict(path)) == "sd1"
    loaded = load_checkpoint_file(path, torch.device("cpu"), torch.float32, "inpaint", config_dir=home / "config")
    ref = UNet2DConditionModel.from_pretrained(home / "models" / "diffusers" / "tiny-inpaint" / "unet")
    unet = loaded.denoiser.unet
    assert unet.config.in_channels == 9 and unet.config.out_channels == 4
    assert loaded.denoiser.latent_channels == 4
    a, b = unet.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_single_file_of_other_channels_is_still_refused(home, tmp_path):
    from loom_nodes._lib.diffusion.loading import ModelLoadError
    from loom_nodes._lib.diffusion.single_file import detect_architecture, read_state_dict

    sd = dict(read_state_dict(home / "models" / "checkpoints" / "inpaint.safetensors"))
    key = "model.diffusion_model.input_blocks.0.0.weight"
    sd[key] = sd[key][:, :8].contiguous()  # 8 → 4: instruct-pix2pix's layout
    with pytest.raises(ModelLoadError, match="takes 8 channels and gives 4"):
        detect_architecture(sd)


def test_inpainting_model_without_the_conditioning_is_a_clear_error(home):
    loader = {"type": "load_diffusers_model", "inputs": {"model": "tiny-inpaint"}}
    with pytest.raises(NodeError) as err:
        _executor(home).run(_graph(loader, "a square", "", 1, 4.0, 3, conditioning=False, sample_mask=True))
    assert err.value.node == "s" and "positive" in err.value.message
    assert "inpaint_conditioning" in err.value.message


def test_regular_model_with_the_conditioning_equals_the_sampler_mask(home):
    """A 4-channel model ignores the extra channels; the noise mask does what sample's mask does."""
    loader = {"type": "load_diffusers_model", "inputs": {"model": "tiny"}}
    ex = _executor(home)
    a = ex.run(_graph(loader, "a square", "", 2, 4.0, 3, noise_mask=True)).outputs["o"]["image"]
    b = ex.run(_graph(loader, "a square", "", 2, 4.0, 3, conditioning=False, sample_mask=True)).outputs["o"]["image"]
    assert torch.equal(a, b)
