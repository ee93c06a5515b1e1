"""Style transfer on tiny images with the bundled EfficientNet-Lite0, through the executor."""
from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import pytest
import torch

import loom_nodes.features  # noqa: F401 - registers the nodes
import loom_nodes.style
from loom import BaseObserver, Executor, Interrupted, NodeError, RecordingObserver, Registry, Settings, node
from loom.types import Image
from loom_nodes._lib.style_losses import content_loss, gram, mixed_gram, style_loss, tv_loss
from loom_nodes.style import StyleLosses


@node(id="test_style_pattern")
def pattern(kind: Literal["smooth", "stripes", "dots", "empty"] = "smooth", size: int = 32) -> Image:
    """A synthetic test image (test helper)."""
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    if kind == "empty":
        return torch.zeros(0, 3, size, size)
    if kind == "smooth":
        img = torch.stack([xx / size, yy / size, 0.5 + 0.3 * torch.sin(xx / 7)])
    elif kind == "stripes":
        img = torch.stack([(torch.sin(xx / 1.5 + yy / 2.5) > 0).float(), 0.2 + 0 * xx,
                           (torch.sin(yy / 2.0) > 0).float() * 0.8])
    else:
        img = torch.stack([((xx % 6 < 3) ^ (yy % 6 < 3)).float()] * 3) * torch.tensor([1.0, 0.8, 0.1])[:, None, None]
    return img[None].contiguous()


class Captured(NamedTuple):
    image: Image
    losses: StyleLosses


@node(id="test_style_capture", output=True)
def capture(image: Image, losses: StyleLosses) -> Captured:
    """Hand the image and losses back as run outputs (test helper)."""
    return Captured(image, losses)


@node(id="test_style_capture_image", output=True)
def capture_image(image: Image) -> Image:
    """Hand an image back as a run output (test helper)."""
    return image


@pytest.fixture(scope="module")
def ex(tmp_path_factory: pytest.TempPathFactory) -> Executor:
    reg = Registry()
    reg.add_module("loom_nodes.features")
    reg.add_module("loom_nodes.style")
    reg.add(pattern, capture, capture_image)
    return Executor(reg, settings=Settings(home=tmp_path_factory.mktemp("home")))


def _wf(content: str = "smooth", style: str = "stripes", style_2: str | None = None,
        **inputs: Any) -> dict[str, Any]:
    link = lambda n, o="image": {"node": n, "output": o}  # noqa: E731
    nodes_: dict[str, Any] = {
        "c": {"type": "test_style_pattern", "inputs": {"kind": content}},
        "s": {"type": "test_style_pattern", "inputs": {"kind": style}},
        "f": {"type": "load_feature_extractor", "inputs": {}},
        "st": {"type": "style_transfer", "inputs": {"content": link("c"), "style": link("s"),
                                                    "extractor": link("f", "feature_extractor"), **inputs}},
        "out": {"type": "test_style_capture", "inputs": {"image": link("st"), "losses": link("st", "losses")}},
    }
    if style_2:
        nodes_["s2"] = {"type": "test_style_pattern", "inputs": {"kind": style_2}}
        nodes_["st"]["inputs"]["style_2"] = link("s2")
    return {"nodes": nodes_}


def _run(ex: Executor, obs: Any = None, **kw: Any) -> tuple[torch.Tensor, StyleLosses]:
    out = ex.run(_wf(**kw), observer=obs).outputs["out"]
    return out["image"], out["losses"]


@pytest.mark.parametrize("optimizer,steps,drop", [("adam", 30, 0.5), ("lbfgs", 10, 0.8)])
def test_style_loss_drops_and_content_stays_bounded(ex: Executor, optimizer: str, steps: int,
                                                    drop: float) -> None:
    obs = RecordingObserver()
    image, losses = _run(ex, obs, steps=steps, optimizer=optimizer, learning_rate=0.05)
    assert image.shape == (1, 3, 32, 32) and 0 <= float(image.min()) and float(image.max()) <= 1
    assert losses.steps == steps and losses.optimizer == optimizer
    assert losses.extractor == "EfficientNet-Lite0"
    assert losses.style[-1] < drop * losses.style[0], losses.style
    assert losses.content[0] < 0.05 and losses.content[-1] < 2.0, "content loss stays bounded"
    assert all(math.isclose(t, c + s + v, rel_tol=1e-4)
               for t, c, s, v in zip(losses.total, losses.content, losses.style, losses.tv))
    progress = [a for name, a in obs.events if name == "node_progress" and a[1] == "st"]
    assert [p[2] for p in progress] == list(range(1, steps + 1))
    assert all(p[3] == steps for p in progress)
    assert progress[-1][4].shape == image.shape, "each step has a preview"
    assert set(progress[-1][5]) >= {"content", "style", "tv"}


