"""Single-file checkpoints of non-default sizes: the config is inferred from the tensors' shapes.

Tiny random-weight SD 1.x-, 2.x- and SDXL-style models with sizes unlike the shipped configs
(channels, levels, resnets per level, transformer depth, heads, latent channels, text widths
and depths, OpenCLIP layout) are written in the original key layout and loaded back with the
shipped family configs only.
"""
from __future__ import annotations

import logging
import re

import pytest
import torch
from safetensors.torch import save_file
from test_diffusion_single_file import _run_checkpoint, clip_to_ldm, unet_to_ldm, vae_to_ldm

from loom import NodeError
from loom_nodes._lib.diffusion.single_file import load_checkpoint_file

pytestmark = pytest.mark.usefixtures("one_thread")

_OPEN = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
         "self_attn.out_proj": "attn.out_proj"}


def open_clip_to_ldm(sd: dict, prefix: str, extra_block: bool = False) -> dict:
    """transformers CLIP keys → OpenCLIP keys under ``prefix`` (fused q/k/v, transposed projection).

    ``extra_block`` appends a random last block, as SD 2.x files hold one more block than the
    diffusers text encoder uses.
    """
    sd = {k.removeprefix("text_model."): v for k, v in sd.items() if not k.endswith("position_ids")}
    out = {"token_embedding.weight": sd.pop("embeddings.token_embedding.weight"),
           "positional_embedding": sd.pop("embeddings.position_embedding.weight"),
           "ln_final.weight": sd.pop("final_layer_norm.weight"), "ln_final.bias": sd.pop("final_layer_norm.bias")}
    if "text_projection.weight" in sd:
        out["text_projection"] = sd.pop("text_projection.weight").T.contiguous()
    n = 1 + max(int(re.match(r"encoder\.layers\.(\d+)\.", k)[1]) for k in sd)
    for i in range(n):
        p = f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            out[f"transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat(
                [sd.pop(f"{p}self_attn.{q}_proj.{kind}") for q in "qkv"])
        for k in [k for k in sd if k.startswith(p)]:
            head, _, leaf = k[len(p):].rpartition(".")
            out[f"transformer.resblocks.{i}.{_OPEN[head]}.{leaf}"] = sd.pop(k)
    assert not sd, list(sd)
    if extra_block:
        out.update({k.replace(f"resblocks.{n - 1}.", f"resblocks.{n}."): torch.randn_like(v)
                    for k, v in list(out.items()) if f"resblocks.{n - 1}." in k})
    return {prefix + k: v for k, v in out.items()}


def sdxl_unet_to_ldm(unet) -> dict:
    """``unet_to_ldm`` plus SDXL's size/pooled embedding (``add_embedding`` → ``label_emb.0``)."""
    sd = unet.state_dict()
    add = {k: sd.pop(k) for k in list(sd) if k.startswith("add_embedding.")}
    out = unet_to_ldm(sd, unet.config)
    for k, v in add.items():
        out["model.diffusion_model." + k.replace("add_embedding.linear_1", "label_emb.0.0")
            .replace("add_embedding.linear_2", "label_emb.0.2")] = v
    return out


def _clip(width: int, layers: int, act: str, projection: int | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(vocab_size=1000, hidden_size=width, intermediate_size=width + width // 2,
                         num_hidden_layers=layers, num_attention_heads=width // 64, max_position_embeddings=77,
                         bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_act=act,
                         projection_dim=projection or width)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg).eval()


def _vae(channels: tuple[int, ...], latent: int, layers: int, scaling: float):
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent, block_out_channels=channels,
                         down_block_types=("DownEncoderBlock2D",) * len(channels),
                         up_block_types=("UpDecoderBlock2D",) * len(channels), layers_per_block=layers,
                         norm_num_groups=32, scaling_factor=scaling).eval()


