"""save_latent / load_latent: safetensors files that keep the Latent's family, scale, mask and indices."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from loom import Executor, NodeError, Registry, Settings, node
from loom.types import Latent

import loom_nodes.latent_files  # noqa: F401


@node(category="test")
def latent_file_source() -> Latent:
    """Test input: a latent with every field set."""
    g = torch.Generator().manual_seed(0)
    return Latent(torch.randn(2, 4, 3, 5, generator=g), "sd1", 8, torch.rand(2, 1, 24, 40, generator=g), (3, 7))


@node(output=True)
def keep_loaded_latent(latent: Latent) -> Latent:
    """Test output: hand the latent back."""
    return latent


@pytest.fixture()
def ex(tmp_path):
    reg = Registry()
    reg.add_module("loom_nodes.latent_files")
    reg.add(latent_file_source, keep_loaded_latent)
    return Executor(reg, settings=Settings(home=tmp_path)), tmp_path


def _save(ex, prefix="latents/loom"):
    return ex.run({"nodes": {"src": {"type": "latent_file_source", "inputs": {}},
                             "save": {"type": "save_latent", "inputs": {"latent": {"node": "src", "output": "latent"},
                                                                        "prefix": prefix}}}})


def _load(ex, name):
    return ex.run({"nodes": {"load": {"type": "load_latent", "inputs": {"name": name}},
                             "o": {"type": "keep_loaded_latent",
                                   "inputs": {"latent": {"node": "load", "output": "latent"}}}}})


def test_save_then_load_gives_the_same_latent(ex):
    executor, home = ex
    result = _save(executor)
    path = home / "output" / "latents" / "loom_00001.safetensors"
    assert path.is_file() and result.ui["save"]["values"]["file"] == "latents/loom_00001.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["loom.family"] == "sd1" and meta["loom.downscale"] == "8"
    assert json.loads(meta["loom.batch_index"]) == [3, 7] and "src" in json.loads(meta["loom.workflow"])["nodes"]
    _save(Executor(executor.registry, settings=executor.settings))  # a fresh cache: saved again
    assert (home / "output" / "latents" / "loom_00002.safetensors").is_file()  # numbered like images
    (home / "input").mkdir()
    shutil.copy(path, home / "input" / "saved.safetensors")
    loaded = _load(executor, "saved.safetensors").outputs["o"]["latent"]
    ref = latent_file_source()
    assert torch.equal(loaded.samples, ref.samples) and torch.equal(loaded.noise_mask, ref.noise_mask)
    assert (loaded.family, loaded.downscale, loaded.batch_index) == ("sd1", 8, (3, 7))


def test_an_edited_file_loads_again(ex):
    executor, home = ex
    (home / "input").mkdir()
    path = home / "input" / "x.safetensors"
    save_file({"latent_tensor": torch.zeros(1, 4, 2, 2), "latent_format_version_0": torch.tensor([])}, str(path))
    assert float(_load(executor, "x.safetensors").outputs["o"]["latent"].samples.sum()) == 0.0
    save_file({"latent_tensor": torch.ones(1, 4, 2, 2), "latent_format_version_0": torch.tensor([])},
              str(path))
    again = _load(executor, "x.safetensors").outputs["o"]["latent"]
    assert float(again.samples.sum()) == 16.0 and again.family == "unknown" and again.downscale == 8


def test_an_old_comfyui_file_is_rescaled(ex):
    executor, home = ex
    (home / "input").mkdir()
    save_file({"latent_tensor": torch.full((1, 4, 2, 2), 0.18215)}, str(home / "input" / "old.latent"))
    samples = _load(executor, "old.latent").outputs["o"]["latent"].samples
    assert torch.allclose(samples, torch.ones(1, 4, 2, 2))


@pytest.mark.parametrize("name,expect", [
    ("../outside.safetensors", "without '..'"),
    ("missing.safetensors", "no latent file"),
    ("notes.txt", "is not a .safetensors or .latent file"),
    ("", "name a latent file"),
    ("junk.safetensors", "cannot read latent file"),
    ("other.safetensors", "has no 'latent_tensor' tensor"),
])
def test_bad_names_and_files_are_errors_naming_the_input(ex, name, expect):
    executor, home = ex
    (home / "input").mkdir()
    (home / "input" / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00garbage!")
    save_file({"weights": torch.zeros(2)}, str(home / "input" / "other.safetensors"))
    with pytest.raises(NodeError) as err:
        _load(executor, name)
    assert err.value.node == "load" and "'name'" in err.value.message and expect in err.value.message


@pytest.mark.parametrize("prefix", ["..", ".", "/abs/path", "a/../../b"])
def test_prefix_stays_inside_the_output_folder(ex, prefix):
    executor, home = ex
    with pytest.raises(NodeError) as err:
        _save(executor, prefix)
    assert "'prefix'" in err.value.message
    assert not list(home.glob("*.safetensors")) and not list(home.parent.glob("*.safetensors"))
