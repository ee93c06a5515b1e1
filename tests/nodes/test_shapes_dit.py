"""The shipped shapes-dit (models/embedded/shapes-dit): an SD3-style diffusion transformer under 8 M
parameters that Loom loads and samples with flow matching, whose images follow 20 fixed prompts
(judged by shapes-judge) at the thresholds of issue 16: colour >= 90 %, shape >= 80 %, position >= 80 %."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from node_test_helpers import judge_fixed_prompts

from loom import node
from loom.settings import SHIPPED_MODELS
from loom.types import Image

FOLDER = SHIPPED_MODELS / "embedded" / "shapes-dit"
THRESHOLDS = {"colour": 0.9, "shape": 0.8, "position": 0.8}


@node(id="t_dit_grab", category="test", output=True)
def t_dit_grab(images: Image) -> Image:
    """Hand the decoded images to the test."""
    return images


def test_folder_is_a_small_sd3_transformer_over_the_shapes_latents():
    info = json.loads((FOLDER / "loom.json").read_text())
    assert info == {"kind": "diffusers", "text_encoder": "minilm", "resolution": 64, "latent_channels": 4,
                    "latent_size": 8}
    cfg = json.loads((FOLDER / "transformer" / "config.json").read_text())
    assert cfg["_class_name"] == "SD3Transformer2DModel"
    assert (cfg["in_channels"], cfg["out_channels"], cfg["patch_size"]) == (4, 4, 2)
    assert (cfg["joint_attention_dim"], cfg["pooled_projection_dim"]) == (384, 384)
    sched = json.loads((FOLDER / "scheduler" / "scheduler_config.json").read_text())
    assert sched["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    with safe_open(str(FOLDER / "transformer" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        tensors = {k: f.get_slice(k) for k in f.keys()}
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        n = sum(torch.Size(t.get_shape()).numel() for t in tensors.values())
    assert 1_000_000 < n <= 8_000_000, n
    assert dtypes == {"F16"}, dtypes
    size = sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file())
    assert size < 20e6, size


def test_loads_as_diffusers_model_with_the_stated_parameter_count():
    from diffusers import SD3Transformer2DModel

    model = SD3Transformer2DModel.from_pretrained(FOLDER / "transformer", torch_dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) <= 8_000_000


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    return judge_fixed_prompts(tmp_path_factory.mktemp("home"), "text_to_image_dit.json", t_dit_grab,
                               tuple(THRESHOLDS))


@pytest.mark.parametrize("attribute", sorted(THRESHOLDS))
def test_default_dit_workflow_follows_the_fixed_prompts(judged, attribute):
    assert judged[attribute] >= THRESHOLDS[attribute], judged