def build(arch: str) -> tuple[dict, dict]:
    """(original diffusers/transformers modules, their single-file state dict) for ``arch``."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed({"sd1": 1, "sd2": 2, "sdxl": 3}[arch])
    common = dict(sample_size=8, norm_num_groups=32)
    if arch == "sd1":     # 3 levels, 2 resnets each, depth-2 transformers, 6 latent channels, 3-layer CLIP
        m = {"unet": UNet2DConditionModel(
                in_channels=6, out_channels=6, layers_per_block=2, block_out_channels=(32, 64, 64),
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=64, attention_head_dim=8, transformer_layers_per_block=2, **common),
             "vae": _vae((32, 64, 64), 6, 1, 0.18215), "text_encoder": _clip(64, 3, "quick_gelu")}
        sd = {**unet_to_ldm(m["unet"].state_dict(), m["unet"].config), **clip_to_ldm(m["text_encoder"].state_dict())}
    elif arch == "sd2":   # 2 attention levels, 64-wide heads, linear projections, OpenCLIP text (+1 unused block)
        m = {"unet": UNet2DConditionModel(
                layers_per_block=1, block_out_channels=(64, 128),
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=128,
                attention_head_dim=[1, 2], use_linear_projection=True, **common),
             "vae": _vae((32, 64), 4, 2, 0.18215), "text_encoder": _clip(128, 2, "gelu")}
        sd = {**unet_to_ldm(m["unet"].state_dict(), m["unet"].config),
              **open_clip_to_ldm(m["text_encoder"].state_dict(), "cond_stage_model.model.", extra_block=True),
              "cond_stage_model.model.text_projection": torch.randn(128, 64)}
    else:                 # SDXL: depths (1, 1, 3), two encoders (64 + 128), 96-dim pooled projection
        m = {"unet": UNet2DConditionModel(
                layers_per_block=1, block_out_channels=(32, 64, 128),
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                cross_attention_dim=192, attention_head_dim=[1, 1, 2], transformer_layers_per_block=[1, 1, 3],
                use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=6 * 8 + 96, **common),
             "vae": _vae((32, 64), 4, 1, 0.13025), "text_encoder": _clip(64, 2, "quick_gelu"),
             "text_encoder_2": _clip(128, 2, "gelu", projection=96)}
        te1 = clip_to_ldm(m["text_encoder"].state_dict())
        sd = {**sdxl_unet_to_ldm(m["unet"]),
              **{k.replace("cond_stage_model.", "conditioner.embedders.0.", 1): v for k, v in te1.items()},
              **open_clip_to_ldm(m["text_encoder_2"].state_dict(), "conditioner.embedders.1.model.")}
    m["unet"].eval()
    sd.update(vae_to_ldm(m["vae"].state_dict(), len(m["vae"].config.block_out_channels)))
    return m, sd


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    home = tmp_path_factory.mktemp("infer")
    folder = home / "models" / "checkpoints"
    folder.mkdir(parents=True)
    out = {}
    for arch in ("sd1", "sd2", "sdxl"):
        models, sd = build(arch)
        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / f"{arch}-small.safetensors"))
        out[arch] = (models, folder / f"{arch}-small.safetensors", sd)
    return home, out


def _heads(module) -> list[int]:
    from diffusers.models.attention_processor import Attention

    return [a.heads for a in module.modules() if isinstance(a, Attention)]


def _same_module(ours, ref, keys: list[str]) -> None:
    for k in keys:
        assert getattr(ours.config, k) == getattr(ref.config, k) or list(getattr(ours.config, k)) == list(
            getattr(ref.config, k)), k
    a, b = ours.state_dict(), ref.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_non_default_sizes_load_back_equal(files, arch):
    _, built = files
    models, path, _ = built[arch]
    loaded = load_checkpoint_file(path, torch.device("cpu"), torch.float32, path.name)
    unet, ref = loaded.denoiser.unet, models["unet"]
    _same_module(unet, ref, ["in_channels", "out_channels", "block_out_channels", "layers_per_block",
                             "down_block_types", "up_block_types", "cross_attention_dim", "use_linear_projection"])
    assert _heads(unet) == _heads(ref)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, ref.config.in_channels, 8, 8, generator=g)
    ctx = torch.randn(1, 5, ref.config.cross_attention_dim, generator=g)
    kw = {}
    if arch == "sdxl":
        for k in ("addition_time_embed_dim", "projection_class_embeddings_input_dim"):
            assert getattr(unet.config, k) == getattr(ref.config, k)
        kw["added_cond_kwargs"] = {"text_embeds": torch.randn(1, 96, generator=g),
                                   "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    with torch.no_grad():
        assert torch.allclose(unet(x, 500, ctx, **kw).sample, ref(x, 500, ctx, **kw).sample, atol=1e-6)

    vae, vref = loaded.vae.vae, models["vae"]
    _same_module(vae, vref, ["latent_channels", "block_out_channels", "layers_per_block", "scaling_factor"])
    img = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(vae.encode(img).latent_dist.mean, vref.encode(img).latent_dist.mean, atol=1e-6)
    assert loaded.vae.latent_channels == vref.config.latent_channels == loaded.denoiser.latent_channels

    subs = ["text_encoder", "text_encoder_2"] if arch == "sdxl" else ["text_encoder"]
    assert len(loaded.text_encoder.parts) == len(subs)
    ids = torch.tensor([[0, 5, 9, 400, 7, 2, 1, 1]])
    for part, sub in zip(loaded.text_encoder.parts, subs):
        te, tref = part.model, models[sub]
        for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
            assert getattr(te.config, k) == getattr(tref.config, k), (sub, k)
        with torch.no_grad():
            a, b = te(ids, output_hidden_states=True), tref(ids, output_hidden_states=True)
        assert torch.allclose(a.last_hidden_state, b.last_hidden_state, atol=1e-6)
        assert torch.allclose(a.hidden_states[-2], b.hidden_states[-2], atol=1e-6)
        if sub == "text_encoder_2":
            assert part.pooled and torch.allclose(a.text_embeds, b.text_embeds, atol=1e-6)


@pytest.mark.parametrize("arch,title", [("sd1", "Stable Diffusion 1.x"), ("sd2", "Stable Diffusion 2.x"),
                                        ("sdxl", "Stable Diffusion XL")])
def test_detected_family_is_reported(files, caplog, arch, title):
    _, built = files
    models, path, _ = built[arch]
    with caplog.at_level(logging.INFO, logger="loom_nodes._lib.diffusion.single_file"):
        loaded = load_checkpoint_file(path, torch.device("cpu"), torch.float32, path.name)
    assert loaded.arch == arch and loaded.info["arch"] == arch and loaded.info["title"] == title
    assert loaded.info["inferred"]["unet"]["block_out_channels"] == list(models["unet"].config.block_out_channels)
    line = next(r.getMessage() for r in caplog.records if "detected" in r.getMessage())
    assert line.startswith(f"{path.name}: detected {title} ({arch})") and "unet.block_out_channels" in line
    assert loaded.text_encoder.family == ("sdxl" if arch == "sdxl" else "clip")


def test_load_checkpoint_node_decodes_with_the_inferred_vae(files):
    """Through the node: an empty latent shaped by the inferred VAE (6 channels, ×4) decodes."""
    import importlib

    from loom import Executor, Registry, Settings

    home, _ = files
    reg = Registry()
    for module in ("loom_nodes.diffusion_loaders", "loom_nodes.vae_nodes", "loom_nodes.latents",
                   "test_diffusion_single_file"):
        importlib.import_module(module)
        reg.add_module(module)
    wf = {"nodes": {
        "c": {"type": "load_checkpoint", "inputs": {"checkpoint": "sd1-small.safetensors"}},
        "e": {"type": "empty_latent", "inputs": {"width": 32, "height": 32, "vae": {"node": "c", "output": "vae"}}},
        "d": {"type": "vae_decode", "inputs": {"vae": {"node": "c", "output": "vae"},
                                               "latent": {"node": "e", "output": "latent"}}},
        "o": {"type": "keep_single_file_image", "inputs": {"images": {"node": "d", "output": "image"}}}}}
    result = Executor(reg, settings=Settings(home=home)).run(wf)
    image = next(iter(result.outputs["o"].values()))
    pixels = getattr(image, "tensor", image)
    assert tuple(pixels.shape[-3:]) == (3, 32, 32)


def test_vae_single_file_of_other_size(files, tmp_path):
    """``load_vae`` files (bare LDM VAE keys) are sized from their tensors too."""
    from loom_nodes._lib.diffusion.single_file import load_vae_file

    _, built = files
    models, _, sd = built["sd1"]
    vae_sd = {k.removeprefix("first_stage_model."): v for k, v in sd.items() if k.startswith("first_stage_model.")}
    path = tmp_path / "small-vae.safetensors"
    save_file({k: v.contiguous() for k, v in vae_sd.items()}, str(path))
    vae = load_vae_file(path, torch.float32, path.name)
    _same_module(vae.vae, models["vae"], ["latent_channels", "block_out_channels", "layers_per_block"])
    assert vae.latent_channels == 6 and vae.downscale == 4


def _broken(sd: dict, arch: str) -> dict:
    if arch == "uneven":   # the second level loses a resnet: levels of 2, 1 and 2
        sd = {k: v for k, v in sd.items() if ".input_blocks.5." not in k}
        return {re.sub(r"input_blocks\.(\d+)\.", lambda g: f"input_blocks.{int(g[1]) - (int(g[1]) > 5)}.", k): v
                for k, v in sd.items()}
    if arch == "unet-only":
        return {k: v for k, v in sd.items() if k.startswith("model.diffusion_model.")}
    return {k: (v[:, :48] if k.endswith("attn2.to_k.weight") and "input_blocks.1." in k else v)
            for k, v in sd.items()}


@pytest.mark.parametrize("case,expect", [
    ("uneven", "unrecognised UNet layout: resnets per level [2, 1, 2]"),
    ("unet-only", "no text encoder recognised"),
    ("cross", "different context widths [48, 64]"),
])
def test_unknown_layouts_are_clear_errors(files, case, expect):
    home, built = files
    name = f"broken-{case}.safetensors"
    sd = _broken(dict(built["sd1"][2]), case)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(home / "models" / "checkpoints" / name))
    with pytest.raises(NodeError) as err:
        _run_checkpoint(home, name)
    assert err.value.node == "c" and name in err.value.message and expect in err.value.message
    assert "Traceback" not in err.value.message and "size mismatch" not in err.value.message


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_real_sizes_infer_exactly_the_shipped_configs(arch):
    """Shapes of the real SD 1.5 / 2.x / SDXL models (built on the meta device) change nothing."""
    import json

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from loom_nodes._lib.diffusion.infer_config import (FAMILIES, detect_family, infer_clip, infer_unet,
                                                        infer_vae, vae_prefix)
    from loom_nodes._lib.diffusion.single_file import CONFIGS

    def cfg(sub):
        return json.loads((CONFIGS / arch / sub / "config.json").read_text())

    with torch.device("meta"):
        unet, vae = UNet2DConditionModel.from_config(cfg("unet")), AutoencoderKL.from_config(cfg("vae"))
        sd = sdxl_unet_to_ldm(unet) if arch == "sdxl" else unet_to_ldm(unet.state_dict(), unet.config)
        sd.update(vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels)))
        for lay in FAMILIES[arch]:
            c = cfg(lay.subfolder)
            cls = CLIPTextModelWithProjection if c["architectures"][0].endswith("Projection") else CLIPTextModel
            state = cls(CLIPTextConfig(**c)).state_dict()
            if lay.open_clip:
                sd.update(open_clip_to_ldm(state, lay.prefix, extra_block=lay.drop_last > 0))
            else:
                sd.update({lay.prefix + k.removeprefix("cond_stage_model.transformer."): v
                           for k, v in clip_to_ldm(state).items()})
    assert detect_family(sd) == arch
    pooled = None
    for lay in FAMILIES[arch]:
        te_cfg, changed = infer_clip(sd, lay, cfg(lay.subfolder))
        assert changed == {}, lay.subfolder
        pooled = te_cfg["projection_dim"]
    assert infer_unet(sd, cfg("unet"), pooled if arch == "sdxl" else None)[1] == {}
    assert infer_vae(sd, vae_prefix(sd), cfg("vae"))[1] == {}
