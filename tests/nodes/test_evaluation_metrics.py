"""Evaluation nodes: KID against its formula, precision/recall on known answers, judge accuracy on
rendered shapes, CLIP score with a tiny random CLIP, and reference_set's folder rule."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import loom_nodes.evaluation  # noqa: F401 - registers the nodes
import loom_nodes.features  # noqa: F401
import loom_nodes.metrics  # noqa: F401
import loom_nodes.shapes_data  # noqa: F401
import loom_nodes.diffusion_loaders  # noqa: F401
import loom_nodes.text_encoders  # noqa: F401
from loom import Executor, NodeError, Registry, Settings, ValidationError, node
from loom.types import Image
from loom_nodes._lib import eval_metrics as em
from loom_nodes._lib import shapes
from tiny_clip import write_tiny_clip


def _kid_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (a·b/d + 1)³, written out with loops."""
    m, d = x.shape

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (float(a @ b) / d + 1.0) ** 3

    kxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2))
    kyy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return kxx / (m * (m - 1)) + kyy / (m * (m - 1)) - 2.0 * kxy / (m * m)


@node(id="test_eval_images")
def fixed_images(count: int = 8, shift: float = 0.0, seed: int = 0) -> Image:
    """Random 32 px images, optionally brightened (test helper)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(count, 3, 32, 32, generator=g) * 0.6 + shift).clamp(0, 1)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Executor, Settings]:
    home = tmp_path_factory.mktemp("home")
    write_tiny_clip(home / "models" / "clip" / "tiny")
    settings = Settings(home=home)
    reg = Registry()
    for module in ("loom_nodes.features", "loom_nodes.metrics", "loom_nodes.evaluation",
                   "loom_nodes.shapes_data", "loom_nodes.text_encoders", "loom_nodes.diffusion_loaders"):
        reg.add_module(module)
    reg.add(fixed_images, drawn_shapes, sink)
    return Executor(reg, settings=settings), settings


def _run(ex: Executor, nodes: dict[str, Any], target: str = "m") -> tuple[dict[str, Any], dict[str, Any]]:
    result = ex.run({"nodes": nodes})
    return result.outputs[target], result.ui.get(target, {})


# --- KID ------------------------------------------------------------------------------------
def test_kid_matches_the_formula_on_fixed_features() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    y = torch.randn(7, 5, generator=g, dtype=torch.float64) * 1.3 + 0.4
    expect = _kid_by_hand(x.numpy(), y.numpy())
    assert em.mmd2_unbiased(x, y) == pytest.approx(expect, rel=1e-12)
    # all rows in one subset: the subset draw only permutes, the value is the formula's
    whole = em.kid(x, y, subsets=3, subset_size=0, generator=torch.Generator().manual_seed(1))
    assert whole.mean == pytest.approx(expect, rel=1e-12) and whole.std == pytest.approx(0.0, abs=1e-12)
    # subsets of 4: mean and population std of the formula on each drawn subset
    gen, values = torch.Generator().manual_seed(5), []
    for _ in range(6):
        ix, iy = torch.randperm(7, generator=gen)[:4], torch.randperm(7, generator=gen)[:4]
        values.append(_kid_by_hand(x[ix].numpy(), y[iy].numpy()))
    sub = em.kid(x, y, subsets=6, subset_size=4, generator=torch.Generator().manual_seed(5))
    assert sub.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert sub.std == pytest.approx(np.std(values), rel=1e-9) and sub.std > 0
    with pytest.raises(ValueError, match="larger than the sets"):
        em.kid(x, y[:3], subsets=1, subset_size=4, generator=gen)


def test_kid_node_is_near_zero_for_one_distribution_and_grows_with_a_shift(env) -> None:
    ex, _ = env

    def kid_of(shift: float, seed_b: int, **inputs: Any) -> dict[str, Any]:
        nodes = {"a": {"type": "test_eval_images", "inputs": {"count": 12}},
                 "b": {"type": "test_eval_images", "inputs": {"count": 12, "shift": shift, "seed": seed_b}},
                 "f": {"type": "load_feature_extractor", "inputs": {}},
                 "m": {"type": "kid", "inputs": {"a": {"node": "a", "output": "image"},
                                                 "b": {"node": "b", "output": "image"},
                                                 "extractor": {"node": "f", "output": "feature_extractor"},
                                                 "resize": False, "subsets": 20, **inputs}}}
        return _run(ex, nodes)[0]

    same, other, shifted = kid_of(0.0, 0), kid_of(0.0, 1), kid_of(0.4, 1)
    # unbiased: near 0 (either sign) for one distribution, far above it for a shifted one
    assert max(abs(same["kid"]), abs(other["kid"])) < 0.05 * shifted["kid"], (same, other, shifted)
    assert set(shifted) == {"kid", "std"}
    with pytest.raises(NodeError, match="input 'subset_size'.*larger than the smaller batch"):
        kid_of(0.0, 1, subset_size=13)


def test_kid_refuses_a_single_image(env) -> None:
    ex, _ = env
    nodes = {"a": {"type": "test_eval_images", "inputs": {"count": 1}},
             "b": {"type": "test_eval_images", "inputs": {"count": 4}},
             "f": {"type": "load_feature_extractor", "inputs": {}},
             "m": {"type": "kid", "inputs": {"a": {"node": "a", "output": "image"},
                                             "b": {"node": "b", "output": "image"},
                                             "extractor": {"node": "f", "output": "feature_extractor"}}}}
    with pytest.raises(NodeError, match="input 'a'.*at least 2 images"):
        ex.run({"nodes": nodes})


# --- precision / recall -----------------------------------------------------------------------
def test_precision_recall_on_constructed_features() -> None:
    ref = torch.arange(10, dtype=torch.float64)[:, None]            # 0 … 9 on a line
    gen = torch.tensor([0, 1, 2, 3, 4, 100, 101, 102, 103, 104], dtype=torch.float64)[:, None]
    # reference 3-NN radii cover 0…9 → the 5 near generated points are in: precision 0.5;
    # generated radii (3, 2, 2, 2, 3 around 0…4) cover the reference points 0…7: recall 0.8
    assert em.precision_recall(ref, gen, k=3) == pytest.approx((0.5, 0.8))
    assert em.precision_recall(ref, ref.clone(), k=3) == (1.0, 1.0)
    assert em.precision_recall(ref, ref + 1000.0, k=3) == (0.0, 0.0)
    with pytest.raises(ValueError, match="more than k=3"):
        em.precision_recall(ref[:3], gen, k=3)


def test_precision_recall_node_names_a_too_small_batch(env) -> None:
    ex, _ = env
    nodes = {"g": {"type": "test_eval_images", "inputs": {"count": 3}},
             "r": {"type": "reference_set", "inputs": {"count": 8, "size": 32}},
             "f": {"type": "load_feature_extractor", "inputs": {}},
             "m": {"type": "precision_recall", "inputs": {"generated": {"node": "g", "output": "image"},
                                                          "reference": {"node": "r", "output": "images"},
                                                          "extractor": {"node": "f", "output": "feature_extractor"},
                                                          "resize": False}}}
    with pytest.raises(NodeError, match="input 'generated'.*k=3"):
        ex.run({"nodes": nodes})
    nodes["m"]["inputs"]["k"] = 2
    out, ui = _run(ex, nodes)
    assert 0.0 <= out["precision"] <= 1.0 and 0.0 <= out["recall"] <= 1.0 and "precision" in ui["text"][0]


# --- judge accuracy ------------------------------------------------------------------------
def test_prompt_targets_read_captions_and_free_prompts() -> None:
    cap = "a small green ring at the top right on a black background"
    assert em.prompt_targets(cap) == {"colour": shapes.COLOURS.index("green"), "shape": shapes.SHAPES.index("ring"),
                                      "size": 0, "position": shapes.POSITIONS.index("top right")}
    free = em.prompt_targets("Big blue stars in the middle, on a red background")
    assert free == {"colour": shapes.COLOURS.index("blue"), "shape": shapes.SHAPES.index("star"),
                    "size": 1, "position": shapes.POSITIONS.index("center")}
    assert em.prompt_targets("a photo of a cat") == {}


@node(id="test_eval_shapes")
def drawn_shapes(captions: str = "") -> Image:
    """One rendered shapes image per caption line (test helper)."""
    specs = [shapes.parse_caption(line) for line in captions.splitlines()]
    return shapes.to_tensor([shapes.render(s) for s in specs if s is not None])


@node(id="test_eval_sink", output=True)
def sink(images: Image) -> Image:
    """Hands its images to the test (test helper)."""
    return images


def _judge_nodes(captions: list[str], text: str) -> dict[str, Any]:
    return {"img": {"type": "test_eval_shapes", "inputs": {"captions": "\n".join(captions)}},
            "m": {"type": "judge_accuracy", "inputs": {"images": {"node": "img", "output": "image"},
                                                       "text": text}}}


def test_judge_accuracy_on_rendered_shapes(env) -> None:
    ex, _ = env
    _, captions, specs = shapes.make_batch(12, seed=3)
    nodes = _judge_nodes(captions, "\n".join(captions))
    right, ui = _run(ex, nodes)
    assert right["colour"] == 1.0 and right["overall"] >= 0.75, right
    assert "judge overall" in ui["values"]
    wrong = [shapes.caption(shapes.ShapeSpec(s.shape, shapes.COLOURS[(shapes.COLOURS.index(s.colour) + 1) % 8],
                                             s.size, s.position, s.background)) for s in specs]
    nodes["m"]["inputs"]["text"] = "\n".join(wrong)
    miss, _ = _run(ex, nodes)
    assert miss["colour"] == 0.0 and miss["overall"] == 0.0 and miss["shape"] == right["shape"]
    nodes["m"]["inputs"]["text"] = "a\nb"
    with pytest.raises(NodeError, match="input 'text'.*2 prompts in text for 12 images"):
        ex.run({"nodes": nodes})
    nodes["m"]["inputs"]["text"] = ""
    with pytest.raises(NodeError, match="needs the prompt"):
        ex.run({"nodes": nodes})
    nodes["m"]["inputs"]["text"] = "a photo of a cat"
    with pytest.raises(NodeError, match="names no colour"):
        ex.run({"nodes": nodes})


def test_judge_accuracy_reads_the_conditionings_text(env) -> None:
    ex, _ = env
    cap = shapes.caption(shapes.ShapeSpec("star", "yellow", "large", "center", "blue"))
    nodes = _judge_nodes([cap, cap], "")
    nodes["enc"] = {"type": "load_text_encoder", "inputs": {"name": "embedded/minilm"}}
    nodes["cond"] = {"type": "text_encode", "inputs": {"encoder": {"node": "enc", "output": "text_encoder"},
                                                       "text": cap}}
    nodes["m"]["inputs"]["conditioning"] = {"node": "cond", "output": "conditioning"}
    out, _ = _run(ex, nodes)
    assert out["colour"] == 1.0 and out["position"] == 1.0 and out["shape"] == 1.0


# --- CLIP score -----------------------------------------------------------------------------
def test_clip_alignment_with_a_tiny_clip(env) -> None:
    from transformers import CLIPModel, CLIPProcessor
    ex, settings = env
    nodes = {"img": {"type": "test_eval_images", "inputs": {"count": 3}},
             "m": {"type": "clip_alignment", "inputs": {"images": {"node": "img", "output": "image"},
                                                        "model": "tiny", "text": "a red circle"}}}
    out, ui = _run(ex, nodes)
    folder = settings.home / "models" / "clip" / "tiny"
    model, proc = CLIPModel.from_pretrained(str(folder)), CLIPProcessor.from_pretrained(str(folder))
    pil = [PILImage.fromarray((fixed_images(count=3)[i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
           for i in range(3)]
    with torch.no_grad():
        x = proc(text=["a red circle"] * 3, images=pil, return_tensors="pt", padding=True)
        o = model(**x)
    cos = torch.nn.functional.cosine_similarity(o.image_embeds.double(), o.text_embeds.double())
    expect = float((100 * cos).clamp(min=0).mean())
    assert out["score"] == pytest.approx(expect, rel=1e-4, abs=1e-4)
    assert "CLIP score (tiny)" in ui["values"]
    nodes["m"]["inputs"]["model"] = "missing"
    with pytest.raises(ValidationError, match="missing"):
        ex.compile({"nodes": nodes})


# --- reference_set --------------------------------------------------------------------------
def test_reference_set_from_shapes_and_from_a_folder(env) -> None:
    ex, settings = env
    nodes = {"r": {"type": "reference_set", "inputs": {"count": 3, "seed": 7, "size": 32}},
             "m": {"type": "test_eval_sink", "inputs": {"images": {"node": "r", "output": "images"}}}}
    images, _, _ = shapes.make_batch(3, 7, size=32)
    assert torch.equal(ex.run({"nodes": nodes}).outputs["m"]["image"], images)
    folder = settings.inputs / "refs"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        PILImage.new("RGB", (40 + 10 * i, 30), (80 * i, 10, 200)).save(folder / f"r{i}.png")
    (folder / "notes.md").write_text("not an image")
    nodes["r"]["inputs"] = {"source": "folder", "folder": "refs", "size": 32, "count": 2}
    got = ex.run({"nodes": nodes}).outputs["m"]["image"]
    assert got.shape == (2, 3, 32, 32)  # the first two by name, centre-cropped and resized
    assert got[1, 0].mean().item() == pytest.approx(80 / 255, abs=0.01)
    PILImage.new("RGB", (32, 32), (250, 0, 0)).save(folder / "r0.png")  # an edited file is read again
    assert ex.run({"nodes": nodes}).outputs["m"]["image"][0, 0].mean().item() == pytest.approx(250 / 255, abs=0.01)


@pytest.mark.parametrize("name", ["../outside", "/etc", "refs/../../x", "", "missing"])
def test_reference_set_refuses_folders_outside_input(env, name: str, tmp_path: Path) -> None:
    ex, settings = env
    (settings.home / "outside").mkdir(exist_ok=True)
    nodes = {"r": {"type": "reference_set", "inputs": {"source": "folder", "folder": name}},
             "f": {"type": "load_feature_extractor", "inputs": {}},
             "m": {"type": "kid", "inputs": {"a": {"node": "r", "output": "images"},
                                             "b": {"node": "r", "output": "images"},
                                             "extractor": {"node": "f", "output": "feature_extractor"}}}}
    with pytest.raises(NodeError, match="input 'folder'") as err:
        ex.run({"nodes": nodes})
    if name and name != "missing":
        assert "inside input/" in str(err.value)


def test_reference_set_of_one_caption_shows_that_caption(env) -> None:
    ex, _ = env
    cap = "a small purple triangle at the bottom left on a yellow background"
    nodes = {"r": {"type": "reference_set", "inputs": {"count": 6, "seed": 3, "prompt": cap}},
             "m": {"type": "judge_accuracy", "inputs": {"images": {"node": "r", "output": "images"}, "text": cap}}}
    out, _ = _run(ex, nodes)
    assert out["colour"] == 1.0 and out["position"] == 1.0 and out["overall"] >= 5 / 6, out
    nodes["r"]["inputs"]["prompt"] = "a purple triangle"
    with pytest.raises(NodeError, match="input 'prompt'.*not a caption of the shapes data set"):
        ex.run({"nodes": nodes})
