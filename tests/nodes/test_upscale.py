"""Upscale models: RRDBNet key layouts, scale detection, tiled inference and the two nodes."""
from __future__ import annotations

import resource
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from loom import Executor, Registry, Settings, UserInputError, node, validate
from loom.types import Image
import loom_nodes.image_io  # noqa: F401  (declares the nodes the workflows below use)
import loom_nodes.image_ops  # noqa: F401
from loom_nodes._lib.upscale import RRDBConfig, RRDBNet, axis_weights, run_tiled, tile_starts
from loom_nodes.upscale import read_upscaler

pytestmark = pytest.mark.usefixtures("one_thread")
L = lambda n, o="image": {"node": n, "output": o}  # noqa: E731


@node(id="test_upscale_capture", output=True)
def capture(images: Image) -> Image:
    """Hand the images back as a run output (test helper)."""
    return images


def tiny(unshuffle: int = 1, n_up: int = 2, in_ch: int = 3, out_ch: int = 3, seed: int = 0,
         num_block: int = 2) -> RRDBNet:
    torch.manual_seed(seed)
    net = RRDBNet(RRDBConfig(in_ch=in_ch, out_ch=out_ch, num_feat=8, num_block=num_block, num_grow=4,
                             n_up=n_up, unshuffle=unshuffle))
    with torch.no_grad():  # push the output into [0, 1]-ish so clamping does not hide differences
        net.conv_last.bias.fill_(0.5)
    return net.eval()


def old_layout(net: RRDBNet) -> dict[str, torch.Tensor]:
    """The original ESRGAN names, written out here independently of the loader's mapping."""
    sd, nb, n_up = net.state_dict(), net.cfg.num_block, net.cfg.n_up
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "body":   # body.i.rdbK.convJ.p -> model.1.sub.i.RDBK.convJ.0.p
            new = f"model.1.sub.{parts[1]}.RDB{parts[2][3:]}.{parts[3]}.0.{parts[4]}"
        elif parts[0] == "conv_first":
            new = f"model.0.{parts[1]}"
        elif parts[0] == "conv_body":
            new = f"model.1.sub.{nb}.{parts[1]}"
        elif parts[0].startswith("conv_up"):
            new = f"model.{3 * int(parts[0][7:])}.{parts[1]}"
        elif parts[0] == "conv_hr":
            new = f"model.{3 * n_up + 2}.{parts[1]}"
        else:
            new = f"model.{3 * n_up + 4}.{parts[1]}"
        out[new] = value.contiguous()
    return out


def mid_layout(net: RRDBNet) -> dict[str, torch.Tensor]:
    """The ESRGAN repo's later names (RRDB_trunk, trunk_conv, upconvN, HRconv)."""
    ren = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
    out = {}
    for key, value in net.state_dict().items():
        parts = key.split(".")
        if parts[0] == "body":
            key = f"RRDB_trunk.{parts[1]}.RDB{parts[2][3:]}.{parts[3]}.{parts[4]}"
        else:
            key = f"{ren.get(parts[0], parts[0])}.{parts[1]}"
        out[key] = value
    return out


def test_old_layout_matches_published_esrgan_x4_names():
    keys = set(old_layout(tiny()))
    for k in ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight", "model.1.sub.1.RDB3.conv5.0.bias",
              "model.1.sub.2.weight", "model.3.weight", "model.6.weight", "model.8.weight", "model.10.bias"):
        assert k in keys


@pytest.mark.parametrize("unshuffle,n_up,scale", [(1, 2, 4), (2, 2, 2), (4, 2, 1), (1, 1, 2), (1, 3, 8)])
def test_every_layout_loads_back_equal_with_its_scale(tmp_path: Path, unshuffle: int, n_up: int, scale: int):
    net = tiny(unshuffle, n_up)
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        want = net(x)
    assert want.shape == (1, 3, 16 * scale, 20 * scale)
    files = {"new.pth": None, "old.safetensors": old_layout(net), "mid.pth": mid_layout(net)}
    torch.save({"params_ema": net.state_dict(), "params": {}}, tmp_path / "new.pth")
    save_file(files["old.safetensors"], str(tmp_path / "old.safetensors"))
    torch.save(files["mid.pth"], tmp_path / "mid.pth")
    for name in files:
        up = read_upscaler(tmp_path / name)
        assert (up.scale, up.in_channels, up.out_channels, up.multiple) == (scale, 3, 3, unshuffle), name
        assert up.module.cfg == net.cfg, name
        with torch.no_grad():
            assert torch.allclose(up.module(x), want, atol=1e-6), name


