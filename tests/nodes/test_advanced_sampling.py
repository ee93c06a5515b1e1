"""sample_advanced (step windows, add_noise, leftover noise) and Sigmas, on tiny random models.

The base → refiner handoff (steps 0..k keeping the leftover noise, then k..N without new
noise) must equal one unsplit run, and the step windows must match diffusers' own
``denoising_end`` / ``denoising_start`` (SDXL) and img2img ``strength``.
"""
from __future__ import annotations

import importlib
import threading

import pytest
import torch

from loom import Context, Executor, Registry, Settings, UserInputError
from loom.types import Latent
from loom_nodes._lib.diffusion.components import SchedulerChoice
from loom_nodes._lib.diffusion.sigmas import Sigmas
from loom_nodes._lib.diffusion.tiny import save_diffusers, save_sdxl, tiny_models, tiny_sdxl_models

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling",
           "loom_nodes.latents", "loom_nodes.vae_nodes", "loom_nodes.sigmas"]
TOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    save_diffusers(root / "models" / "diffusers" / "tiny", tiny_models(seed=4))
    save_sdxl(root / "models" / "diffusers" / "tinyxl", tiny_sdxl_models(seed=5))
    return root


@pytest.fixture(scope="module")
def reg():
    registry = Registry()
    for m in MODULES:
        importlib.import_module(m)
        registry.add_module(m)
    return registry


@pytest.fixture(scope="module")
def ex(reg, home):
    return Executor(reg, settings=Settings(home=home))


def make_ctx(ex):
    return Context(node_id="t", node_type="t", run_id="r", settings=ex.settings, device=ex.device,
                   dtype=ex.dtype, models=ex.models, interrupt_event=threading.Event(), workflow={},
                   run_info={})


@pytest.fixture(scope="module")
def sd(ex, reg, home):
    """(ctx, models, positive, negative) of the tiny SD model."""
    ctx = make_ctx(ex)
    models = reg["load_diffusers_model"].fn(ctx, home / "models" / "diffusers" / "tiny")
    enc = reg["text_encode"].fn
    return ctx, models, enc(ctx, models.text_encoder, "a red circle"), enc(ctx, models.text_encoder, "blur")


def run_adv(reg, sd, latent, sched, steps, **kw):
    ctx, models, pos, neg = sd
    args = dict(steps=steps, cfg=kw.pop("cfg", 5.0), seed=kw.pop("seed", 3), start_step=0, end_step=10000,
                add_noise=True, return_with_leftover_noise=False, sigmas=None, mask=None)
    args.update(kw)
    return reg["sample_advanced"].fn(ctx, models.denoiser, pos, neg, latent, sched, **args)


def run_plain(reg, sd, latent, sched, steps, denoise=1.0, seed=3, cfg=5.0):
    ctx, models, pos, neg = sd
    return reg["sample"].fn(ctx, models.denoiser, pos, neg, latent, sched, steps=steps, cfg=cfg, seed=seed,
                            denoise=denoise, mask=None)


def empty():
    return Latent(torch.zeros(1, 4, 8, 8), "sd1")


@pytest.mark.parametrize("name", ["euler", "ddim", "heun"])
def test_handoff_equals_one_unsplit_run(reg, sd, name):
    sched, n, k = SchedulerChoice(name), 6, 2
    whole = run_adv(reg, sd, empty(), sched, n).samples
    plain = run_plain(reg, sd, empty(), sched, n).samples
    assert torch.equal(whole, plain)  # the full window is exactly `sample`
    base = run_adv(reg, sd, empty(), sched, n, end_step=k, return_with_leftover_noise=True)
    refined = run_adv(reg, sd, base, sched, n, start_step=k, add_noise=False).samples
    diff = (refined - whole).abs().max().item()
    assert diff <= TOL, diff
    # without leftover noise the base returns its last step's clean estimate instead
    clean = run_adv(reg, sd, empty(), sched, n, end_step=k).samples
    assert not torch.allclose(clean, base.samples)


