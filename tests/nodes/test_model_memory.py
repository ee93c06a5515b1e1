"""Loaded models in CPU RAM: loaded once, under a budget with LRU eviction, counted once."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import safetensors.torch
import torch
from safetensors.torch import save_file

import loom_nodes.diffusion_loaders
import loom_nodes.features
import loom_nodes.gan
from loom import Executor, Registry, Settings, node
from loom.model_manager import ModelManager, module_bytes
from loom.types import VAE, Denoiser, FeatureExtractor, Generator, TextEncoder
from loom_nodes._lib import feature_nets
from loom_nodes._lib.dcgan import DCGANGenerator
from loom_nodes._lib.diffusion.loading import Loaded

GIB = 1 << 30


@node(id="mm_keep_denoiser", output=True)
def keep_denoiser(denoiser: Denoiser) -> None:
    """Consume a denoiser (test helper)."""


@node(id="mm_keep_vae", output=True)
def keep_vae(vae: VAE) -> None:
    """Consume a VAE (test helper)."""


@node(id="mm_keep_generator", output=True)
def keep_generator(generator: Generator) -> Generator:
    """Hand the generator back as a run output (test helper)."""
    return generator


@node(id="mm_keep_extractor", output=True)
def keep_extractor(extractor: FeatureExtractor) -> FeatureExtractor:
    """Hand the extractor back as a run output (test helper)."""
    return extractor


class _FakeModel(torch.nn.Linear, Denoiser, TextEncoder, VAE):
    """A tiny module that passes the executor's output check for the diffusion sockets."""


def _registry() -> Registry:
    reg = Registry()
    for module in ("loom_nodes.diffusion_loaders", "loom_nodes.gan", "loom_nodes.features", __name__):
        reg.add_module(module)
    return reg


