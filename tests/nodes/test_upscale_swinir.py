"""SwinIR upscale models: file round trip, hyper-parameter detection, tiled inference, the node."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from loom import UserInputError
from loom_nodes._lib.upscale import SwinIR, SwinIRConfig, run_tiled
from loom_nodes._lib.upscale.swinir import detect, relative_index, shift_mask
from loom_nodes.upscale import LoadedUpscaler, read_upscaler, upscale_with_model

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = SwinIRConfig(in_ch=3, embed_dim=12, depths=(2, 2), num_heads=(2, 3), window_size=4, mlp_ratio=2.0,
                    scale=2, upsampler="pixelshuffledirect")


def tiny(cfg: SwinIRConfig = TINY, seed: int = 0) -> SwinIR:
    """A random SwinIR whose bias tables and norms are random too (their defaults hide mistakes)."""
    torch.manual_seed(seed)
    net = SwinIR(cfg)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "relative_position_bias_table" in name or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if name.endswith("norm.weight") else 0.0))
    return net.eval()


def published_state(net: SwinIR) -> dict[str, torch.Tensor]:
    """The weights as the published files hold them: with the derived buffers (index, shift masks)."""
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    ws = net.cfg.window_size
    for i, depth in enumerate(net.cfg.depths):
        for j in range(depth):
            pre = f"layers.{i}.residual_group.blocks.{j}."
            sd[pre + "attn.relative_position_index"] = relative_index(ws)
            if j % 2:
                sd[pre + "attn_mask"] = shift_mask(16, 16, ws, ws // 2)
    return sd


def ctx():
    """A real Context for calling a node function directly."""
    from loom import Settings
    from loom.context import Context
    from loom.model_manager import ModelManager
    cpu = torch.device("cpu")
    return Context(node_id="u", node_type="upscale_with_model", run_id="r", settings=Settings(), device=cpu,
                   dtype=torch.float32, models=ModelManager(cpu, torch.float32), interrupt_event=threading.Event(),
                   workflow={}, run_info={})


def test_file_round_trip_gives_the_same_network_and_output(tmp_path: Path):
    net = tiny()
    save_file(published_state(net), str(tmp_path / "swinir_x2.safetensors"))
    up = read_upscaler(tmp_path / "swinir_x2.safetensors")
    assert up.arch == "SwinIR" and up.module.cfg == TINY
    assert (up.scale, up.in_channels, up.out_channels, up.multiple) == (2, 3, 3, 4)
    x = torch.rand(1, 3, 20, 16)
    with torch.no_grad():
        assert torch.equal(up.module(x), net(x))
        assert net(x).shape == (1, 3, 40, 32)
        assert net(torch.rand(1, 3, 18, 13)).shape == (1, 3, 36, 26)  # reflect-padded to the window, cropped


@pytest.mark.parametrize("cfg", [
    TINY,
    SwinIRConfig(in_ch=3, embed_dim=16, depths=(2, 3, 1), num_heads=(4, 2, 8), window_size=8, mlp_ratio=4.0,
                 scale=4, upsampler="pixelshuffle", num_feat=8),
    SwinIRConfig(in_ch=3, embed_dim=12, depths=(2,), num_heads=(3,), window_size=2, mlp_ratio=2.0, scale=3,
                 upsampler="pixelshuffle", num_feat=8, resi_connection="3conv", qkv_bias=False),
    SwinIRConfig(in_ch=3, embed_dim=12, depths=(2,), num_heads=(2,), window_size=4, mlp_ratio=2.0, scale=4,
                 upsampler="nearest+conv", num_feat=8, patch_norm=False),
    SwinIRConfig(in_ch=1, embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, mlp_ratio=1.5, scale=3,
                 upsampler="pixelshuffledirect"),
])
def test_hyper_parameters_are_detected(cfg: SwinIRConfig):
    net = tiny(cfg)
    assert detect(published_state(net)) == cfg
    x = torch.rand(1, cfg.in_ch, 8, 12)
    with torch.no_grad():
        assert net(x).shape == (1, cfg.in_ch, 8 * cfg.scale, 12 * cfg.scale)


def test_tiled_equals_untiled_with_enough_overlap():
    # reach: 4 blocks × (window − 1) + 5 convs = 17 input px ≤ overlap / 4
    net = tiny()
    x = torch.rand(1, 3, 248, 232)
    with torch.no_grad():
        whole = net(x)
        tiles = run_tiled(net, x, 2, 3, tile=152, overlap=72, multiple=4)
    diff = (tiles - whole).abs().max().item()
    assert diff <= 1e-5, diff


def test_node_upscales_odd_sizes_and_rgba():
    up = LoadedUpscaler(tiny(), "SwinIR", "tiny")
    out = upscale_with_model(ctx(), up, torch.rand(1, 4, 30, 26), tile=64, overlap=16)
    assert out.shape == (1, 4, 60, 52) and out.min() >= 0 and out.max() <= 1
    image = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        assert torch.allclose(upscale_with_model(ctx(), up, image, tile=512, overlap=0), up.module(image).clamp(0, 1),
                              atol=1e-6)


def test_unsupported_swinir_files_are_named_errors(tmp_path: Path):
    sd = published_state(tiny())
    del sd["upsample.0.weight"], sd["upsample.0.bias"]
    save_file(sd, str(tmp_path / "denoise.safetensors"))
    with pytest.raises(UserInputError, match="without an upsampler") as err:
        read_upscaler(tmp_path / "denoise.safetensors")
    assert err.value.input == "name"
    sd = published_state(tiny())
    sd["layers.0.residual_group.blocks.0.mlp.fc2.weight"] = torch.zeros(5, 5)
    save_file(sd, str(tmp_path / "broken.safetensors"))
    with pytest.raises(UserInputError, match="do not fit"):
        read_upscaler(tmp_path / "broken.safetensors")