def test_stopping_without_leftover_noise_jumps_to_sigma_zero(reg, sd):
    """Euler's clean estimate after step k is one more Euler step down to sigma 0."""
    ctx, models, _, _ = sd
    sched, n, k = SchedulerChoice("euler", spacing="trailing"), 6, 2
    clean = run_adv(reg, sd, empty(), sched, n, end_step=k).samples
    own = reg["sigmas"].fn(models.denoiser, sched, n, "scheduler").values
    jump = Sigmas(torch.cat([own[:k], torch.zeros(1)]))
    diff = (run_adv(reg, sd, empty(), sched, 1, sigmas=jump).samples - clean).abs().max().item()
    assert diff <= TOL, diff


def test_start_step_is_denoise_of_sample(reg, sd):
    src = Latent(torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), "sd1")
    sched = SchedulerChoice("euler")
    a = run_plain(reg, sd, src, sched, 3, denoise=0.5).samples  # a schedule of 6, its last 3 steps
    b = run_adv(reg, sd, src, sched, 6, start_step=3).samples
    assert torch.equal(a, b)


def test_empty_window_returns_the_input_and_windows_clamp(reg, sd):
    src = Latent(torch.randn(1, 4, 8, 8), "unknown")
    out = run_adv(reg, sd, src, SchedulerChoice("euler"), 4, start_step=4)
    assert torch.equal(out.samples, src.samples) and out.family == "sd1"
    a = run_adv(reg, sd, empty(), SchedulerChoice("euler"), 4, end_step=4).samples
    b = run_adv(reg, sd, empty(), SchedulerChoice("euler"), 4, end_step=9999).samples
    assert torch.equal(a, b)


def test_mask_without_added_noise_keeps_the_input_outside(reg, sd):
    ctx, models, pos, neg = sd
    src = Latent(torch.randn(1, 4, 8, 8), "sd1")
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :32, :] = 1
    out = run_adv(reg, sd, src, SchedulerChoice("euler"), 4, start_step=2, add_noise=False, mask=mask).samples
    assert torch.equal(out[..., 4:, :], src.samples[..., 4:, :])
    assert not torch.allclose(out[..., :4, :], src.samples[..., :4, :])
    # with noise added and leftover kept, outside the mask is the input noised to the end level
    left = run_adv(reg, sd, src, SchedulerChoice("euler"), 4, end_step=2, return_with_leftover_noise=True,
                   mask=mask).samples
    assert not torch.allclose(left[..., 4:, :], src.samples[..., 4:, :])


def test_custom_karras_sigmas_equal_the_karras_scheduler(reg, sd):
    ctx, models, _, _ = sd
    sched = SchedulerChoice("euler", spacing="linspace")
    values = reg["sigmas"].fn(models.denoiser, sched, 5, "karras")
    assert isinstance(values, Sigmas) and values.values.shape == (6,) and float(values.values[-1]) == 0
    ours = run_adv(reg, sd, empty(), sched, 99, sigmas=values).samples
    ref = run_plain(reg, sd, empty(), SchedulerChoice("euler", "karras", "linspace"), 5).samples
    # diffusers maps its float64 karras levels to timesteps, Loom the float32 levels of the socket:
    # equal to float32 precision of latents whose values reach ~10
    diff = (ours - ref).abs().max().item()
    assert diff <= TOL * ref.abs().max().item(), diff
    own = reg["sigmas"].fn(models.denoiser, sched, 5, "scheduler")
    assert torch.allclose(run_adv(reg, sd, empty(), sched, 99, sigmas=own).samples,
                          run_plain(reg, sd, empty(), sched, 5).samples, atol=TOL)
    expo = reg["sigmas"].fn(models.denoiser, sched, 5, "exponential").values
    assert torch.allclose(expo[:-1].log().diff(), expo[:-1].log().diff()[:1].expand(4), atol=1e-5)


