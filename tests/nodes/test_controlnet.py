"""ControlNet: residuals, loading, and Loom's graph against diffusers' ControlNet pipelines (tiny models)."""
from __future__ import annotations

import logging
import re

import pytest
import torch

from node_test_helpers import executor_for, hint_tensor
from loom import NodeError, ValidationError, node
from loom.types import Image
from loom_nodes._lib.diffusion.controlnet import ControlBatch, ControlEntry, DiffusionControlNet
from loom_nodes._lib.diffusion.tiny import save_diffusers, save_sdxl, tiny_models, tiny_sdxl_models

MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents",
           "loom_nodes.vae_nodes", "loom_nodes.controlnet"]
L = lambda n, o: {"node": n, "output": o}  # noqa: E731
CPU = torch.device("cpu")
log = logging.getLogger(__name__)

pytestmark = pytest.mark.usefixtures("one_thread")


@node(output=True)
def keep_controlnet_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


@node()
def controlnet_test_hint(seed: int = 0) -> Image:
    """Test source: the hint image ``hint_tensor(seed)``."""
    return hint_tensor(seed)


def random_controlnet(unet, seed: int, std: float = 0.05):
    """ControlNetModel.from_unet with its zero-initialised layers made random (else it does nothing)."""
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    cn = ControlNetModel.from_unet(unet)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in cn.named_parameters():
            if name.startswith(("controlnet_down_blocks.", "controlnet_mid_block.",
                                "controlnet_cond_embedding.conv_out.")):
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return cn.eval()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    models = tiny_models(seed=3)
    save_diffusers(root / "models" / "diffusers" / "tiny", models)
    for name, seed in (("cn_a", 10), ("cn_b", 11)):
        random_controlnet(models["unet"], seed).save_pretrained(root / "models" / "controlnet" / name)
    xl = tiny_sdxl_models(seed=7)
    save_sdxl(root / "models" / "diffusers" / "tiny-xl", xl)
    random_controlnet(xl["unet"], 12).save_pretrained(root / "models" / "controlnet" / "cn_xl")
    return root


@pytest.fixture(scope="module")
def ex(home):
    return executor_for(home, MODULES, __name__)


