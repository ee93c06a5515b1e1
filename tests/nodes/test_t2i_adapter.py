"""T2I-Adapters: loading (folders, single files), and Loom's graph against diffusers' adapter pipelines."""
from __future__ import annotations

import logging

import pytest
import torch

from node_test_helpers import executor_for, hint_tensor
from loom import NodeError, node
from loom.types import Image
from loom_nodes._lib.diffusion.controlnet import ControlBatch, ControlEntry
from loom_nodes._lib.diffusion.t2i_adapter import DiffusionT2IAdapter, infer_adapter_config
from loom_nodes._lib.diffusion.tiny import save_diffusers, save_sdxl, tiny_models, tiny_sdxl_models

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes", "loom_nodes.controlnet"]
L = lambda n, o: {"node": n, "output": o}  # noqa: E731
CPU = torch.device("cpu")
log = logging.getLogger(__name__)

pytestmark = pytest.mark.usefixtures("one_thread")


@node(output=True)
def keep_adapter_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


@node()
def adapter_test_hint(seed: int = 0) -> Image:
    """Test source: the hint image ``hint_tensor(seed)``."""
    return hint_tensor(seed)


def random_adapter(seed: int, channels=(32, 64), factor: int = 8, kind: str = "full_adapter", cin: int = 3):
    """A random ``T2IAdapter`` whose feature maps fit the tiny UNets' levels."""
    from diffusers import T2IAdapter

    torch.manual_seed(seed)
    return T2IAdapter(in_channels=cin, channels=list(channels), num_res_blocks=1, downscale_factor=factor,
                      adapter_type=kind).eval()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    save_diffusers(root / "models" / "diffusers" / "tiny", tiny_models(seed=3))
    save_sdxl(root / "models" / "diffusers" / "tiny-xl", tiny_sdxl_models(seed=7))
    random_adapter(20).save_pretrained(root / "models" / "controlnet" / "ad_a")
    random_adapter(21, factor=16, kind="full_adapter_xl").save_pretrained(root / "models" / "controlnet" / "ad_xl")
    return root


@pytest.fixture(scope="module")
def ex(home):
    return executor_for(home, MODULES, __name__)


def graph(adapters=(), model="tiny", steps=4, cfg=7.5, seed=42):
    """The txt2img graph with ``adapters`` = [(name, hint seed, strength, start, end), ...]."""
    nodes = {
        "m": {"type": "load_diffusers_model", "inputs": {"model": model}},
        "p": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": "a red circle"}},
        "n": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": "blurry"}},
        "e": {"type": "empty_latent", "inputs": {"width": 64, "height": 64, "vae": L("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": "euler"}},
    }
    pos = L("p", "conditioning")
    for k, (name, hint, strength, start, end) in enumerate(adapters):
        nodes[f"cl{k}"] = {"type": "load_controlnet", "inputs": {"name": name}}
        nodes[f"h{k}"] = {"type": "adapter_test_hint", "inputs": {"seed": hint}}
        nodes[f"a{k}"] = {"type": "apply_controlnet", "inputs": {
            "conditioning": pos, "control_net": L(f"cl{k}", "control_net"), "image": L(f"h{k}", "image"),
            "strength": strength, "start_percent": start, "end_percent": end}}
        pos = L(f"a{k}", "conditioning")
    nodes["s"] = {"type": "sample", "inputs": {"denoiser": L("m", "denoiser"), "positive": pos,
                                               "negative": L("n", "conditioning"), "latent": L("e", "latent"),
                                               "scheduler": L("sc", "scheduler"), "steps": steps, "cfg": cfg,
                                               "seed": seed}}
    nodes["d"] = {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}}
    nodes["o"] = {"type": "keep_adapter_image", "inputs": {"images": L("d", "image")}}
    return {"nodes": nodes}


def run(ex, **kw) -> torch.Tensor:
    return ex.run(graph(**kw)).outputs["o"]["image"]


