"""GAN nodes with tiny random generators of both families, run through the executor."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from safetensors.torch import save_file

import loom_nodes.gan
import loom_nodes.vae_sampling
from loom import Executor, NodeError, Registry, Settings, node
from loom.types import Image
from loom_nodes._lib.dcgan import DCGANGenerator
from loom_nodes._lib.stylegan import StyleGANGenerator


@node(id="test_gan_capture", output=True)
def capture(images: Image) -> Image:
    """Hand the images back as a run output (test helper)."""
    return images


def _save(folder: Path, module: torch.nn.Module, drop: tuple[str, ...] = ()) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(module.config()))  # type: ignore[operator]
    state = {k: v.contiguous() for k, v in module.state_dict().items() if k not in drop}
    save_file(state, str(folder / "generator.safetensors"))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("home")
    torch.manual_seed(0)
    sg = StyleGANGenerator(z_dim=16, w_dim=16, image_size=16, mapping_layers=2, channel_base=128,
                           channel_max=16)
    with torch.no_grad():
        sg.mapping.w_avg.copy_(torch.randn(16))
        for layer in sg.synthesis.layers:
            layer.noise_strength.fill_(0.5)
    _save(root / "models/gan/sg", sg)
    _save(root / "models/gan/sg_noavg", sg, drop=("mapping.w_avg",))
    dc = DCGANGenerator(z_dim=8, image_size=16, base_channels=8, num_classes=3,
                        class_names=["circle", "square", "triangle"])
    _save(root / "models/gan/dc", dc)
    emb = root / "models/embedded/tiny-gan"  # the layout of Loom's own shapes-gan: fp16, loom.json
    emb.mkdir(parents=True)
    cfg = dc.config()
    cfg["class_names"] = None
    (emb / "config.json").write_text(json.dumps(cfg))
    (emb / "loom.json").write_text(json.dumps({"kind": "gan", "class_names": ["circle", "square", "triangle"]}))
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in dc.state_dict().items()},
              str(emb / "generator.safetensors"))
    bad = root / "models/gan/bad"
    bad.mkdir(parents=True)
    (bad / "config.json").write_text(json.dumps({"arch": "biggan"}))
    (bad / "generator.safetensors").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def ex(home: Path) -> Executor:
    reg = Registry()
    reg.add_module("loom_nodes.gan")
    reg.add(capture)
    return Executor(reg, settings=Settings(home=home))


def _run(ex: Executor, model: str, node_type: str = "gan_generate", **inputs: Any) -> torch.Tensor:
    wf = {"nodes": {"g": {"type": "load_gan", "inputs": {"name": model}},
                    "s": {"type": node_type, "inputs": {"generator": {"node": "g", "output": "generator"},
                                                        **inputs}},
                    "out": {"type": "test_gan_capture", "inputs": {"images": {"node": "s", "output": "image"}}}}}
    return ex.run(wf).outputs["out"]["image"]


@pytest.mark.parametrize("model", ["sg", "dc"])
def test_shapes_range_and_determinism(ex: Executor, model: str) -> None:
    a = _run(ex, model, seed=5, batch=3)
    assert a.shape == (3, 3, 16, 16) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    ex.cache.clear()
    b = _run(ex, model, seed=5, batch=3)
    assert torch.equal(a, b)
    c = _run(ex, model, seed=6, batch=1)
    assert torch.allclose(c[0], a[1], atol=1e-5), "image i of a batch uses seed + i"
    assert not torch.allclose(a[0], a[1])


def test_stylegan_truncation_zero_gives_the_mean_image(ex: Executor) -> None:
    imgs = _run(ex, "sg", seed=1, batch=4, truncation=0.0)
    assert torch.allclose(imgs, imgs[:1].expand_as(imgs), atol=1e-6)
    gan = loom_nodes.gan.read_gan(ex.settings.home / "models/gan/sg")
    with torch.no_grad():
        mean = gan.module.synthesis(gan.module.w_avg[None])
    assert torch.allclose(imgs[0], ((mean[0] + 1) / 2).clamp(0, 1), atol=1e-5)
    half = _run(ex, "sg", seed=1, batch=4, truncation=0.5)
    full = _run(ex, "sg", seed=1, batch=4, truncation=1.0)
    assert (half - imgs).abs().mean() < (full - imgs).abs().mean()


def test_stylegan_noise_modes_and_missing_w_avg(ex: Executor) -> None:
    const = _run(ex, "sg", seed=2, noise="const")
    rand = _run(ex, "sg", seed=2, noise="random")
    assert not torch.allclose(const, rand)
    assert torch.allclose(rand, _run(ex, "sg", seed=2, noise="random", batch=2)[:1], atol=1e-5)
    gan = loom_nodes.gan.read_gan(ex.settings.home / "models/gan/sg_noavg")
    assert float(gan.module.w_avg.abs().sum()) > 0, "w_avg estimated when the file lacks it"


def test_dcgan_truncation_zero_and_classes(ex: Executor) -> None:
    imgs = _run(ex, "dc", seed=3, batch=3, truncation=0.0, class_name="square")
    assert torch.allclose(imgs, imgs[:1].expand_as(imgs), atol=1e-6)
    by_index = _run(ex, "dc", seed=3, batch=2, class_index=1)
    by_name = _run(ex, "dc", seed=3, batch=2, class_name="Square")
    assert torch.equal(by_index, by_name)
    assert not torch.allclose(by_index, _run(ex, "dc", seed=3, batch=2, class_index=2))


@pytest.mark.parametrize("model,extra", [("sg", {}), ("sg", {"noise": "random"}),
                                         ("dc", {"class_index": 0}), ("sg", {"truncation": 0.7})])
def test_walk_endpoints_equal_the_seeds_images(ex: Executor, model: str, extra: dict[str, Any]) -> None:
    walk = _run(ex, model, "gan_latent_walk", seed_a=10, seed_b=20, steps=5, **extra)
    assert walk.shape[0] == 5
    a = _run(ex, model, seed=10, **extra)
    b = _run(ex, model, seed=20, **extra)
    assert torch.allclose(walk[0], a[0], atol=1e-5)
    assert torch.allclose(walk[-1], b[0], atol=1e-5)
    mid = (walk[2] - a[0]).abs().mean()
    assert 0 < mid and (walk[1] - a[0]).abs().mean() < (walk[3] - a[0]).abs().mean() + 1e-3


def test_embedded_fp16_generator_with_class_names_in_loom_json(ex: Executor) -> None:
    emb = _run(ex, "embedded/tiny-gan", seed=4, batch=2, class_name="triangle")
    full = _run(ex, "dc", seed=4, batch=2, class_name="triangle")
    assert emb.shape == full.shape and (emb - full).abs().max() < 0.02, "fp16 weights load as float32"


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "models/embedded/shapes-gan/config.json").is_file(),
                    reason="the embedded shapes-gan is not trained yet")
def test_loom_shapes_gan_generates_each_class(tmp_path: Path) -> None:
    reg = Registry()
    reg.add_module("loom_nodes.gan")
    reg.add(capture)
    gan = loom_nodes.gan.read_gan(Path(__file__).resolve().parents[2] / "models/embedded/shapes-gan")
    local = Executor(reg, settings=Settings(home=tmp_path))
    for name in gan.class_names[:3]:
        img = _run(local, "embedded/shapes-gan", seed=0, batch=2, class_name=name)
        assert img.shape == (2, 3, gan.image_size, gan.image_size)


def test_slerp_keeps_norm_between_endpoints() -> None:
    a, b = torch.randn(1, 64), torch.randn(1, 64)
    out = loom_nodes.gan.slerp(a, b, torch.linspace(0, 1, 7))
    assert torch.equal(out[0], a[0]) and torch.equal(out[-1], b[0])
    norms = out.norm(dim=1)
    assert float(norms.min()) > 0.8 * min(float(a.norm()), float(b.norm()))


@pytest.mark.parametrize("model,inputs,expect", [
    ("dc", {"class_index": 3}, "out of range"),
    ("dc", {"class_name": "hexagon"}, "unknown class 'hexagon'"),
    ("sg", {"class_index": 0}, "not class-conditional"),
    ("bad", {}, "unknown \"arch\" 'biggan'"),
])
def test_bad_inputs_give_clear_errors(ex: Executor, model: str, inputs: dict[str, Any], expect: str) -> None:
    with pytest.raises(NodeError) as err:
        _run(ex, model, **inputs)
    assert expect in str(err.value)


def test_missing_weights_and_foreign_generator(ex: Executor, home: Path, tmp_path: Path) -> None:
    from loom import ValidationError
    with pytest.raises((NodeError, ValidationError)) as err:
        _run(ex, "nothere")
    assert "nothere" in str(err.value)
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"arch": "dcgan", "z_dim": 8, "image_size": 16}))
    with pytest.raises(Exception) as err2:
        loom_nodes.gan.read_gan(folder)
    assert "no generator.safetensors" in str(err2.value)
    # a foreign value on a Generator socket is caught where it is made: tests/loom/test_plan.py


# --- VAE as a generator (nodes.vae_sampling) --------------------------------------------------
from diffusers import AutoencoderKL  # noqa: E402

from loom.types import VAE  # noqa: E402
from loom_nodes._lib.diffusion.components import DiffusionVAE  # noqa: E402

_TINY_VAE: dict[str, DiffusionVAE] = {}


class TinyVAE(NamedTuple):
    vae: VAE


@node(id="test_gan_tiny_vae")
def tiny_vae_node() -> TinyVAE:
    """A tiny random AutoencoderKL as a VAE socket (test helper)."""
    return TinyVAE(tiny_vae())


def tiny_vae() -> DiffusionVAE:
    """A tiny random AutoencoderKL (downscale 2, 4 latent channels, scaling 0.5) (test helper)."""
    if "v" not in _TINY_VAE:
        torch.manual_seed(0)
        model = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                              down_block_types=("DownEncoderBlock2D",) * 2,
                              up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1,
                              norm_num_groups=8, sample_size=16, scaling_factor=0.5).eval()
        _TINY_VAE["v"] = DiffusionVAE(model, "tiny")
    return _TINY_VAE["v"]


@node(id="test_gan_checker")
def checker(size: int = 16) -> Image:
    """A checkerboard image (test helper)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (((xx // 4 + yy // 4) % 2).float()[None, None].expand(1, 3, -1, -1) * 0.8 + 0.1).contiguous()


@node(id="test_gan_capture_sample", output=True)
def capture_sample(image: Image, latent: loom_nodes.vae_sampling.Latent) -> loom_nodes.vae_sampling.VAESample:
    """Hand image and latent back as run outputs (test helper)."""
    return loom_nodes.vae_sampling.VAESample(image, latent)



@pytest.fixture(scope="module")
def vex(tmp_path_factory: pytest.TempPathFactory) -> Executor:
    reg = Registry()
    reg.add_module("loom_nodes.vae_sampling")
    reg.add(tiny_vae_node, checker, capture_sample)
    return Executor(reg, settings=Settings(home=tmp_path_factory.mktemp("vhome")))


def _sample(ex: Executor, with_image: bool = False, image_size: int = 16, **inputs: Any) -> tuple[torch.Tensor, Any]:
    link = lambda n, o: {"node": n, "output": o}  # noqa: E731
    wf: dict[str, Any] = {"nodes": {
        "v": {"type": "test_gan_tiny_vae", "inputs": {}},
        "s": {"type": "vae_sample", "inputs": {"vae": link("v", "vae"), "width": 16, "height": 16, **inputs}},
        "out": {"type": "test_gan_capture_sample",
                "inputs": {"image": link("s", "image"), "latent": link("s", "latent")}}}}
    if with_image:
        wf["nodes"]["img"] = {"type": "test_gan_checker", "inputs": {"size": image_size}}
        wf["nodes"]["s"]["inputs"]["image"] = link("img", "image")
    out = ex.run(wf).outputs["out"]
    return out["image"], out["latent"]


def test_vae_sample_shapes_seeds_and_spaces(vex: Executor) -> None:
    img, lat = _sample(vex, seed=7, batch=3)
    v = tiny_vae()
    assert img.shape == (3, 3, 16, 16) and 0 <= float(img.min()) and float(img.max()) <= 1
    assert lat.samples.shape == (3, 4, 8, 8) and lat.family == v.family and lat.downscale == 2
    one, lat1 = _sample(vex, seed=8, batch=1)
    assert torch.allclose(lat1.samples[0], lat.samples[1]) and torch.allclose(one[0], img[1], atol=1e-5)
    _, scaled = _sample(vex, seed=7, batch=3, space="scaled", temperature=2.0)
    assert torch.allclose(scaled.samples, lat.samples * 4.0, atol=1e-5), "raw N(0,I) is scaled by 0.5"
    flat, zero = _sample(vex, seed=1, batch=2, temperature=0.0)
    assert float(zero.samples.abs().max()) == 0 and torch.allclose(flat[0], flat[1])


def test_vae_sample_around_an_image(vex: Executor) -> None:
    img, lat = _sample(vex, with_image=True, seed=3, batch=2, temperature=0.0)
    v = tiny_vae()
    from loom.model_manager import ModelManager
    mm = ModelManager(torch.device("cpu"), torch.float32)
    with torch.no_grad():
        ref = v.decode(v.encode(checker(), mm, torch.device("cpu")), mm, torch.device("cpu"))
    assert torch.allclose(img, ref.expand_as(img), atol=1e-5), "temperature 0 = the reconstruction"
    near, lat_near = _sample(vex, with_image=True, seed=3, batch=2, temperature=0.5)
    assert not torch.allclose(near[0], near[1])
    assert (lat_near.samples - lat.samples).std() == pytest.approx(0.25, rel=0.3)


def test_vae_sample_errors(vex: Executor) -> None:
    from loom import ValidationError
    with pytest.raises(ValidationError, match="width: 17 is not a multiple of 8"):
        _sample(vex, width=17)
    with pytest.raises(NodeError, match="image is 1x1, smaller than the VAE's 2x2 latent cell"):
        _sample(vex, with_image=True, image_size=1)
