"""Fast tests for the shapes data set, MiniLM encoder, DCGAN and judge in nodes/loom_nodes/_lib."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from loom_nodes._lib import shapes
from loom_nodes._lib.dcgan import DCGANDiscriminator, DCGANGenerator
from loom_nodes._lib.judge import HEADS, ShapesJudge


def test_constants_fixed() -> None:
    assert shapes.SHAPES == ("circle", "square", "triangle", "star", "ring")
    assert len(shapes.POSITIONS) == 9 and "center" in shapes.POSITIONS
    assert 6 <= len(shapes.COLOURS) <= 8


def test_make_batch_deterministic_and_seed_dependent() -> None:
    a, ca, sa = shapes.make_batch(8, seed=3)
    b, cb, sb = shapes.make_batch(8, seed=3)
    c, cc, _ = shapes.make_batch(8, seed=4)
    assert a.shape == (8, 3, 64, 64) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert torch.equal(a, b) and ca == cb and sa == sb
    assert not torch.equal(a, c) and ca != cc


def test_make_batch_size_argument() -> None:
    x, _, _ = shapes.make_batch(2, seed=0, size=32)
    assert x.shape == (2, 3, 32, 32)


def test_background_differs_from_object_and_object_is_drawn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        spec = shapes.random_spec(rng)
        assert spec.colour != spec.background
        img = np.asarray(shapes.render(spec), dtype=np.float32)
        target = np.array(shapes.RGB[spec.colour], dtype=np.float32)
        close = (np.abs(img - target).sum(-1) < 30).sum()
        assert close > 40, (spec, close)  # enough pixels of the object colour


def test_position_moves_the_object() -> None:
    base = dict(shape="circle", colour="red", size="small", background="blue")
    left = np.asarray(shapes.render(shapes.ShapeSpec(position="left", **base)), dtype=np.float32)
    right = np.asarray(shapes.render(shapes.ShapeSpec(position="right", **base)), dtype=np.float32)
    red = lambda im: im[..., 0] - im[..., 2]  # noqa: E731
    cols_left = np.nonzero(red(left).max(0) > 100)[0]
    cols_right = np.nonzero(red(right).max(0) > 100)[0]
    assert cols_left.mean() < 32 < cols_right.mean()


def test_caption_round_trip() -> None:
    _, caps, specs = shapes.make_batch(50, seed=11)
    for text, spec in zip(caps, specs):
        parsed = shapes.parse_caption(text)
        assert parsed is not None
        assert (parsed.shape, parsed.colour, parsed.size, parsed.position, parsed.background) == (
            spec.shape, spec.colour, spec.size, spec.position, spec.background)


def test_parse_caption_rejects_and_normalises() -> None:
    assert shapes.parse_caption("a photo of a cat") is None
    assert shapes.parse_caption("a large red hexagon in the center on a blue background") is None
    spec = shapes.parse_caption("  A Large RED circle at the top left on a blue background. ")
    assert spec == shapes.ShapeSpec("circle", "red", "large", "top left", "blue")
    assert shapes.parse_caption("a small red ring on the left on a white background").position == "left"


@pytest.fixture(scope="module")
def minilm():
    from loom_nodes._lib.minilm import MiniLM

    return MiniLM.from_package()


def test_minilm_encode_shape_and_content(minilm) -> None:
    from loom_nodes._lib.minilm import HIDDEN, MAX_TOKENS

    texts = ["a large red circle at the top left on a blue background",
             "a small green star at the bottom right on a white background", ""]
    h = minilm.encode(texts)
    assert h.shape == (3, MAX_TOKENS, HIDDEN) == (3, 32, 384)
    assert torch.isfinite(h).all()
    assert (h[0] - h[1]).abs().max() > 0.1 and (h[0] - h[2]).abs().max() > 0.1
    assert torch.allclose(minilm.encode(texts[:1]), h[:1], atol=1e-4)  # padding is per text
    long = minilm.encode(["red " * 100])
    assert long.shape == (1, 32, 384)
    pooled = minilm.pooled(texts[:2])
    assert pooled.shape == (2, 384)
    cos = torch.nn.functional.cosine_similarity(pooled[0], pooled[1], dim=0)
    assert 0.0 < float(cos) < 0.999


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("classes,conditioning,norm", [(0, "concat", "batch"), (5, "concat", "spectral"),
                                                       (5, "cbn", "none"), (0, "cbn", "spectral")])
def test_dcgan_shapes(size: int, classes: int, conditioning: str, norm: str) -> None:
    gen = DCGANGenerator(z_dim=16, image_size=size, base_channels=8, num_classes=classes,
                         conditioning=conditioning)  # type: ignore[arg-type]
    disc = DCGANDiscriminator(image_size=size, base_channels=8, num_classes=classes, norm=norm,  # type: ignore[arg-type]
                              minibatch_std=norm == "batch")
    labels = torch.tensor([0, 1, 4]) if classes else None
    with torch.no_grad():
        x = gen(torch.randn(3, 16), labels)
    assert x.shape == (3, 3, size, size)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert disc(x, labels).shape == (3,)


@pytest.mark.parametrize("conditioning", ["concat", "cbn"])
def test_dcgan_config_round_trip_and_conditioning(conditioning: str) -> None:
    gen = DCGANGenerator(z_dim=8, image_size=16, base_channels=8, num_classes=5, class_names=list(shapes.SHAPES),
                         conditioning=conditioning)  # type: ignore[arg-type]
    if conditioning == "cbn":  # fresh CBN gains are all 1: give each class its own so the class matters
        for m in gen.modules():
            if hasattr(m, "gain"):
                torch.nn.init.normal_(m.gain.weight, 1.0, 0.5)
    cfg = json.loads(json.dumps(gen.config()))
    assert cfg["arch"] == "dcgan" and cfg["num_classes"] == 5 and cfg["class_names"][0] == "circle"
    assert cfg["conditioning"] == conditioning
    clone = DCGANGenerator.from_config(cfg)
    clone.load_state_dict(gen.state_dict())
    gen.eval(), clone.eval()
    z = torch.randn(2, 8)
    y = torch.tensor([0, 3])
    assert torch.allclose(gen(z, y), clone(z, y))
    assert not torch.allclose(gen(z, torch.tensor([0, 0])), gen(z, torch.tensor([1, 1])))
    with pytest.raises(ValueError):
        gen(z)
    with pytest.raises(ValueError):
        DCGANGenerator(image_size=48)
    with pytest.raises(ValueError, match="conditioning"):
        DCGANGenerator(conditioning="film")  # type: ignore[arg-type]


def test_dcgan_old_configs_still_load() -> None:
    """A config written before `conditioning` existed builds the concatenating generator it was trained as."""
    cfg = {"arch": "dcgan", "z_dim": 8, "image_size": 16, "base_channels": 8, "num_classes": 3, "embed_dim": 4}
    gen = DCGANGenerator.from_config(cfg)
    assert gen.conditioning == "concat" and gen.embed is not None
    assert "net.1.running_mean" in gen.state_dict()


def test_judge_heads_and_config() -> None:
    judge = ShapesJudge(width=8)
    x = torch.rand(4, 3, 64, 64)
    logits = judge(x)
    assert {k: v.shape[-1] for k, v in logits.items()} == HEADS
    pred = judge.predict(torch.rand(2, 3, 32, 32))  # other sizes are resized
    assert set(pred) == set(HEADS) and all(v.shape == (2,) and v.dtype == torch.long for v in pred.values())
    clone = ShapesJudge.from_config(json.loads(json.dumps(judge.config())))
    clone.load_state_dict(judge.state_dict())
    judge.eval(), clone.eval()
    assert torch.allclose(judge(x)["shape"], clone(x)["shape"])
