"""--compile / --channels-last (accel.py): CUDA-only, and never changing the shared denoiser."""
from __future__ import annotations

import pytest
import torch

from loom import Settings
from loom.cli import build_parser, settings_from_args
from loom_nodes._lib.diffusion import accel
from loom_nodes._lib.diffusion.components import DiffusionDenoiser


def _denoiser() -> DiffusionDenoiser:
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=8,
                                attention_head_dim=2)
    return DiffusionDenoiser(unet, {"prediction_type": "epsilon"}, "sd1")


def test_options_do_nothing_off_cuda() -> None:
    den = _denoiser()
    assert accel.for_run(den, den.unet, torch.device("cpu"), Settings(compile="default", channels_last=True)) is den
    assert not getattr(den.unet, "_loom_channels_last", False)


def test_compile_gives_a_copy_calling_a_compiled_wrapper_of_the_same_module() -> None:
    den = _denoiser()
    run = accel.for_run(den, den.unet, torch.device("cuda"), Settings(compile="default"))
    assert run is not den and den.runner is None  # the cached wrapper is untouched
    assert run.runner._orig_mod is den.unet  # same weights: LoRA patches and offload still apply
    again = accel.for_run(den, den.unet, torch.device("cuda"), Settings(compile="default"))
    assert again.runner is run.runner  # compiled once per module and mode
    assert accel.for_run(den, den.unet, torch.device("cuda"), Settings()) is den


def test_compiled_wrapper_computes_what_the_module_does() -> None:
    den = _denoiser()
    run = accel.for_run(den, den.unet, torch.device("cuda"), Settings(compile="default"))
    x, t = torch.randn(1, 4, 8, 8), torch.tensor(10)
    cond = {"encoder_hidden_states": torch.randn(1, 3, 8)}
    with torch.no_grad():
        assert torch.allclose(run(x, t, cond), den(x, t, cond), atol=1e-5)


def test_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="compile mode"):
        accel.compiled(torch.nn.Linear(2, 2), "fastest")


def test_cli_flags_reach_settings() -> None:
    ns = build_parser().parse_args(["validate", "x.json", "--compile", "--channels-last"])
    s = settings_from_args(ns)
    assert (s.compile, s.channels_last) == ("default", True)
    assert settings_from_args(build_parser().parse_args(["validate", "x.json"])).compile == "off"
