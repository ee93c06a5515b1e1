"""Helpers shared by the diffusion node tests: executors over chosen node modules, a loaded tiny
SD model, hint images."""
from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

import torch

from loom import Context, Executor, Registry, Settings
from loom_nodes._lib.diffusion.tiny import save_diffusers, tiny_models


def executor_for(home: Path, modules: list[str], test_module: str) -> Executor:
    """An Executor whose registry holds ``modules`` (imported) plus the test module's own nodes."""
    reg = Registry()
    for m in modules:
        importlib.import_module(m)
        reg.add_module(m)
    reg.add_module(test_module)
    return Executor(reg, settings=Settings(home=home))


def hint_tensor(seed: int, size: int = 64) -> torch.Tensor:
    """A control hint: a bright square on a random dark background, (1, 3, size, size) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(1, 3, size, size, generator=g) * 0.3
    img[..., size // 4: size // 2 + 8, size // 4 + seed: size // 2 + seed] = 1.0
    return img


def loaded_tiny_sd(home: Path, seed: int) -> tuple[Registry, Context, Any]:
    """A tiny random SD 1.x saved under ``home`` and loaded by ``load_diffusers_model``, with the
    registry of the diffusion nodes and a Context to call node functions directly."""
    save_diffusers(home / "models" / "diffusers" / "tiny", tiny_models(seed=seed))
    registry = Registry()
    for m in ("loom_nodes.diffusion_loaders", "loom_nodes.text_encoders", "loom_nodes.sampling"):
        importlib.import_module(m)
        registry.add_module(m)
    ex = Executor(registry, settings=Settings(home=home))
    ctx = Context(node_id="t", node_type="t", run_id="r", settings=ex.settings, device=ex.device,
                  dtype=ex.dtype, models=ex.models, interrupt_event=threading.Event(), workflow={},
                  run_info={})
    models = registry["load_diffusers_model"].fn(ctx, home / "models" / "diffusers" / "tiny")
    return registry, ctx, models


JUDGE_PROMPT_SEED = 31337  # 20 fixed captions, not drawn by the training scripts


def judge_fixed_prompts(home: Path, workflow: str, grab: Any,
                        attributes: tuple[str, ...] = ("colour", "shape", "position")) -> dict[str, float]:
    """Accuracy per attribute of a shipped text-to-image example over the 20 fixed captions.

    ``workflow``: a file in the shipped workflows whose ``decode`` node gives the images; its save
    node is replaced by ``grab`` (an output node handing the images back), batch 1, seed = index.
    The images are judged by the shipped shapes-judge.
    """
    from loom import Workflow
    from loom.settings import SHIPPED_MODELS, SHIPPED_WORKFLOWS
    from loom_nodes._lib import shapes
    from loom_nodes._lib.judge import ShapesJudge

    torch.set_num_threads(1)
    settings = Settings(home=home)
    reg = Registry.default(settings)
    reg.add(grab)
    ex = Executor(reg, settings=settings)
    wf = Workflow.load(SHIPPED_WORKFLOWS / workflow)
    del wf.nodes["save"]
    wf.nodes["grab"] = {"type": grab.__loom_node__.id, "inputs": {"images": {"node": "decode", "output": "image"}}}
    wf.nodes["latent"]["inputs"]["batch"] = 1
    _, captions, specs = shapes.make_batch(20, JUDGE_PROMPT_SEED)
    images = []
    for i, cap in enumerate(captions):
        wf.nodes["prompt"]["inputs"]["text"] = cap
        wf.nodes["sample"]["inputs"]["seed"] = i
        images.append(ex.run(wf).outputs["grab"]["image"])
    x = torch.cat(images)
    assert x.shape == (20, 3, 64, 64)
    judge = ShapesJudge.load(SHIPPED_MODELS / "embedded" / "shapes-judge")
    pred, truth = judge.predict(x), shapes.labels_tensor(specs)
    return {k: float((pred[k] == truth[k]).float().mean()) for k in attributes}