def test_bad_files_are_named_errors(tmp_path: Path):
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(UserInputError, match="not an ESRGAN") as err:
        read_upscaler(tmp_path / "other.safetensors")
    assert err.value.input == "name"
    sd = old_layout(tiny())
    sd["model.0.weight"] = torch.zeros(8, 5, 3, 3)   # 5 input channels: the body no longer fits
    sd["model.1.sub.0.RDB1.conv1.0.weight"] = torch.zeros(4, 9, 3, 3)
    save_file(sd, str(tmp_path / "broken.safetensors"))
    with pytest.raises(UserInputError, match="do not fit"):
        read_upscaler(tmp_path / "broken.safetensors")
    torch.save({"net": torch.nn.Conv2d(1, 1, 1)}, tmp_path / "pickled.pth")   # a pickled module
    with pytest.raises(UserInputError, match="weights-only"):
        read_upscaler(tmp_path / "pickled.pth")


# --- tiling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size,tile,overlap,multiple", [(100, 32, 8, 1), (97, 40, 16, 2), (64, 64, 16, 1),
                                                        (50, 64, 16, 4), (130, 48, 24, 4)])
def test_tile_starts_cover_the_axis_and_weights_sum_to_one(size, tile, overlap, multiple):
    padded = -(-size // multiple) * multiple
    starts = tile_starts(padded, tile, overlap, multiple)
    assert starts[0] == 0 and all(s % multiple == 0 for s in starts)
    assert starts[-1] + min(tile, padded) == padded
    weights = axis_weights(starts, tile, padded, 3)
    total = torch.zeros(padded * 3)
    for s, w in zip(starts, weights):
        total[s * 3:(s + min(tile, padded)) * 3] += w
        if len(starts) > 1:   # an inner tile edge has no weight: it lacked context there
            assert (w[0] == 0) == (s != starts[0]) and (w[-1] == 0) == (s != starts[-1])
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)