def test_split_sigmas_handoff_and_flip(reg, sd):
    ctx, models, _, _ = sd
    sched = SchedulerChoice("euler", spacing="trailing")
    full = reg["sigmas"].fn(models.denoiser, sched, 6, "karras")
    high, low = reg["split_sigmas"].fn(full, 2)
    assert high.steps == 2 and low.steps == 4 and high.values[-1] == low.values[0]
    whole = run_adv(reg, sd, empty(), sched, 1, sigmas=full).samples
    base = run_adv(reg, sd, empty(), sched, 1, sigmas=high, return_with_leftover_noise=True)
    refined = run_adv(reg, sd, base, sched, 1, sigmas=low, add_noise=False).samples
    diff = (refined - whole).abs().max().item()
    assert diff <= TOL, diff
    flipped = reg["flip_sigmas"].fn(full).values
    assert flipped[0] == pytest.approx(1e-4) and torch.equal(flipped[1:], full.values.flip(0)[1:])
    with pytest.raises(UserInputError) as err:
        reg["split_sigmas"].fn(full, 6)
    assert err.value.input == "step"


def test_custom_sigmas_need_a_scheduler_that_takes_them(reg, sd):
    ctx, models, _, _ = sd
    values = reg["sigmas"].fn(models.denoiser, SchedulerChoice("ddim"), 4, "scheduler")
    assert values.steps == 4 and torch.all(values.values[:-1] > values.values[1:])
    with pytest.raises(UserInputError) as err:
        run_adv(reg, sd, empty(), SchedulerChoice("ddim"), 4, sigmas=values)
    assert err.value.input == "scheduler" and "euler" in str(err.value)


def test_refiner_handoff_matches_diffusers_denoising_end_and_start(home):
    """SDXL base with denoising_end=0.5 then the img2img pipeline with denoising_start=0.5."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    folder = home / "models" / "diffusers" / "tinyxl"
    base = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
    base.scheduler = EulerDiscreteScheduler.from_config(base.scheduler.config)
    base.set_progress_bar_config(disable=True)
    refiner = StableDiffusionXLImg2ImgPipeline(**base.components)
    refiner.set_progress_bar_config(disable=True)
    kw = dict(prompt="a blue square", negative_prompt="noise", num_inference_steps=4, guidance_scale=5.0)
    half = base(**kw, height=64, width=64, denoising_end=0.5, generator=torch.Generator().manual_seed(11),
                output_type="latent").images
    ref = refiner(**kw, image=half, denoising_start=0.5, output_type="latent").images

    reg = Registry()
    for m in MODULES:
        reg.add_module(m)
    ex = Executor(reg, settings=Settings(home=home))
    L = lambda n, o: {"node": n, "output": o}  # noqa: E731
    common = {"denoiser": L("m", "denoiser"), "positive": L("p", "conditioning"),
              "negative": L("n", "conditioning"), "scheduler": L("sc", "scheduler"), "steps": 4, "cfg": 5.0,
              "seed": 11}
    wf = {"nodes": {
        "m": {"type": "load_diffusers_model", "inputs": {"model": "tinyxl"}},
        "p": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": "a blue square"}},
        "n": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": "noise"}},
        "e": {"type": "empty_latent", "inputs": {"width": 64, "height": 64, "vae": L("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": "euler"}},
        "base": {"type": "sample_advanced", "inputs": {**common, "latent": L("e", "latent"), "end_step": 2,
                                                       "return_with_leftover_noise": True}},
        "ref": {"type": "sample_advanced", "inputs": {**common, "latent": L("base", "latent"), "start_step": 2,
                                                      "add_noise": False}},
    }}
    out = ex.run(ex.compile(wf, targets=["base", "ref"]))
    half_diff = (out.outputs["base"]["latent"].samples - half).abs().max().item()
    diff = (out.outputs["ref"]["latent"].samples - ref).abs().max().item()
    assert half_diff <= TOL and diff <= TOL, (half_diff, diff)


def test_start_step_matches_diffusers_img2img_strength(home, reg, sd):
    from diffusers import EulerDiscreteScheduler, StableDiffusionImg2ImgPipeline

    folder = home / "models" / "diffusers" / "tiny"
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                          feature_extractor=None, requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    src = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    ref = pipe("a red circle", negative_prompt="blur", image=src, strength=0.5, num_inference_steps=6,
               guidance_scale=5.0, generator=torch.Generator().manual_seed(3), output_type="latent").images
    ours = run_adv(reg, sd, Latent(src, "sd1"), SchedulerChoice("euler"), 6, start_step=3).samples
    diff = (ours - ref).abs().max().item()
    assert diff <= TOL, diff
