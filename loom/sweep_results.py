"""What a sweep keeps of each run: its images, its metric scalars and its seeds.

Images: every image of the first output node that gives images, in the plan's output
order: the files its ``ui`` lists (``save_image``, ``preview_image``) or an image tensor it
returns. Scalars: every output of an output node in category "metrics" (or "metrics/…")
whose value is a number, a bool, or a NamedTuple of numbers, keyed "<node>.<output>"
("<node>.<output>.<field>" for a NamedTuple). Seeds: the literal Seed inputs of the plan,
completed by the ``loom.run`` chunk of saved PNGs (which also knows linked seeds).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .paths import resolve_inside
from .workflow import PNG_RUN_KEY

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from .executor import RunResult
    from .nodeapi import NodeSpec
    from .plan import Plan
    from .settings import Settings

log = logging.getLogger(__name__)
MAX_IMAGES = 256  # per cell; a sweep keeps its images in memory


def is_metric(spec: "NodeSpec") -> bool:
    """An output node of category "metrics" (or a sub-category of it)."""
    return bool(spec.output) and (spec.category == "metrics" or spec.category.startswith("metrics/"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def scalars_of(specs: Mapping[str, "NodeSpec"], outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The metric scalars of a run's outputs (``specs``: node id → spec of its type)."""
    out: dict[str, float] = {}
    for nid, values in outputs.items():
        spec = specs.get(nid)
        if spec is None or not is_metric(spec):
            continue
        for name, value in values.items():
            number = _number(value)
            if number is not None:
                out[f"{nid}.{name}"] = number
            elif isinstance(value, tuple) and hasattr(value, "_fields"):
                fields = {f: _number(getattr(value, f)) for f in value._fields}
                if all(v is not None for v in fields.values()):
                    out.update({f"{nid}.{name}.{f}": v for f, v in fields.items()})  # type: ignore[misc]
    return {k: v for k, v in out.items() if math.isfinite(v)}  # JSON and CSV have no NaN


def tensor_images(value: Any) -> list["PILImage"]:
    """A float BCHW tensor in [0, 1] (1, 3 or 4 channels) as PIL images; [] for anything else."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return []
    if not isinstance(value, torch.Tensor) or value.ndim != 4 or value.shape[1] not in (1, 3, 4):
        return []
    from PIL import Image
    t = value[:MAX_IMAGES].detach().float().cpu().clamp(0, 1)
    arr = (t.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype("uint8")
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    return [Image.fromarray(a[..., 0] if a.shape[2] == 1 else a, mode=modes[a.shape[2]]) for a in arr]


def ui_images(ui: Mapping[str, Any], settings: "Settings") -> tuple[list["PILImage"], dict[str, int]]:
    """The images a node's ``ui`` lists, read from the output/preview folders, and the seeds
    their ``loom.run`` chunks carry. Files outside their folder or unreadable are skipped."""
    from PIL import Image, UnidentifiedImageError
    roots = {"output": settings.outputs, "preview": settings.previews}
    images: list["PILImage"] = []
    seeds: dict[str, int] = {}
    for entry in ui.get("images") or ():
        if len(images) >= MAX_IMAGES or not isinstance(entry, dict):
            break
        root = roots.get(entry.get("kind", "output"))
        try:
            path = resolve_inside(Path(root), entry.get("path")) if root is not None else None
            if path is None:
                continue
            with Image.open(path) as im:
                im.load()
                images.append(im.copy())
                seeds.update(_png_seeds(getattr(im, "text", {}) or {}))
        except (ValueError, OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            log.warning("sweep: cannot read %s: %s", entry.get("path"), exc)
    return images, seeds


def _png_seeds(text: Mapping[str, Any]) -> dict[str, int]:
    raw = text.get(PNG_RUN_KEY)
    if not isinstance(raw, str):
        return {}
    try:
        seeds = json.loads(raw).get("seeds") or {}
    except (ValueError, AttributeError):
        return {}
    return {k: int(v) for k, v in seeds.items()
            if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)}


def plan_seeds(plan: "Plan", outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Seed inputs the plan knows: literals, and links to an output node's returned value."""
    from .plan import Link
    seeds: dict[str, int] = {}
    for nid, step in plan.steps.items():
        for name, v in step.seeds:
            if isinstance(v, Link):
                v = outputs.get(v.node, {}).get(v.output)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                seeds[f"{nid}.{name}"] = int(v)
    return seeds


def collect(plan: "Plan", result: "RunResult", settings: "Settings"
            ) -> tuple[list["PILImage"], dict[str, float], dict[str, int]]:
    """(images, scalars, seeds) of a finished run of ``plan``."""
    seeds = plan_seeds(plan, result.outputs)
    images: list["PILImage"] = []
    for nid in plan.outputs:
        ui = result.ui.get(nid) or {}
        if ui.get("images"):
            images, found = ui_images(ui, settings)
            seeds.update(found)
        if not images:
            for value in (result.outputs.get(nid) or {}).values():
                images = tensor_images(value)
                if images:
                    break
        if images:
            break
    specs = {nid: step.spec for nid, step in plan.steps.items()}
    return images, scalars_of(specs, result.outputs), seeds
