"""The two non-speed checks of bench/gpu.py: offload under --vram-budget-gb, CPU/GPU determinism."""
from __future__ import annotations

import logging
from typing import Any

import torch

from _gpu_models import MODELS, build, cpu_copy

from loom import Executor, Settings


class _Collect(logging.Handler):
    """Keeps the messages of the model manager's log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def offload(bench: Any, args: Any, device: torch.device, precision: str) -> dict[str, Any]:
    """Run SD 1.5 with a VRAM budget below the models' total: it completes, logs what it moved.

    The modules start on the CPU (as loaded models do); the budget is the UNet plus half the
    VAE, so the text encoder must leave before the UNet comes and the UNet before the VAE.
    """
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    fam = build("sd1", torch.device("cpu"), dtype, tiny=args.tiny)
    sizes = {type(m).__name__: _bytes(m) for m in fam.modules}
    budget = _bytes(fam.unet) + _bytes(fam.vae) // 2
    MODELS["offload"] = fam.bundle()
    ex = Executor(bench.reg, settings=Settings(home=bench.home, device=str(device), precision=precision,
                                               vram_budget_gb=budget / 2**30))
    handler = _Collect()
    mm_log = logging.getLogger("loom.model_manager")
    mm_log.addHandler(handler)
    old_level = mm_log.level
    mm_log.setLevel(logging.INFO)
    try:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        image = ex.run(fam.workflow("offload", args.size, 1, args.steps, args.cfg, 1)).outputs["o"]["image"]
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    finally:
        mm_log.removeHandler(handler)
        mm_log.setLevel(old_level)
        MODELS.pop("offload", None)
        ex.models.unload_all()
    return {"completed": bool(torch.isfinite(image).all()), "budget_gib": round(budget / 2**30, 3),
            "models_gib": round(sum(sizes.values()) / 2**30, 3), "peak_gib": round(peak / 2**30, 3),
            "peak_over_budget_gib": round((peak - budget) / 2**30, 3),
            "log": handler.messages[:12],
            "note": "" if device.type == "cuda" else "no GPU: the budget applies to device memory only"}


def determinism(bench: Any, args: Any, device: torch.device, precision: str) -> dict[str, Any]:
    """The same seed on the GPU (``precision``) and the CPU (fp32): images differ by fp16 error only."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    size, steps = (64, 2) if args.tiny else (256, 4)
    fam = build("sd1", device, dtype, tiny=args.tiny, seed=3)
    cpu = cpu_copy(fam)
    images = {}
    for label, f, dev, prec in (("gpu", fam, device, precision), ("cpu", cpu, torch.device("cpu"), "fp32")):
        MODELS["det"] = f.bundle()
        ex = Executor(bench.reg, settings=Settings(home=bench.home, device=str(dev), precision=prec))
        images[label] = ex.run(f.workflow("det", size, 1, steps, args.cfg, 42)).outputs["o"]["image"]
        MODELS.pop("det", None)
    diff = (images["gpu"] - images["cpu"]).abs()
    return {"size": size, "steps": steps, "gpu": f"{device} {precision}", "cpu": "fp32",
            "max_abs": round(diff.max().item(), 5), "mean_abs": round(diff.mean().item(), 6)}
