"""Single-file SD checkpoints: tiny weights written in the original (LDM) key layout and loaded back."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from loom import Executor, NodeError, Registry, Settings, node
from loom.types import Image
from loom_nodes._lib.diffusion.loading import ModelLoadError
from loom_nodes._lib.diffusion.single_file import CONFIGS, detect_architecture, load_checkpoint_file, read_state_dict
from loom_nodes._lib.diffusion.tiny import save_diffusers, tiny_models

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}


def _res(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_RESNET.get(head, head)}.{tail}"


def unet_to_ldm(sd: dict, config) -> dict:
    """Diffusers UNet keys → original SD keys (the inverse of diffusers' single-file conversion)."""
    per = config.layers_per_block + 1
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    out = {}
    for k, v in sd.items():
        m = None
        for a, b in fixed.items():
            if k.startswith(a + "."):
                m = b + k[len(a):]
        if m is None and (g := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k)):
            i, kind, j, rest = int(g[1]), g[2], int(g[3]), g[4]
            m = f"input_blocks.{per * i + j + 1}." + (f"0.{_res(rest)}" if kind == "resnets" else f"1.{rest}")
        elif m is None and (g := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", k)):
            m = f"input_blocks.{per * (int(g[1]) + 1)}.0.op.{g[2]}"
        elif m is None and (g := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", k)):
            m = f"middle_block.{2 * int(g[1])}.{_res(g[2])}"
        elif m is None and k.startswith("mid_block.attentions.0."):
            m = "middle_block.1." + k[len("mid_block.attentions.0."):]
        elif m is None and (g := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k)):
            i, kind, j, rest = int(g[1]), g[2], int(g[3]), g[4]
            m = f"output_blocks.{per * i + j}." + (f"0.{_res(rest)}" if kind == "resnets" else f"1.{rest}")
        elif m is None and (g := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", k)):
            i = int(g[1])
            slot = 1 if config.up_block_types[i] == "UpBlock2D" else 2
            m = f"output_blocks.{per * i + per - 1}.{slot}.conv.{g[2]}"
        assert m is not None, k
        out["model.diffusion_model." + m] = v
    return out


def vae_to_ldm(sd: dict, n_blocks: int) -> dict:
    """Diffusers AutoencoderKL keys → original SD keys."""
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for k, v in sd.items():
        m = k.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        m = re.sub(r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block.", m)
        m = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample.", m)
        m = re.sub(r"up_blocks\.(\d+)\.resnets\.", lambda g: f"up.{n_blocks - 1 - int(g[1])}.block.", m)
        m = re.sub(r"up_blocks\.(\d+)\.upsamplers\.0\.", lambda g: f"up.{n_blocks - 1 - int(g[1])}.upsample.", m)
        m = re.sub(r"mid_block\.resnets\.(\d+)\.", lambda g: f"mid.block_{int(g[1]) + 1}.", m)
        if "mid_block.attentions.0." in m:
            m = m.replace("mid_block.attentions.0.", "mid.attn_1.")
            for a, b in attn.items():
                m = m.replace(f"attn_1.{a}.", f"attn_1.{b}.")
            if v.ndim == 2:
                v = v[:, :, None, None]
        out["first_stage_model." + m] = v
    return out


def clip_to_ldm(sd: dict) -> dict:
    """transformers CLIPTextModel keys → SD 1.x ``cond_stage_model.transformer.text_model.*``."""
    return {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
            for k, v in sd.items()}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    models = tiny_models(seed=4)
    folder = save_diffusers(root / "tiny-config", models)
    (folder / "loom.json").write_text(json.dumps({"tokenizers": {"tokenizer": "<|endoftext|>"}}))
    sd = {**unet_to_ldm(models["unet"].state_dict(), models["unet"].config),
          **vae_to_ldm(models["vae"].state_dict(), len(models["vae"].config.block_out_channels)),
          **clip_to_ldm(models["text_encoder"].state_dict())}
    path = root / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return models, folder, path


def test_single_file_loads_back_the_same_weights(tiny):
    models, folder, path = tiny
    assert detect_architecture(read_state_dict(path)) == "sd1"
    loaded = load_checkpoint_file(path, torch.device("cpu"), torch.float32, "tiny", config_dir=folder)
    for ours, ref in ((loaded.denoiser.unet, models["unet"]), (loaded.vae.vae, models["vae"])):
        a, b = ours.state_dict(), ref.state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    ids = torch.tensor([[0, 5, 6, 7, 1]])
    te = loaded.text_encoder.parts[0].model
    assert torch.allclose(te(ids).last_hidden_state, models["text_encoder"](ids).last_hidden_state)
    assert loaded.vae.family == "sd1" and loaded.denoiser.family == "sd1"


@pytest.mark.parametrize("arch,unet,vae,te", [
    ("sd1", 859_520_964, 83_653_863, [123_060_480]),
    ("sd2", 865_910_724, 83_653_863, [340_387_840]),
    ("sdxl", 2_567_463_684, 83_653_863, [123_060_480, 694_659_840]),
])
def test_shipped_configs_have_the_real_architectures(arch, unet, vae, te):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def count(m):
        return sum(p.numel() for p in m.parameters())

    cfg = CONFIGS / arch
    with torch.device("meta"):
        assert count(UNet2DConditionModel.from_config(json.loads((cfg / "unet/config.json").read_text()))) == unet
        assert count(AutoencoderKL.from_config(json.loads((cfg / "vae/config.json").read_text()))) == vae
        for sub, n in zip(["text_encoder", "text_encoder_2"], te):
            c = json.loads((cfg / sub / "config.json").read_text())
            cls = CLIPTextModelWithProjection if c["architectures"][0].endswith("Projection") else CLIPTextModel
            assert count(cls(CLIPTextConfig(**c))) == n


@node(output=True)
def keep_single_file_image(images: Image) -> Image:
    """Test output: hand the images back."""
    return images


def _run_checkpoint(home: Path, name: str):
    import loom_nodes.diffusion_loaders  # noqa: F401
    import loom_nodes.latents  # noqa: F401
    import loom_nodes.vae_nodes  # noqa: F401
    reg = Registry()
    reg.add_module("loom_nodes.diffusion_loaders")
    reg.add_module("loom_nodes.vae_nodes")
    reg.add_module("loom_nodes.latents")
    reg.add_module(__name__)
    wf = {"nodes": {
        "c": {"type": "load_checkpoint", "inputs": {"checkpoint": name}},
        "e": {"type": "empty_latent", "inputs": {"width": 64, "height": 64}},
        "d": {"type": "vae_decode", "inputs": {"vae": {"node": "c", "output": "vae"},
                                               "latent": {"node": "e", "output": "latent"}}},
        "o": {"type": "keep_single_file_image", "inputs": {"images": {"node": "d", "output": "image"}}}}}
    return Executor(reg, settings=Settings(home=home)).run(wf)


class NotAllowed:
    """A class weights_only unpickling refuses to build."""


@pytest.mark.parametrize("name,content,expect", [
    ("corrupt.safetensors", b"\x10\x00\x00\x00garbage", "not a readable .safetensors"),
    ("pickled.ckpt", None, "unsafe pickle"),
    ("unknown.safetensors", {"some.other.weight": torch.zeros(2)}, "unknown checkpoint architecture"),
])
def test_bad_checkpoints_are_clear_errors(tmp_path, name, content, expect):
    folder = tmp_path / "models" / "checkpoints"
    folder.mkdir(parents=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        save_file(content, str(path))
    else:
        torch.save({"state_dict": NotAllowed()}, str(path))  # needs arbitrary pickle code
    with pytest.raises(NodeError) as err:
        _run_checkpoint(tmp_path, name)
    assert err.value.node == "c" and "checkpoint" in err.value.message and expect in err.value.message


def test_read_state_dict_accepts_weights_only_ckpt(tmp_path):
    path = tmp_path / "w.ckpt"
    torch.save({"state_dict": {"a": torch.ones(2)}}, str(path))
    assert torch.equal(read_state_dict(path)["a"], torch.ones(2))
    with pytest.raises(ModelLoadError):
        read_state_dict(tmp_path / "missing.safetensors")
