"""Feature extractors: the bundled EfficientNet-Lite0, user VGG-19 / Inception-v3 files, errors."""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
import skimage.data
import torch
import torch.nn.functional as F

import loom_nodes.features
from loom import Executor, NodeError, Registry, Settings, node
from loom.types import FeatureExtractor
from loom_nodes._lib import feature_nets
from loom_nodes._lib.imageutil import from_numpy


@node(id="test_features_capture", output=True)
def capture(extractor: FeatureExtractor) -> FeatureExtractor:
    """Hand the extractor back as a run output (test helper)."""
    return extractor


class Opaque:
    """An arbitrary pickled object: loading it would run code, so it must be refused."""


@pytest.fixture(scope="module")
def lite0() -> feature_nets.FeatureNet:
    return feature_nets.build("efficientnet-lite0", None)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("home")
    feats = root / "models/features"
    feats.mkdir(parents=True)
    torch.manual_seed(0)
    vgg = feature_nets.VGG19Features()
    state = collections.OrderedDict(vgg.state_dict())
    state["classifier.0.weight"] = torch.zeros(4, 4)  # torchvision files carry the classifier too
    torch.save(state, feats / "vgg19.pth")
    inc = feature_nets.InceptionV3Features(tf=True)
    st = dict(inc.state_dict())
    st["fc.weight"], st["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in st.items()}, str(feats / "pt_inception.safetensors"))
    torch.save({"not": "a state dict", "x": [1, 2]}, feats / "junk.pth")
    (feats / "broken.safetensors").write_bytes(b"\x00" * 20)
    torch.save({"w": torch.zeros(1), "obj": Opaque()}, feats / "pickle.pth")  # weights_only refuses it
    return root


@pytest.fixture(scope="module")
def ex(home: Path) -> Executor:
    reg = Registry()
    reg.add_module("loom_nodes.features")
    reg.add(capture)
    return Executor(reg, settings=Settings(home=home))


def _load(ex: Executor, **inputs: Any) -> nodes.features.Features:
    wf = {"nodes": {"f": {"type": "load_feature_extractor", "inputs": inputs},
                    "out": {"type": "test_features_capture",
                            "inputs": {"extractor": {"node": "f", "output": "feature_extractor"}}}}}
    return ex.run(wf).outputs["out"]["feature_extractor"]


def test_bundled_lite0_recognises_a_cat(lite0: feature_nets.FeatureNet) -> None:
    x = F.interpolate(from_numpy(skimage.data.chelsea()), size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        logits = lite0.net(lite0.normalize(x))
    assert int(logits.argmax()) in range(281, 286), "tabby/tiger/Egyptian cat…"


def test_lite0_layers(lite0: feature_nets.FeatureNet) -> None:
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = lite0.extract(x, list(lite0.layers))
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes["stem"] == (2, 32, 32, 32)
    assert shapes["stage1"] == (2, 16, 32, 32)
    assert shapes["stage3"] == (2, 40, 8, 8)
    assert shapes["stage7"] == (2, 320, 2, 2)
    assert shapes["pooled"] == (2, 1280)
    with torch.no_grad():
        only = lite0.extract(x, ["stage2"])
    assert list(only) == ["stage2"] and torch.allclose(only["stage2"], out["stage2"])
    with pytest.raises(KeyError, match="conv9"):
        lite0.extract(x, ["conv9"])


def test_node_loads_bundled_and_user_files(ex: Executor) -> None:
    f = _load(ex)
    assert f.label == "EfficientNet-Lite0"
    vgg = _load(ex, network="vgg19", weights="vgg19.pth")
    assert vgg.label == "VGG-19" and "relu4_2" in vgg.net.layers
    with torch.no_grad():
        out = vgg.net.extract(torch.rand(1, 3, 32, 32), ["relu1_1", "pool5", "pooled"])
    assert out["relu1_1"].shape == (1, 64, 32, 32) and out["pool5"].shape == (1, 512, 1, 1)
    assert out["pooled"].shape == (1, 512)
    inc = _load(ex, network="inception-v3", weights="pt_inception.safetensors")
    assert inc.label == "Inception-v3" and inc.net.fid_input_size == 299
    with torch.no_grad():
        pooled = inc.net.extract(torch.rand(1, 3, 299, 299), ["block1", "pooled"])
    assert pooled["pooled"].shape == (1, 2048) and pooled["block1"].shape[1] == 64


def test_layer_text_parsing(ex: Executor) -> None:
    f = _load(ex)
    assert f.layers("default", ("stem",), "x") == ["stem"]
    assert f.layers(" stage1, stage3 ", ("stem",), "x") == ["stage1", "stage3"]
    with pytest.raises(Exception, match="unknown layer.*'relu4_2'.*layers are: stem"):
        f.layers("stage1, relu4_2", ("stem",), "style_layers")


@pytest.mark.parametrize("inputs,expect", [
    ({"network": "vgg19"}, "vgg19 needs weights"),
    ({"network": "vgg19", "weights": "pt_inception.safetensors"}, "looks like a inception-v3"),
    ({"network": "inception-v3", "weights": "vgg19.pth"}, "looks like a vgg19"),
    ({"network": "vgg19", "weights": "junk.pth"}, "junk.pth"),
    ({"network": "vgg19", "weights": "broken.safetensors"}, "cannot read broken.safetensors"),
    ({"network": "vgg19", "weights": "pickle.pth"}, "cannot read pickle.pth"),
])
def test_bad_weights_give_clear_errors(ex: Executor, inputs: dict[str, Any], expect: str) -> None:
    with pytest.raises(NodeError) as err:
        _load(ex, **inputs)
    assert expect in str(err.value) and "weights" in str(err.value)


def test_missing_file_is_reported(ex: Executor) -> None:
    from loom import ValidationError
    with pytest.raises((ValidationError, NodeError), match="vgg_missing.pth"):
        _load(ex, network="vgg19", weights="vgg_missing.pth")


def test_feature_layers_node_lists_names(ex: Executor) -> None:
    wf = {"nodes": {"f": {"type": "load_feature_extractor", "inputs": {}},
                    "l": {"type": "feature_layers",
                          "inputs": {"extractor": {"node": "f", "output": "feature_extractor"}}}}}
    result = ex.run(wf)
    text = result.outputs["l"]["text"]
    assert text.startswith("EfficientNet-Lite0: stem, stage1") and "style: stem" in text
    assert result.ui["l"]["text"][0] == text.splitlines()[0]