def test_blending_a_pointwise_net_is_exact():
    """For a net without spatial reach any tiling must reproduce the untiled result."""
    def net(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(torch.sin(3 * t) * 0.5 + 0.5, scale_factor=3, mode="nearest")
    x = torch.rand(2, 3, 45, 61)
    want = net(x)
    for tile, overlap in ((16, 8), (20, 4), (32, 0), (24, 12)):
        got = run_tiled(net, x, 3, 3, tile, overlap)
        assert torch.allclose(got, want, atol=1e-6), (tile, overlap)


@pytest.mark.parametrize("unshuffle,size,tile", [(1, (70, 64), 32), (2, (150, 133), 64)])
def test_tiled_rrdbnet_equals_untiled(unshuffle: int, size: tuple[int, int], tile: int):
    """Exact where the overlap's context quarter covers the net's reach (×2 nets reach twice as far)."""
    net = tiny(unshuffle, num_block=1)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        whole = run_tiled(net, x, net.scale, 3, 4096, 0, unshuffle)
        seen: list[tuple[int, ...]] = []

        def spy(t: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(t.shape))
            return net(t)
        tiled = run_tiled(spy, x, net.scale, 3, tile, tile // 2, unshuffle)
    assert len(seen) >= 9 and all(s[2] <= tile and s[3] <= tile for s in seen)
    assert whole.shape == (1, 3, size[0] * net.scale, size[1] * net.scale)
    assert (tiled - whole).abs().max() < 1e-5


# --- the nodes ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("home")
    folder = root / "models/upscale_models"
    folder.mkdir(parents=True)
    save_file(old_layout(tiny()), str(folder / "tiny_x4.safetensors"))
    torch.save({"params_ema": tiny(2, seed=1).state_dict()}, folder / "tiny_x2.pth")
    return root


@pytest.fixture(scope="module")
def ex(home: Path) -> Executor:
    reg = Registry()
    for module in ("loom_nodes.upscale", "loom_nodes.image_io", "loom_nodes.image_ops"):
        reg.add_module(module)
    reg.add(capture)
    return Executor(reg, settings=Settings(home=home))


def sample_crop(size: int = 40) -> dict:
    """Workflow nodes giving a size×size RGB crop ("img") of a bundled sample image."""
    return {"s": {"type": "sample_image", "inputs": {"name": "coffee"}},
            "img": {"type": "crop_image", "inputs": {"image": L("s"), "x": 200, "y": 100,
                                                      "width": size, "height": size}}}


def _upscale(ex: Executor, model: str, image_nodes: dict, **inputs: int) -> tuple[torch.Tensor, torch.Tensor]:
    wf = {"nodes": {**image_nodes,
                    "m": {"type": "load_upscale_model", "inputs": {"name": model}},
                    "u": {"type": "upscale_with_model", "inputs": {"model": L("m", "upscale_model"),
                                                                   "image": L("img"), **inputs}},
                    "o": {"type": "test_upscale_capture", "inputs": {"images": L("u")}},
                    "i": {"type": "test_upscale_capture", "inputs": {"images": L("img")}}}}
    out = ex.run(wf).outputs
    return out["o"]["image"], out["i"]["image"]


@pytest.mark.parametrize("model,scale,seed,unshuffle", [("tiny_x4.safetensors", 4, 0, 1), ("tiny_x2.pth", 2, 1, 2)])
def test_upscale_node_matches_the_network(ex: Executor, model: str, scale: int, seed: int, unshuffle: int):
    got, image = _upscale(ex, model, sample_crop(40), tile=32, overlap=16)
    assert got.shape == (1, 3, 40 * scale, 40 * scale) and 0 <= got.min() and got.max() <= 1
    with torch.no_grad():
        want = tiny(unshuffle, seed=seed)(image).clamp(0, 1)
    assert (got - want).abs().max() < 1e-4


def make_ctx(progress: list | None = None):
    """A real Context for calling a node function directly."""
    import threading

    from loom.context import Context
    from loom.model_manager import ModelManager
    cpu = torch.device("cpu")
    report = (lambda v, t, _p, _i: progress.append((v, t))) if progress is not None else None
    return Context(node_id="u", node_type="upscale_with_model", run_id="r", settings=Settings(),
                   device=cpu, dtype=torch.float32, models=ModelManager(cpu, torch.float32),
                   interrupt_event=threading.Event(), workflow={}, run_info={}, on_progress=report)


def test_alpha_grey_progress_and_overlap_check(ex: Executor):
    got, _ = _upscale(ex, "tiny_x4.safetensors", sample_crop(24), tile=512, overlap=0)
    assert got.shape == (1, 3, 96, 96)
    from loom_nodes.upscale import LoadedUpscaler, upscale_with_model
    net = tiny()
    up = LoadedUpscaler(net, "ESRGAN", "tiny")
    image = torch.rand(1, 4, 12, 10)
    out = upscale_with_model(make_ctx(), up, image, tile=512, overlap=0)
    assert out.shape == (1, 4, 48, 40)
    big_alpha = F.interpolate(image[:, 3:], size=(48, 40), mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.allclose(out[:, 3:], big_alpha)
    with torch.no_grad():
        assert torch.allclose(out[:, :3], net(image[:, :3]).clamp(0, 1), atol=1e-6)
    grey = upscale_with_model(make_ctx(), up, image[:, :1], tile=512, overlap=0)
    with torch.no_grad():
        assert torch.allclose(grey, net(image[:, :1].expand(-1, 3, -1, -1)).clamp(0, 1), atol=1e-6)
    ticks: list = []
    upscale_with_model(make_ctx(ticks), up, torch.rand(2, 3, 40, 40), tile=32, overlap=8)
    assert ticks[-1] == (8, 8) and len(ticks) == 8      # 2 images × 2×2 tiles
    with pytest.raises(UserInputError) as err:
        upscale_with_model(make_ctx(), up, image, tile=64, overlap=40)
    assert err.value.input == "overlap"


def test_missing_model_says_where_to_put_it(ex: Executor):
    wf = {"nodes": {**sample_crop(8), "m": {"type": "load_upscale_model", "inputs": {"name": "4x_nothere.pth"}},
                    "u": {"type": "upscale_with_model", "inputs": {"model": L("m", "upscale_model"),
                                                                   "image": L("img")}},
                    "o": {"type": "test_upscale_capture", "inputs": {"images": L("u")}}}}
    problems = validate(wf, ex.registry, ex.settings)
    assert [p.code for p in problems] == ["missing_model"]
    assert "upscale_models" in problems[0].message and "put it at" in problems[0].message


def test_4x_of_a_1024_image_runs_in_tiles_with_bounded_memory():
    net = RRDBNet(RRDBConfig(num_feat=4, num_block=1, num_grow=4, n_up=2)).eval()
    x = torch.rand(1, 3, 1024, 1024)
    largest = [0]

    def spy(t: torch.Tensor) -> torch.Tensor:
        largest[0] = max(largest[0], t.shape[2] * t.shape[3])
        return net(t)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        out = run_tiled(spy, x, 4, 3, 256, 16)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert out.shape == (1, 3, 4096, 4096) and torch.isfinite(out).all()
    assert largest[0] <= 256 * 256
    # the 4096² result is 200 MB; running the whole image at once would need several GB
    assert grown_mb < 1200, grown_mb