def graph(controls=(), model="tiny", prompt="a red circle", negative="blurry", steps=4, cfg=7.5, seed=42,
          sched="euler", advanced=False):
    """The txt2img graph with ``controls`` = [(controlnet name, hint seed, strength, start, end), ...]."""
    nodes = {
        "m": {"type": "load_diffusers_model", "inputs": {"model": model}},
        "p": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": prompt}},
        "n": {"type": "text_encode", "inputs": {"encoder": L("m", "text_encoder"), "text": negative}},
        "e": {"type": "empty_latent", "inputs": {"width": 64, "height": 64, "vae": L("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": sched}},
    }
    pos, neg = L("p", "conditioning"), L("n", "conditioning")
    for k, (name, hint, strength, start, end) in enumerate(controls):
        nodes[f"cl{k}"] = {"type": "load_controlnet", "inputs": {"name": name}}
        nodes[f"h{k}"] = {"type": "controlnet_test_hint", "inputs": {"seed": hint}}
        inputs = {"control_net": L(f"cl{k}", "control_net"), "image": L(f"h{k}", "image"),
                  "strength": strength, "start_percent": start, "end_percent": end}
        if advanced:
            nodes[f"a{k}"] = {"type": "apply_controlnet_advanced", "inputs": {**inputs, "positive": pos,
                                                                             "negative": neg}}
            pos, neg = L(f"a{k}", "positive"), L(f"a{k}", "negative")
        else:
            nodes[f"a{k}"] = {"type": "apply_controlnet", "inputs": {**inputs, "conditioning": pos}}
            pos = L(f"a{k}", "conditioning")
    nodes["s"] = {"type": "sample", "inputs": {"denoiser": L("m", "denoiser"), "positive": pos, "negative": neg,
                                               "latent": L("e", "latent"), "scheduler": L("sc", "scheduler"),
                                               "steps": steps, "cfg": cfg, "seed": seed}}
    nodes["d"] = {"type": "vae_decode", "inputs": {"vae": L("m", "vae"), "latent": L("s", "latent")}}
    nodes["o"] = {"type": "keep_controlnet_image", "inputs": {"images": L("d", "image")}}
    return {"nodes": nodes}


def run(ex, **kw) -> torch.Tensor:
    return ex.run(graph(**kw)).outputs["o"]["image"]


def pipeline(home, names, model="tiny", xl=False):
    from diffusers import (ControlNetModel, EulerDiscreteScheduler, MultiControlNetModel,
                           StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline)

    nets = [ControlNetModel.from_pretrained(home / "models" / "controlnet" / n, local_files_only=True) for n in names]
    cls = StableDiffusionXLControlNetPipeline if xl else StableDiffusionControlNetPipeline
    extra = {} if xl else {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    pipe = cls.from_pretrained(home / "models" / "diffusers" / model, local_files_only=True,
                               controlnet=nets[0] if len(nets) == 1 else MultiControlNetModel(nets), **extra)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference(pipe, hints, strength, start, end, prompt="a red circle", negative="blurry", steps=4, cfg=7.5,
              seed=42):
    multi = len(hints) > 1
    images = [hint_tensor(h) for h in hints]
    return pipe(prompt, negative_prompt=negative, image=images if multi else images[0], num_inference_steps=steps,
                guidance_scale=cfg, height=64, width=64, generator=torch.Generator().manual_seed(seed),
                controlnet_conditioning_scale=strength, control_guidance_start=start, control_guidance_end=end,
                output_type="pt").images.float()


# --- residuals ---------------------------------------------------------------------------
def test_residuals_equal_controlnet_model_and_stack_by_summing():
    models = tiny_models(seed=0)
    a, b = random_controlnet(models["unet"], 1), random_controlnet(models["unet"], 2)
    x, t, ehs = torch.randn(2, 4, 8, 8), torch.tensor(500), torch.randn(2, 77, 32)
    hint_a, hint_b = hint_tensor(0), hint_tensor(5)
    ea = ControlEntry(DiffusionControlNet(a, "a"), hint_a, 0.7)
    eb = ControlEntry(DiffusionControlNet(b, "b"), hint_b, 1.3)
    batch = ControlBatch.build((ea, eb), 2, 64, 64, CPU, torch.float32)
    with torch.no_grad():
        down, mid = batch.residuals(x, t, {"encoder_hidden_states": ehs})
        da, ma = a(x, t, encoder_hidden_states=ehs, controlnet_cond=hint_a.expand(2, -1, -1, -1),
                   conditioning_scale=0.7, return_dict=False)
        db, mb = b(x, t, encoder_hidden_states=ehs, controlnet_cond=hint_b.expand(2, -1, -1, -1),
                   conditioning_scale=1.3, return_dict=False)
    assert len(down) == len(da) and down[0].shape == da[0].shape
    assert max((d - (p + q)).abs().max().item() for d, p, q in zip(down, da, db)) == 0
    assert (mid - (ma + mb)).abs().max().item() == 0
    # outside its window an entry adds nothing; with no active entry there are no residuals
    late = ControlEntry(DiffusionControlNet(a, "a"), hint_a, 1.0, start=0.5, end=1.0)
    only_late = ControlBatch.build((late,), 2, 64, 64, CPU, torch.float32)
    assert only_late.residuals(x, t, {"encoder_hidden_states": ehs, "step": (0, 4)}) is None
    assert only_late.residuals(x, t, {"encoder_hidden_states": ehs, "step": (2, 4)}) is not None


def test_mixed_segments_give_zeros_where_a_part_has_no_control():
    models = tiny_models(seed=0)
    a = random_controlnet(models["unet"], 1)
    e = ControlEntry(DiffusionControlNet(a, "a"), hint_tensor(0), 1.0)
    with_c = ControlBatch.build((e,), 1, 64, 64, CPU, torch.float32)
    without = ControlBatch.build((), 1, 64, 64, CPU, torch.float32)
    x, t, ehs = torch.randn(2, 4, 8, 8), torch.tensor(300), torch.randn(2, 77, 32)
    with torch.no_grad():
        down, mid = without.concat(with_c).residuals(x, t, {"encoder_hidden_states": ehs})
        ref_d, ref_m = a(x[1:], t, encoder_hidden_states=ehs[1:], controlnet_cond=hint_tensor(0), return_dict=False)
    assert mid[0].abs().max() == 0 and torch.allclose(mid[1:], ref_m, atol=1e-6)
    assert all(d[0].abs().max() == 0 and torch.allclose(d[1:], r, atol=1e-6) for d, r in zip(down, ref_d))


def test_hint_is_resized_batched_and_masked():
    from loom_nodes._lib.diffusion.controlnet import prepare_hint

    models = tiny_models(seed=0)
    net = DiffusionControlNet(random_controlnet(models["unet"], 1), "a")
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :16, :] = 1
    grey = torch.full((1, 1, 32, 32), 0.5)
    out = prepare_hint(ControlEntry(net, grey, mask=mask), 3, 64, 64, CPU, torch.float32)
    assert out.shape == (3, 3, 64, 64)
    assert (out[..., :30, :] == -1).all() and torch.allclose(out[..., 34:, :], torch.tensor(0.5))
    with pytest.raises(ValueError, match="hint has 2 images but the latent batch is 3"):
        prepare_hint(ControlEntry(net, torch.rand(2, 3, 64, 64)), 3, 64, 64, CPU, torch.float32)


# --- the graph against diffusers' pipelines ---------------------------------------------
@pytest.mark.parametrize("strength,start,end", [(1.0, 0.0, 1.0), (0.5, 0.0, 1.0), (1.0, 0.2, 0.8)])
def test_graph_matches_controlnet_pipeline(home, ex, strength, start, end):
    ref = reference(pipeline(home, ["cn_a"]), [0], strength, start, end)
    ours = run(ex, controls=[("cn_a", 0, strength, start, end)])
    plain = run(ex)
    assert ours.shape == ref.shape == (1, 3, 64, 64)
    diff = (ours - ref).abs().max().item()
    log.info("ControlNet strength %s window %s-%s: max |Loom - diffusers| = %.3g", strength, start, end, diff)
    assert diff <= 1e-5, diff
    assert (ours - plain).abs().max() > 1e-3  # the control changed the image


def test_advanced_apply_on_both_sides_equals_apply_on_positive(ex):
    a = run(ex, controls=[("cn_a", 0, 0.8, 0.0, 1.0)])
    b = run(ex, controls=[("cn_a", 0, 0.8, 0.0, 1.0)], advanced=True)
    assert torch.equal(a, b)


def test_two_stacked_controlnets_match_multicontrolnet(home, ex):
    ref = reference(pipeline(home, ["cn_a", "cn_b"]), [0, 6], [1.0, 0.6], [0.0, 0.25], [1.0, 0.75])
    ours = run(ex, controls=[("cn_a", 0, 1.0, 0.0, 1.0), ("cn_b", 6, 0.6, 0.25, 0.75)])
    diff = (ours - ref).abs().max().item()
    log.info("two stacked ControlNets: max |Loom - MultiControlNet| = %.3g", diff)
    assert diff <= 1e-5, diff


def test_sdxl_graph_matches_sdxl_controlnet_pipeline(home, ex):
    ref = reference(pipeline(home, ["cn_xl"], model="tiny-xl", xl=True), [1], 0.9, 0.0, 1.0, steps=3, cfg=5.0)
    ours = run(ex, controls=[("cn_xl", 1, 0.9, 0.0, 1.0)], model="tiny-xl", steps=3, cfg=5.0)
    diff = (ours - ref).abs().max().item()
    log.info("SDXL ControlNet: max |Loom - diffusers| = %.3g", diff)
    assert diff <= 1e-5, diff


def test_strength_zero_and_cfg_one_paths(ex):
    assert torch.equal(run(ex, controls=[("cn_a", 0, 0.0, 0.0, 1.0)]), run(ex))
    a = run(ex, controls=[("cn_a", 0, 1.0, 0.0, 1.0)], cfg=1.0)
    assert (a - run(ex, cfg=1.0)).abs().max() > 1e-3


def test_wrong_family_and_bad_window_are_clear_errors(ex):
    with pytest.raises(NodeError) as err:
        ex.run(graph(controls=[("cn_xl", 0, 1.0, 0.0, 1.0)]))
    assert err.value.node == "s" and "ControlNet" in err.value.message
    with pytest.raises(NodeError) as err:
        ex.run(graph(controls=[("cn_a", 0, 1.0, 0.8, 0.2)]))
    assert err.value.node == "a0" and "end_percent" in err.value.message
    with pytest.raises(ValidationError):
        ex.run(graph(controls=[("missing", 0, 1.0, 0.0, 1.0)]))


# --- loading ----------------------------------------------------------------------------
_RES = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
        "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}


def controlnet_to_ldm(cn) -> dict:
    """diffusers ControlNetModel keys → the original ``control_model.`` layout."""
    per = cn.config.layers_per_block + 1
    out = {}
    for k, v in cn.state_dict().items():
        m = k
        for a, b in (("time_embedding.linear_1", "time_embed.0"), ("time_embedding.linear_2", "time_embed.2"),
                     ("conv_in", "input_blocks.0.0"), ("controlnet_mid_block", "middle_block_out.0"),
                     ("controlnet_cond_embedding.conv_in", "input_hint_block.0"),
                     ("controlnet_cond_embedding.conv_out", "input_hint_block.14")):
            if k.startswith(a + "."):
                m = b + k[len(a):]
        if g := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.([^.]+)\.(.*)", k):
            i, kind, j, head, rest = int(g[1]), g[2], int(g[3]), g[4], g[5]
            part = f"0.{_RES.get(head, head)}" if kind == "resnets" else f"1.{head}"
            m = f"input_blocks.{per * i + j + 1}.{part}.{rest}"
        elif g := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", k):
            m = f"input_blocks.{per * (int(g[1]) + 1)}.0.op.{g[2]}"
        elif g := re.match(r"mid_block\.resnets\.(\d+)\.([^.]+)\.(.*)", k):
            m = f"middle_block.{2 * int(g[1])}.{_RES.get(g[2], g[2])}.{g[3]}"
        elif k.startswith("mid_block.attentions.0."):
            m = "middle_block.1." + k[len("mid_block.attentions.0."):]
        elif g := re.match(r"controlnet_down_blocks\.(\d+)\.(.*)", k):
            m = f"zero_convs.{g[1]}.0.{g[2]}"
        elif g := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.*)", k):
            m = f"input_hint_block.{2 * (int(g[1]) + 1)}.{g[2]}"
        out["control_model." + m] = v.clone()
    return out


