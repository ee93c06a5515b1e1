"""The shipped shapes-dit (models/embedded/shapes-dit): an SD3-style diffusion transformer under 8 M
parameters that Loom loads and samples with flow matching, whose images follow 20 fixed prompts
(judged by shapes-judge) at the thresholds of issue 16: colour >= 90 %, shape >= 80 %, position >= 80 %."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from loom import Executor, Registry, Settings, Workflow, node
from loom.settings import SHIPPED_MODELS, SHIPPED_WORKFLOWS
from loom.types import Image
from loom_nodes._lib import shapes
from loom_nodes._lib.judge import ShapesJudge

FOLDER = SHIPPED_MODELS / "embedded" / "shapes-dit"
PROMPT_SEED = 31337  # the same 20 fixed captions as test_embedded_quality.py (not drawn by training)
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
    torch.set_num_threads(1)
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    reg = Registry.default(settings)
    reg.add(t_dit_grab)
    ex = Executor(reg, settings=settings)
    wf = Workflow.load(SHIPPED_WORKFLOWS / "text_to_image_dit.json")
    del wf.nodes["save"]
    wf.nodes["grab"] = {"type": "t_dit_grab", "inputs": {"images": {"node": "decode", "output": "image"}}}
    wf.nodes["latent"]["inputs"]["batch"] = 1
    _, captions, specs = shapes.make_batch(20, PROMPT_SEED)
    images = []
    for i, cap in enumerate(captions):
        wf.nodes["prompt"]["inputs"]["text"] = cap
        wf.nodes["sample"]["inputs"]["seed"] = i
        images.append(ex.run(wf).outputs["grab"]["image"])
    x = torch.cat(images)
    assert x.shape == (20, 3, 64, 64)
    judge = ShapesJudge.load(SHIPPED_MODELS / "embedded" / "shapes-judge")
    pred, truth = judge.predict(x), shapes.labels_tensor(specs)
    return {k: float((pred[k] == truth[k]).float().mean()) for k in THRESHOLDS}


@pytest.mark.parametrize("attribute", sorted(THRESHOLDS))
def test_default_dit_workflow_follows_the_fixed_prompts(judged, attribute):
    assert judged[attribute] >= THRESHOLDS[attribute], judged