def test_interrupt_stops_the_loop(ex: Executor) -> None:
    class Stopper(BaseObserver):
        steps = 0

        def node_progress(self, run: str, node: str, value: int, total: int, preview: Any,
                          info: dict[str, Any]) -> None:
            self.steps = value
            if value == 2:
                ex.interrupt()

    obs = Stopper()
    with pytest.raises(Interrupted):
        _run(ex, obs, steps=50, optimizer="adam", seed=99)
    assert obs.steps == 2


def test_inits_mixing_and_determinism(ex: Executor) -> None:
    a, _ = _run(ex, init="noise", seed=3, steps=2, optimizer="adam")
    ex.cache.clear()
    b, _ = _run(ex, init="noise", seed=3, steps=2, optimizer="adam")
    c, _ = _run(ex, init="noise", seed=4, steps=2, optimizer="adam")
    assert torch.equal(a, b) and not torch.equal(a, c)
    only2, _ = _run(ex, style="stripes", style_2="dots", style_2_weight=1.0, steps=2, optimizer="adam")
    direct, _ = _run(ex, style="dots", steps=2, optimizer="adam")
    assert torch.allclose(only2, direct, atol=1e-6), "weight 1 on style_2 = style_2 alone"
    mixed, _ = _run(ex, style="stripes", style_2="dots", style_2_weight=0.5, steps=2, optimizer="adam")
    assert not torch.allclose(mixed, direct, atol=1e-4)
    s_init, _ = _run(ex, init="style", steps=1, optimizer="adam", content_weight=0.0)
    assert s_init.shape == (1, 3, 32, 32)


def test_loss_curve_image(ex: Executor) -> None:
    wf = _wf(steps=3, optimizer="adam")
    wf["nodes"]["plot"] = {"type": "style_loss_curve",
                           "inputs": {"losses": {"node": "st", "output": "losses"}, "width": 320, "height": 200}}
    wf["nodes"]["img"] = {"type": "test_style_capture_image", "inputs": {"image": {"node": "plot", "output": "image"}}}
    img = ex.run(wf).outputs["img"]["image"]
    assert img.shape == (1, 3, 200, 320)
    assert float(img.std()) > 0.05, "something is drawn"


@pytest.mark.parametrize("inputs,expect", [
    ({"style_layers": "stage1, relu4_2"}, "style_layers"),
    ({"content_layers": "nope"}, "unknown layer"),
    ({"content": "empty"}, "empty"),
    ({"size": 8}, "at least 16 px"),
])
def test_bad_inputs_give_clear_errors(ex: Executor, inputs: dict[str, Any], expect: str) -> None:
    with pytest.raises(NodeError) as err:
        _run(ex, steps=1, optimizer="adam", **inputs)
    assert expect in str(err.value)


def test_loss_functions() -> None:
    f = torch.randn(2, 4, 5, 5)
    g = gram(f)
    assert g.shape == (2, 4, 4) and torch.allclose(g, g.transpose(1, 2))
    assert torch.allclose(g[0], f[0].reshape(4, 25) @ f[0].reshape(4, 25).T / 25)
    feats = {"a": f}
    assert float(content_loss(feats, {"a": f}, ["a"])) == 0.0
    assert float(style_loss(feats, {"a": g}, ["a"])) < 1e-10
    assert torch.allclose(mixed_gram([g[0], g[1]], [1.0, 3.0]), 0.25 * g[0] + 0.75 * g[1])
    assert float(tv_loss(torch.ones(1, 3, 8, 8))) == 0.0
    assert float(tv_loss(torch.rand(1, 3, 8, 8))) > 0.0
    with pytest.raises(ValueError):
        mixed_gram([g[0]], [0.0])
