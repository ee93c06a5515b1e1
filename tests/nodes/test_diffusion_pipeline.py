"""The text-to-image / image-to-image graph on tiny random-weight diffusers models (CPU)."""
from __future__ import annotations

import threading

import pytest
import torch

from loom import BaseObserver, Executor, Interrupted, NodeError, Registry, Settings, ValidationError, node
from loom.types import Image, Latent
from loom_nodes._lib.diffusion import schedulers
from loom_nodes._lib.diffusion.tiny import save_diffusers, tiny_models

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes"]
L = lambda n, o: {"node": n, "output": o}  # noqa: E731


@node(output=True)
def keep_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


@node(output=True)
def keep_latent(latent: Latent) -> Latent:
    """Test output: hand the latent back."""
    return latent


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    save_diffusers(root / "models" / "diffusers" / "tiny", tiny_models(seed=0))
    save_diffusers(root / "models" / "diffusers" / "other", tiny_models(seed=1, scaling=0.5))
    return root


@pytest.fixture(scope="module")
def registry():
    import importlib
    reg = Registry()
    for m in MODULES:
        importlib.import_module(m)
        reg.add_module(m)
    reg.add_module(__name__)
    return reg


@pytest.fixture(scope="module")
def ex(registry, home):
    return Executor(registry, settings=Settings(home=home))


def graph(prompt="a red circle", negative="", steps=3, cfg=7.5, seed=1, sched="euler", width=64,
          height=64, denoise=1.0, model="tiny", out="image"):
    nodes = {
        "m": {"type": "load_diffusers_model", "inputs": {"model": model}},
        "p": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": prompt}},
        "n": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": negative}},
        "e": {"type": "empty_latent", "inputs": {"width": width, "height": height, "vae": L("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": sched}},
        "s": {"type": "sample", "inputs": {"denoiser": L("m", "denoiser"), "positive": L("p", "conditioning"),
                                           "negative": L("n", "conditioning"), "latent": L("e", "latent"),
                                           "scheduler": L("sc", "scheduler"), "steps": steps, "cfg": cfg,
                                           "seed": seed, "denoise": denoise}},
        "d": {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}},
    }
    if out == "image":
        nodes["o"] = {"type": "keep_image", "inputs": {"images": L("d", "image")}}
    else:
        nodes["o"] = {"type": "keep_latent", "inputs": {"latent": L("s", "latent")}}
    return {"nodes": nodes}


def value(result):
    return next(iter(result.outputs["o"].values()))


def test_text_to_image_shapes_and_range(ex):
    img = value(ex.run(graph()))
    assert img.shape == (1, 3, 64, 64) and img.dtype == torch.float32
    assert 0 <= img.min() and img.max() <= 1 and img.std() > 0
    lat = value(ex.run(graph(out="latent", width=48, height=32)))
    assert lat.samples.shape == (1, 4, 4, 6) and lat.family == "sd1"
    assert any("denoiser" in row["label"] for row in ex.models.loaded())


def test_same_seed_same_image_other_seed_differs(ex):
    a = value(ex.run(graph(seed=5, out="latent"))).samples
    ex.cache.clear()
    b = value(ex.run(graph(seed=5, out="latent"))).samples
    c = value(ex.run(graph(seed=6, out="latent"))).samples
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_cfg_one_is_the_unguided_path(ex):
    a = value(ex.run(graph(cfg=1.0, negative="x", out="latent"))).samples
    b = value(ex.run(graph(cfg=1.0, negative="completely different", out="latent"))).samples
    assert torch.equal(a, b)  # the negative prompt is never used
    c = value(ex.run(graph(cfg=3.0, negative="x", out="latent"))).samples
    d = value(ex.run(graph(cfg=3.0, negative="completely different", out="latent"))).samples
    assert not torch.allclose(c, d)


def test_denoise_zero_returns_the_input_latent(ex):
    wf = graph(denoise=0.0, out="latent")
    lat = value(ex.run(wf))
    assert torch.equal(lat.samples, torch.zeros(1, 4, 8, 8))


def test_changed_prompt_reruns_only_encoder_and_descendants(ex):
    ex.run(graph(prompt="first prompt"))
    r = ex.run(graph(prompt="second prompt"))
    assert set(r.executed) == {"p", "s", "d", "o"}
    assert {"m", "n", "e", "sc"} <= set(r.cached)


@pytest.mark.parametrize("name", schedulers.available())
def test_every_scheduler_runs(ex, name):
    lat = value(ex.run(graph(sched=name, steps=2, out="latent"))).samples
    assert lat.shape == (1, 4, 8, 8) and torch.isfinite(lat).all()


def test_listed_schedulers_cover_the_issue():
    names = set(schedulers.available())
    assert {"ddpm", "ddim", "pndm", "lms", "euler", "euler_ancestral", "heun", "dpmpp_2m",
            "dpmpp_2m_karras", "unipc", "lcm"} <= names


def test_interrupt_stops_within_one_step(ex):
    steps_seen = []

    class Stopper(BaseObserver):
        def node_progress(self, run, node, value, total, preview, info=None):
            steps_seen.append((node, value))
            assert preview is not None and preview.shape[1] == 3
            ex.interrupt()

    with pytest.raises(Interrupted):
        ex.run(graph(steps=10, seed=99), observer=Stopper())
    assert steps_seen == [("s", 1)]