@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_single_file_loads_equal_to_the_folder(home, ex, layout):
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    cn = ControlNetModel.from_pretrained(home / "models" / "controlnet" / "cn_a", local_files_only=True)
    sd = controlnet_to_ldm(cn) if layout == "original" else {k: v.clone() for k, v in cn.state_dict().items()}
    path = home / "models" / "controlnet" / f"cn_a_{layout}.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    folder = run(ex, controls=[("cn_a", 0, 1.0, 0.0, 1.0)])
    single = run(ex, controls=[(path.name, 0, 1.0, 0.0, 1.0)])
    assert torch.equal(folder, single)


def test_not_a_controlnet_is_a_clear_error(home, ex):
    from safetensors.torch import save_file

    save_file({"foo.weight": torch.zeros(2)}, str(home / "models" / "controlnet" / "junk.safetensors"))
    with pytest.raises(NodeError) as err:
        ex.run(graph(controls=[("junk.safetensors", 0, 1.0, 0.0, 1.0)]))
    assert err.value.node == "cl0" and "not a ControlNet" in err.value.message


# --- preprocessors ----------------------------------------------------------------------
def square(size: int = 64, lo: int = 16, hi: int = 48) -> torch.Tensor:
    img = torch.zeros(1, 3, size, size)
    img[..., lo:hi, lo:hi] = 1.0
    return img