def _touch(path: Path) -> None:
    """Make ``path`` look edited (a newer mtime)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def disk_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every safetensors file read from disk, by path."""
    reads: list[str] = []
    real = safetensors.torch.load_file

    def counting(filename: Any, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        reads.append(Path(filename).name)
        return real(filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "load_file", counting)
    monkeypatch.setattr(loom_nodes.gan, "load_file", counting)
    return reads


# --- the diffusion loaders' cache key ---------------------------------------------------------
@pytest.fixture
def diffusion_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkpoint and a VAE file; the loaders read them from disk but build tiny stand-ins."""
    for kind, name in (("checkpoints", "tiny.safetensors"), ("vae", "tiny_vae.safetensors")):
        folder = tmp_path / "models" / kind
        folder.mkdir(parents=True)
        save_file({"w": torch.ones(4)}, str(folder / name))

    def checkpoint(path: Path, device: torch.device, dtype: torch.dtype, name: str,
                   prediction: str = "auto") -> Loaded:
        safetensors.torch.load_file(str(path))
        return Loaded(_FakeModel(2, 2), _FakeModel(2, 2), _FakeModel(2, 2))  # type: ignore[arg-type]

    def vae(path: Path, device: torch.device, dtype: torch.dtype, name: str, family: str = "auto") -> Any:
        safetensors.torch.load_file(str(path))
        return _FakeModel(2, 2)

    monkeypatch.setattr(loom_nodes.diffusion_loaders, "load_checkpoint_file", checkpoint)
    monkeypatch.setattr(loom_nodes.diffusion_loaders, "load_vae_path", vae)
    return tmp_path


@pytest.mark.parametrize("options", [{}, {"prediction": "v_prediction"}])
def test_load_checkpoint_reads_the_file_once(diffusion_home: Path, disk_reads: list[str],
                                             options: dict[str, str]) -> None:
    ex = Executor(_registry(), settings=Settings(home=diffusion_home))
    wf = {"nodes": {"c": {"type": "load_checkpoint", "inputs": {"checkpoint": "tiny.safetensors", **options}},
                    "o": {"type": "mm_keep_denoiser", "inputs": {"denoiser": {"node": "c", "output": "denoiser"}}}}}
    ex.run(wf)
    ex.cache.clear()  # as if the output cache had let the loader's outputs go
    assert "c" in ex.run(wf).executed
    assert disk_reads == ["tiny.safetensors"], "the second run must take the models from the manager"
    assert len([k for k in ex.models.keys() if "tiny.safetensors#" in k]) == 3
    _touch(diffusion_home / "models/checkpoints/tiny.safetensors")
    ex.run(wf)
    assert disk_reads == ["tiny.safetensors"] * 2, "an edited file is read again"
    assert len([k for k in ex.models.keys() if "tiny.safetensors#" in k]) == 3, "the old version is forgotten"


def test_load_vae_reads_the_file_once(diffusion_home: Path, disk_reads: list[str]) -> None:
    ex = Executor(_registry(), settings=Settings(home=diffusion_home))
    wf = {"nodes": {"v": {"type": "load_vae", "inputs": {"vae": "tiny_vae.safetensors", "latent_space": "sd1"}},
                    "o": {"type": "mm_keep_vae", "inputs": {"vae": {"node": "v", "output": "vae"}}}}}
    ex.run(wf)
    ex.cache.clear()
    assert "v" in ex.run(wf).executed
    assert disk_reads == ["tiny_vae.safetensors"]


# --- GAN loaders: RAM budget, LRU, counted once -----------------------------------------------
def _save_gan(folder: Path, seed: int) -> int:
    torch.manual_seed(seed)
    module = DCGANGenerator(z_dim=8, image_size=16, base_channels=32)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(module.config()))
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / "generator.safetensors"))
    return module_bytes(module)


@pytest.fixture
def gan_home(tmp_path: Path) -> tuple[Path, int]:
    size = _save_gan(tmp_path / "models/gan/g1", 1)
    _save_gan(tmp_path / "models/gan/g2", 2)
    return tmp_path, size


def _gan_wf(name: str) -> dict[str, Any]:
    return {"nodes": {"g": {"type": "load_gan", "inputs": {"name": name}},
                      "o": {"type": "mm_keep_generator", "inputs": {"generator": {"node": "g", "output": "generator"}}}}}


def test_gan_models_live_under_the_ram_budget_lru(gan_home: tuple[Path, int], disk_reads: list[str]) -> None:
    home, size = gan_home
    ex = Executor(_registry(), settings=Settings(home=home, ram_budget_gb=1.5 * size / GIB))
    g1 = ex.run(_gan_wf("g1")).outputs["o"]["generator"]
    ex.run(_gan_wf("g2"))
    keys = ex.models.keys()
    assert len(keys) == 1 and ex.models.owner_of(g1.module) is None, "g1 was released for g2"
    assert ex.models.ram_bytes <= ex.ram_budget
    r = ex.run(_gan_wf("g1"))  # its cached output went with it: loaded again
    assert "g" in r.executed and disk_reads.count("generator.safetensors") == 3
    r = ex.run(_gan_wf("g1"))
    assert r.executed == [] and disk_reads.count("generator.safetensors") == 3


def test_a_generator_output_is_counted_once(gan_home: tuple[Path, int]) -> None:
    home, size = gan_home
    ex = Executor(_registry(), settings=Settings(home=home))
    gen = ex.run(_gan_wf("g1")).outputs["o"]["generator"]
    assert ex.cache.bytes < size // 10, "the cache must not count the manager's module again"
    assert ex.models.ram_bytes >= module_bytes(gen.module) == size


def test_an_edited_gan_file_replaces_the_old_generator(gan_home: tuple[Path, int]) -> None:
    home, _ = gan_home
    ex = Executor(_registry(), settings=Settings(home=home))
    ex.run(_gan_wf("g1"))
    _touch(home / "models/gan/g1/generator.safetensors")
    assert "g" in ex.run(_gan_wf("g1")).executed
    assert len([k for k in ex.models.keys() if k.startswith("gan:")]) == 1


# --- feature extractors -----------------------------------------------------------------------
def test_feature_extractors_go_through_the_manager_and_are_counted_once(tmp_path: Path) -> None:
    feats = tmp_path / "models/features"
    feats.mkdir(parents=True)
    shutil.copy(feature_nets.efficientnet_lite0_weights(), feats / "lite0.pth")
    ex = Executor(_registry(), settings=Settings(home=tmp_path))

    def run() -> Any:
        wf = {"nodes": {"f": {"type": "load_feature_extractor", "inputs": {"weights": "lite0.pth"}},
                        "o": {"type": "mm_keep_extractor",
                              "inputs": {"extractor": {"node": "f", "output": "feature_extractor"}}}}}
        return ex.run(wf).outputs["o"]["feature_extractor"]

    f = run()
    assert ex.cache.bytes < module_bytes(f.net) // 100, "the cache must not count the manager's net again"
    assert ex.models.owner_of(f.net) is not None
    _touch(feats / "lite0.pth")
    run()
    assert len([k for k in ex.models.keys() if k.startswith("features:")]) == 1, "the old version is forgotten"


# --- the manager itself -----------------------------------------------------------------------
def test_manager_forgets_least_recently_used_beyond_the_ram_budget() -> None:
    def linear() -> Callable[[], torch.nn.Module]:
        return lambda: torch.nn.Linear(31, 32)  # 32·31 + 32 floats = 4,096 bytes

    forgotten: list[str] = []
    mgr = ModelManager(torch.device("cpu"), torch.float32, ram_budget_bytes=3 * 4096)
    mgr.add_listener(forgotten.append)
    a = mgr.load("a", linear())
    mgr.load("b", linear())
    mgr.load("c", linear())
    assert mgr.ram_bytes == 3 * 4096 and forgotten == []
    with mgr.use(a):  # a is in use: now b is the least recently used
        pass
    mgr.load("d", linear())
    assert mgr.keys() == ["c", "a", "d"] and forgotten == ["b"]
    assert mgr.stats()["ram_budget_bytes"] == 3 * 4096 and mgr.stats()["ram_bytes"] == 3 * 4096
    mgr.unload_all()
    assert mgr.keys() == [] and mgr.ram_bytes == 0 and set(forgotten) == {"a", "b", "c", "d"}


class _Wrapper:
    """A socket value holding a module, like the diffusion and GAN wrappers."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module, self.name = module, "wrapped"


def test_a_module_held_by_two_entries_counts_once() -> None:
    mgr = ModelManager(torch.device("cpu"), torch.float32)
    lin = mgr.load("lin", lambda: torch.nn.Linear(31, 32))
    wrapped = mgr.load("wrapped", lambda: _Wrapper(lin))
    assert 4096 <= mgr.ram_bytes < 4096 + 512
    assert mgr.owner_of(lin) == "lin" and mgr.owner_of(wrapped) == "wrapped"


def test_default_ram_budget_is_half_the_machine() -> None:
    from loom.settings import total_ram_bytes
    total = total_ram_bytes()
    assert total and Settings().ram_budget_bytes == total // 2
    assert Executor(Registry(), settings=Settings()).ram_budget == total // 2