def test_img2img_and_inpaint_mask(ex, registry):
    wf = graph(out="latent", denoise=0.5, steps=4)
    wf["nodes"]["src"] = {"type": "vae_encode", "inputs": {"vae": L("m", "vae"), "image": L("d0", "image")}}
    wf["nodes"]["d0"] = {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("e0", "latent")}}
    wf["nodes"]["e0"] = {"type": "latent_noise", "inputs": {"latent": L("e", "latent"), "seed": 3}}
    wf["nodes"]["s"]["inputs"]["latent"] = L("src", "latent")
    out = value(ex.run(wf)).samples
    assert out.shape == (1, 4, 8, 8)
    # inpainting: outside the mask the input latent is kept exactly
    sample_fn = registry["sample"].fn
    ctx = _ctx(ex)
    models = _models(ex)
    src = Latent(torch.randn(1, 4, 8, 8), "sd1")
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :32, :] = 1
    cond = registry["text_encode"].fn(ctx, models.text_encoder, "a cat")
    from loom_nodes._lib.diffusion.components import SchedulerChoice
    res = sample_fn(ctx, models.denoiser, cond, cond, src, SchedulerChoice("ddim"), steps=3, cfg=2.0,
                    seed=1, denoise=1.0, mask=mask).samples
    assert torch.allclose(res[..., 4:, :], src.samples[..., 4:, :])
    assert not torch.allclose(res[..., :4, :], src.samples[..., :4, :])


def _models(ex):
    from loom_nodes.diffusion_loaders import load_diffusers_model
    return load_diffusers_model(_ctx(ex), ex.settings.home / "models" / "diffusers" / "tiny")


def _ctx(ex):
    from loom import Context
    return Context(node_id="t", node_type="t", run_id="r", settings=ex.settings, device=ex.device,
                   dtype=ex.dtype, models=ex.models, interrupt_event=threading.Event(), workflow={},
                   run_info={})


def test_bad_inputs_are_clear_errors(ex):
    with pytest.raises(ValidationError) as verr:  # caught before running: the widget's step is 8
        ex.run(graph(width=60))
    assert any(p.node == "e" and p.input == "width" and "multiple of 8" in p.message
               for p in verr.value.problems)
    with pytest.raises(ValidationError) as verr:
        ex.run(graph(steps=0))
    assert any(p.node == "s" and p.input == "steps" for p in verr.value.problems)
    with pytest.raises(ValidationError) as verr:
        ex.run(graph(model="missing-model"))
    assert any(p.node == "m" and p.code == "missing_model" for p in verr.value.problems)


def test_latent_from_another_model_is_refused_by_the_vae(ex):
    wf = graph(out="image")
    wf["nodes"]["m2"] = {"type": "load_diffusers_model", "inputs": {"model": "other"}}
    wf["nodes"]["d"]["inputs"]["vae"] = L("m2", "vae")
    with pytest.raises(NodeError) as err:
        ex.run(wf)
    assert err.value.node == "d" and "latent" in err.value.message and "latent space" in err.value.message


def test_corrupt_model_file_is_a_clear_error(ex, home):
    bad = home / "models" / "diffusers" / "broken"
    save_diffusers(bad, {"unet": None})
    (bad / "unet").mkdir(exist_ok=True)
    (bad / "unet" / "config.json").write_text("{not json")
    (bad / "vae").mkdir(exist_ok=True)
    (bad / "vae" / "config.json").write_text("{}")
    with pytest.raises(NodeError) as err:
        ex.run(graph(model="broken"))
    assert err.value.node == "m" and "model" in err.value.message


def test_edited_model_file_reloads(ex, home):
    import os

    ex.run(graph())
    cfg = home / "models" / "diffusers" / "tiny" / "unet" / "config.json"
    st = cfg.stat()
    os.utime(cfg, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    r = ex.run(graph())
    assert "m" in r.executed and "s" in r.executed
    tiny = [row["key"] for row in ex.models.loaded() if row["key"].startswith(str(cfg.parent.parent) + "#")]
    assert len(tiny) == 3  # loaded again under the new fingerprint; the old version was forgotten


def test_batches_get_distinct_noise_per_image(ex):
    wf = graph(out="latent")
    wf["nodes"]["e"]["inputs"]["batch"] = 2
    lat = value(ex.run(wf)).samples
    assert lat.shape == (2, 4, 8, 8) and not torch.allclose(lat[0], lat[1])


def test_load_vae_folder_upscale_and_encode_crop(ex, home, registry):
    import shutil

    shutil.copytree(home / "models" / "diffusers" / "tiny" / "vae", home / "models" / "vae" / "tiny-vae",
                    dirs_exist_ok=True)
    ctx = _ctx(ex)
    vae = registry["load_vae"].fn(ctx, home / "models" / "vae" / "tiny-vae", "auto")
    assert vae.family == "sd1" and vae.downscale == 8
    image = torch.rand(1, 3, 70, 45)
    lat = registry["vae_encode"].fn(ctx, vae, image, 0)
    assert lat.samples.shape == (1, 4, 8, 5) and lat.family == "sd1"  # cropped to 64 × 40
    big = registry["latent_upscale"].fn(lat, 2.0, "bilinear")
    assert big.samples.shape == (1, 4, 16, 10) and big.family == "sd1"
    img = registry["vae_decode"].fn(ctx, vae, big, 0)
    assert img.shape == (1, 3, 128, 80)