def test_canny_finds_the_square_edges():
    from loom_nodes.preprocessors import canny_edges

    out = canny_edges(square(), 0.1, 0.2, 1.0)
    assert out.shape == (1, 3, 64, 64) and out.dtype == torch.float32
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    edges = out[0, 0] > 0.5
    ys, xs = torch.nonzero(edges, as_tuple=True)
    assert ys.min() >= 14 and ys.max() <= 49 and xs.min() >= 14 and xs.max() <= 49  # on the outline
    assert not edges[24:40, 24:40].any() and not edges[:10].any()  # not inside, not far outside
    assert edges[15:17, 20:44].any(dim=0).all()  # the top side is found along its length


def test_soft_edges_lineart_scribble_tile_shapes_and_range():
    from loom.links import check_value
    from loom_nodes import preprocessors as P

    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 4, 40, 48, generator=g) * 0.05 + square(48)[:, :1, :40, :].expand(2, 4, -1, -1) * 0.9
    outs = {
        "sobel": P.soft_edges(img, "sobel", 1.0), "dog": P.soft_edges(img, "difference_of_gaussians", 1.0),
        "lineart": P.lineart_edges(img, 0.05, 0.15, 1.0, 0, False),
        "lineart_inv": P.lineart_edges(img, 0.05, 0.15, 1.0, 1, True),
        "scribble": P.scribble_hint(img, 0.5, True, 1), "tile": P.tile_hint(img, 4.0, 1.0),
    }
    for name, out in outs.items():
        assert out.shape == (2, 3, 40, 48), name
        assert out.min() >= 0 and out.max() <= 1, name
        assert check_value(Image, out) is None, name
    assert outs["sobel"].flatten(1).amax(1).tolist() == [1.0, 1.0]
    assert outs["lineart"].mean() < 0.2 and outs["lineart_inv"].mean() > 0.8  # thin lines, inverted
    tile = outs["tile"]
    assert (tile - img[:, :3]).abs().mean() < 0.2 and tile[..., 1:, :].sub(tile[..., :-1, :]).abs().mean() < \
        img[:, :3, 1:, :].sub(img[:, :3, :-1, :]).abs().mean()  # same colours, less detail


def test_scribble_thresholds_dark_strokes_to_white():
    from loom_nodes.preprocessors import scribble_hint

    paper = torch.ones(1, 3, 32, 32)
    paper[..., 10, 4:28] = 0.0
    out = scribble_hint(paper, 0.5, True, 0)
    assert out[0, 0, 10, 4:28].eq(1).all() and out[0, 0].sum() == 24


def test_preprocessor_bad_thresholds_are_user_errors():
    from loom import UserInputError
    from loom_nodes.preprocessors import canny_edges

    with pytest.raises(UserInputError) as err:
        canny_edges(square(), 0.5, 0.2, 1.0)
    assert err.value.input == "low_threshold"
