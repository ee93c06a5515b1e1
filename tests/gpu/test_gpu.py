"""Loom on a CUDA GPU: device choice, half precision vs fp32, CPU/GPU same seed, OOM retry, tiled VAE.

Skipped without CUDA (see conftest.py). Tiny random-weight models built in code, except the
tiled-decode test, which uses SD 1.5's real VAE architecture at 2048².
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from loom import Executor, Registry, Settings
from loom.devices import resolve_device, resolve_dtype
from loom.model_manager import ModelManager
from loom_nodes._lib.diffusion.components import DiffusionVAE
from loom_nodes._lib.diffusion.tiny import save_diffusers, tiny_models

CONFIGS = Path(__file__).resolve().parents[2] / "nodes" / "loom_nodes" / "_lib" / "configs"
MODULES = ["loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling",
           "loom_nodes.latents", "loom_nodes.vae_nodes", "loom_nodes.image_save"]


def _link(n: str, o: str) -> dict[str, str]:
    return {"node": n, "output": o}


def _workflow(seed: int = 7) -> dict:
    return {"nodes": {
        "m": {"type": "load_diffusers_model", "inputs": {"model": "tiny"}},
        "p": {"type": "text_encode", "inputs": {"encoder": _link("m", "text_encoder"), "text": "a red circle"}},
        "n": {"type": "text_encode", "inputs": {"encoder": _link("m", "text_encoder"), "text": ""}},
        "e": {"type": "empty_latent", "inputs": {"width": 64, "height": 64, "batch": 2, "vae": _link("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": "euler"}},
        "s": {"type": "sample", "inputs": {"denoiser": _link("m", "denoiser"), "positive": _link("p", "conditioning"),
                                           "negative": _link("n", "conditioning"), "latent": _link("e", "latent"),
                                           "scheduler": _link("sc", "scheduler"), "steps": 6, "cfg": 5.0,
                                           "seed": seed}},
        "d": {"type": "vae_decode", "inputs": {"vae": _link("m", "vae"), "latent": _link("s", "latent")}},
    }}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("gpu_home")
    save_diffusers(h / "models" / "diffusers" / "tiny", tiny_models(seed=0))
    return h


def _image(home: Path, device: str, precision: str) -> torch.Tensor:
    import importlib
    reg = Registry()
    for m in MODULES:
        importlib.import_module(m)
        reg.add_module(m)
    ex = Executor(reg, settings=Settings(home=home, device=device, precision=precision))
    try:
        return ex.run(_workflow()).outputs["d"]["image"]
    finally:
        ex.models.unload_all()


def test_auto_device_is_cuda_and_auto_precision_fp16(cuda: torch.device) -> None:
    assert resolve_device("auto").type == "cuda"
    assert resolve_dtype("auto", cuda) == torch.float16
    assert resolve_dtype("bf16", cuda) == torch.bfloat16


def test_run_on_gpu_keeps_outputs_on_cpu(home: Path) -> None:
    img = _image(home, "cuda", "fp16")
    assert img.device.type == "cpu" and img.dtype == torch.float32  # cached values never pin GPU memory
    assert torch.isfinite(img).all() and img.shape == (2, 3, 64, 64)


@pytest.mark.parametrize("precision,mean_tol,max_tol", [("fp16", 5e-3, 0.06), ("bf16", 2e-2, 0.2)])
def test_half_precision_close_to_fp32(home: Path, precision: str, mean_tol: float, max_tol: float) -> None:
    ref = _image(home, "cuda", "fp32")
    got = _image(home, "cuda", precision)
    diff = (got - ref).abs()
    assert diff.mean().item() < mean_tol, f"{precision}: mean |Δ| {diff.mean().item():.4f}"
    assert diff.max().item() < max_tol, f"{precision}: max |Δ| {diff.max().item():.4f}"


def test_same_seed_same_image_on_cpu_and_gpu(home: Path) -> None:
    """Noise is drawn on the CPU, so a GPU run in fp32 matches the CPU up to kernel rounding."""
    cpu = _image(home, "cpu", "fp32")
    gpu = _image(home, "cuda", "fp32")
    assert (gpu - cpu).abs().max().item() < 1e-3
    half = _image(home, "cuda", "fp16")
    assert (half - cpu).abs().mean().item() < 5e-3


def test_out_of_memory_moving_a_model_offloads_the_others_and_retries(
        cuda: torch.device, caplog: pytest.LogCaptureFixture) -> None:
    mm = ModelManager(cuda, torch.float16, budget_bytes=1000 * 2**30)  # no budget eviction: a real OOM
    big = mm.load("big", lambda: torch.nn.Linear(32768, 32768, dtype=torch.float16), "big")      # 2 GiB
    new = mm.load("new", lambda: torch.nn.Linear(16384, 32768, dtype=torch.float16), "new")      # 1 GiB
    with mm.use(big):
        pass
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(cuda)
    blocker = torch.empty(max(free - 2**29, 0), dtype=torch.uint8, device=cuda)  # 0.5 GiB left: "new" does not fit
    try:
        with caplog.at_level(logging.WARNING, logger="loom.model_manager"), mm.use(new):
            assert new.weight.device.type == "cuda"
        assert big.weight.device.type == "cpu"
        assert any("out of memory" in r.getMessage() for r in caplog.records)
    finally:
        del blocker
        mm.unload_all()
        torch.cuda.empty_cache()


def _sd1_vae(device: torch.device, dtype: torch.dtype) -> DiffusionVAE:
    from diffusers import AutoencoderKL
    cfg = json.loads((CONFIGS / "sd1" / "vae" / "config.json").read_text())
    torch.manual_seed(0)
    with torch.device(device):
        vae = AutoencoderKL.from_config({k: v for k, v in cfg.items() if not k.startswith("_")}).to(dtype).eval()
    return DiffusionVAE(vae, "sd1-vae")


def test_tiled_vae_decode_at_2048_uses_less_memory(cuda: torch.device) -> None:
    vae = _sd1_vae(cuda, torch.float16)
    mm = ModelManager(cuda, torch.float16)
    lat = torch.randn(1, 4, 256, 256, generator=torch.Generator().manual_seed(0))
    peaks = {}
    images = {}
    for tile in (0, 512):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(cuda)
        with torch.no_grad():
            images[tile] = vae.decode(lat, mm, cuda, tile=tile)
        peaks[tile] = torch.cuda.max_memory_allocated(cuda)
    assert images[512].shape == (1, 3, 2048, 2048) and torch.isfinite(images[512]).all()
    assert peaks[512] < peaks[0] / 2, f"tiled peak {peaks[512] / 2**30:.2f} GiB vs whole {peaks[0] / 2**30:.2f} GiB"
    assert (images[512] - images[0]).abs().mean().item() < 0.1


def test_fp16_vae_overflow_is_redone_in_fp32(cuda: torch.device, caplog: pytest.LogCaptureFixture) -> None:
    vae = _sd1_vae(cuda, torch.float16)
    with torch.no_grad():
        vae.vae.decoder.conv_out.weight.mul_(3e4)  # overflows fp16 (max 65504), fine in fp32
    mm = ModelManager(cuda, torch.float16)
    lat = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with caplog.at_level(logging.WARNING), torch.no_grad():
        img = vae.decode(lat, mm, cuda)
    assert torch.isfinite(img).all()
    assert any("redoing it in float32" in r.getMessage() for r in caplog.records)
    assert next(vae.vae.parameters()).dtype == torch.float16  # back in its own dtype afterwards