def reference(home, adapter: str, hint: int, strength: float, model="tiny", xl=False, factor=1.0, steps=4,
              cfg=7.5, seed=42) -> torch.Tensor:
    from diffusers import (EulerDiscreteScheduler, StableDiffusionAdapterPipeline,
                           StableDiffusionXLAdapterPipeline, T2IAdapter)

    ad = T2IAdapter.from_pretrained(home / "models" / "controlnet" / adapter, local_files_only=True)
    cls = StableDiffusionXLAdapterPipeline if xl else StableDiffusionAdapterPipeline
    extra = {} if xl else {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    pipe = cls.from_pretrained(home / "models" / "diffusers" / model, local_files_only=True, adapter=ad, **extra)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    kw = {"adapter_conditioning_factor": factor} if xl else {}
    out = pipe("a red circle", negative_prompt="blurry", image=hint_tensor(hint), num_inference_steps=steps,
               guidance_scale=cfg, height=64, width=64, generator=torch.Generator().manual_seed(seed),
               adapter_conditioning_scale=strength, output_type="pt", **kw).images
    # the SD adapter pipeline gives NumPy (B, H, W, C) for every output type but "pil"
    return out.float() if isinstance(out, torch.Tensor) else torch.from_numpy(out).permute(0, 3, 1, 2).float()


# --- the graph against diffusers' adapter pipelines --------------------------------------
@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_graph_matches_adapter_pipeline(home, ex, strength):
    ref = reference(home, "ad_a", 0, strength)
    ours = run(ex, adapters=[("ad_a", 0, strength, 0.0, 1.0)])
    assert ours.shape == ref.shape == (1, 3, 64, 64)
    diff = (ours - ref).abs().max().item()
    log.info("T2I-Adapter strength %s: max |Loom - diffusers| = %.3g", strength, diff)
    assert diff <= 1e-5, diff
    assert (ours - run(ex)).abs().max() > 1e-3  # the adapter changed the image


def test_sdxl_graph_matches_sdxl_adapter_pipeline_with_conditioning_factor(home, ex):
    ref = reference(home, "ad_xl", 1, 0.8, model="tiny-xl", xl=True, factor=0.5, steps=4, cfg=5.0)
    ours = run(ex, adapters=[("ad_xl", 1, 0.8, 0.0, 0.5)], model="tiny-xl", steps=4, cfg=5.0)
    diff = (ours - ref).abs().max().item()
    log.info("SDXL T2I-Adapter, factor 0.5: max |Loom - diffusers| = %.3g", diff)
    assert diff <= 1e-5, diff
    assert (ours - run(ex, model="tiny-xl", steps=4, cfg=5.0)).abs().max() > 1e-3


def test_strength_zero_is_bit_equal_and_single_file_equals_folder(home, ex):
    from safetensors.torch import save_file

    assert torch.equal(run(ex, adapters=[("ad_a", 0, 0.0, 0.0, 1.0)]), run(ex))
    ad = DiffusionT2IAdapter(random_adapter(20), "x")
    save_file({k: v.contiguous() for k, v in ad.model.state_dict().items()},
              str(home / "models" / "controlnet" / "ad_a.safetensors"))
    folder = run(ex, adapters=[("ad_a", 2, 0.7, 0.0, 1.0)])
    assert torch.equal(folder, run(ex, adapters=[("ad_a.safetensors", 2, 0.7, 0.0, 1.0)]))


def test_wrong_family_is_a_clear_error(ex):
    with pytest.raises(NodeError) as err:
        ex.run(graph(adapters=[("ad_xl", 0, 1.0, 0.0, 1.0)]))
    assert err.value.node == "s" and "T2I-Adapter" in err.value.message


# --- states, stacking, config from shapes ------------------------------------------------
def test_states_stack_by_summing_and_grey_adapters_take_the_mean():
    a, b = DiffusionT2IAdapter(random_adapter(1), "a"), DiffusionT2IAdapter(random_adapter(2), "b")
    ea, eb = ControlEntry(a, hint_tensor(0), 0.7), ControlEntry(b, hint_tensor(3), 1.3, start=0.5)
    batch = ControlBatch.build((ea, eb), 2, 64, 64, CPU, torch.float32)
    with torch.no_grad():
        sa, sb = a.model(hint_tensor(0)), b.model(hint_tensor(3))
    both = batch.intrablock((3, 4))
    assert [tuple(f.shape) for f in both] == [(2, 32, 8, 8), (2, 64, 4, 4)]
    assert max((f - (p * 0.7 + q * 1.3)).abs().max().item() for f, p, q in zip(both, sa, sb)) <= 1e-6
    early = batch.intrablock((0, 4))  # b starts at half way
    assert max((f - p * 0.7).abs().max().item() for f, p in zip(early, sa)) <= 1e-6
    assert batch.residuals(torch.zeros(2, 4, 8, 8), torch.tensor(1), {"step": (0, 4)}) is None  # no ControlNet
    mixed = ControlBatch.build((), 1, 64, 64, CPU, torch.float32).concat(
        ControlBatch.build((ea,), 1, 64, 64, CPU, torch.float32)).intrablock(None)
    assert all(f[0].abs().max() == 0 and torch.allclose(f[1:], p * 0.7) for f, p in zip(mixed, sa))
    grey = DiffusionT2IAdapter(random_adapter(3, cin=1), "g")
    states = ControlBatch.build((ControlEntry(grey, hint_tensor(1)),), 1, 64, 64, CPU, torch.float32).intrablock(None)
    with torch.no_grad():
        ref = grey.model(hint_tensor(1).mean(dim=1, keepdim=True))
    assert max((f - r).abs().max().item() for f, r in zip(states, ref)) <= 1e-6


@pytest.mark.parametrize("kind,factor,cin,channels", [("full_adapter", 8, 3, [32, 64, 64]),
                                                      ("full_adapter_xl", 16, 3, [32, 64]),
                                                      ("light_adapter", 8, 1, [32, 64])])
def test_single_file_config_is_read_from_shapes(kind, factor, cin, channels):
    ad = random_adapter(5, channels, factor, kind, cin)
    flat = {k[len("adapter."):]: v for k, v in ad.state_dict().items()}
    cfg = infer_adapter_config(flat)
    assert cfg == {"in_channels": cin, "channels": channels, "num_res_blocks": 1, "downscale_factor": factor,
                   "adapter_type": kind}


def test_original_layout_and_odd_sizes_are_clear_errors():
    from loom_nodes._lib.diffusion.loading import ModelLoadError

    with pytest.raises(ModelLoadError, match="original key layout"):
        infer_adapter_config({"conv_in.weight": torch.zeros(320, 192, 3, 3), "body.0.block1.weight": torch.zeros(1)})
    xl = DiffusionT2IAdapter(random_adapter(6, factor=16, kind="full_adapter_xl"), "xl")
    with pytest.raises(ValueError, match="divisible by 16"):
        ControlBatch.build((ControlEntry(xl, hint_tensor(0)),), 1, 72, 64, CPU, torch.float32)
