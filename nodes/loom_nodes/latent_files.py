"""Latents as files: ``save_latent`` writes a safetensors file in the output folder,
``load_latent`` reads one from the input folder.

The file holds the samples as ``latent_tensor`` (ComfyUI's name, with its
``latent_format_version_0`` marker, so ComfyUI's LoadLatent reads Loom's files and the other
way round), the noise mask as ``noise_mask`` when there is one, and in the safetensors
metadata the ``Latent``'s ``loom.family``, ``loom.downscale`` and ``loom.batch_index``, plus
the workflow and run (``loom.workflow``, ``loom.run``) like a saved PNG. A file without Loom's
metadata loads as an ``unknown`` latent (×8); one without the marker is an old ComfyUI file,
scaled by 1 / 0.18215 as ComfyUI does.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from loom import Context, Input, Settings, UserInputError, file_fingerprint, node, resolve_inside
from loom.types import Latent

from .image_io import _next_path

log = logging.getLogger(__name__)

LATENT_KEY = "latent_tensor"
MASK_KEY = "noise_mask"
FORMAT_KEY = "latent_format_version_0"
OLD_COMFY_SCALE = 1.0 / 0.18215
EXTENSIONS = (".safetensors", ".latent")


def _workflow_json(workflow: Any) -> str:
    wf = workflow.to_dict() if hasattr(workflow, "to_dict") else workflow
    return json.dumps(wf, default=str)


@node(category="latent/io", output=True)
def save_latent(ctx: Context, latent: Latent,
                prefix: str = Input("latents/loom", help="file name prefix in the output folder; '/' makes "
                                                         "sub-folders"),
                embed_workflow: bool = Input(True, help="store the workflow in the file's metadata")) -> None:
    """Save latents (with their family, scale, noise mask and batch indices) as a safetensors file."""
    from safetensors.torch import save_file

    path = _next_path(ctx.output_dir, prefix, "safetensors")
    tensors = {LATENT_KEY: latent.samples.detach().float().cpu().contiguous(), FORMAT_KEY: torch.tensor([])}
    if latent.noise_mask is not None:
        tensors[MASK_KEY] = latent.noise_mask.detach().float().cpu().contiguous()
    meta = {"loom.family": latent.family, "loom.downscale": str(int(latent.downscale))}
    if latent.batch_index is not None:
        meta["loom.batch_index"] = json.dumps([int(i) for i in latent.batch_index])
    if embed_workflow and ctx.workflow is not None:
        meta["loom.workflow"] = _workflow_json(ctx.workflow)
        meta["loom.run"] = json.dumps({"run": ctx.run_id, "node": ctx.node_id,
                                       "seeds": ctx.run_info.get("seeds", {})}, default=str)
    save_file(tensors, str(path), metadata=meta)
    rel = path.relative_to(ctx.output_dir.resolve()).as_posix()
    ctx.log.info("saved %s", path)
    ctx.show(text=[f"saved {rel}"], values={"file": rel})


def _path(input_dir: Path, name: str) -> Path:
    """The file ``name`` strictly inside the input folder; UserInputError on ``name`` otherwise."""
    try:
        path = resolve_inside(input_dir, name)
    except ValueError as exc:
        raise UserInputError(f"latent file {name!r} {exc}: name a file inside the input folder, such as "
                             "'loom_00001.safetensors'", input="name") from None
    if path.suffix.lower() not in EXTENSIONS:
        raise UserInputError(f"latent file {name!r} is not a {' or '.join(EXTENSIONS)} file", input="name")
    return path


def _latent_fingerprint(name: str, *, settings: Settings) -> str:
    try:
        return file_fingerprint(resolve_inside(settings.inputs, name))
    except ValueError:
        return f"bad name {name!r}"  # the node itself reports it


def _metadata_int(meta: dict[str, str], key: str, default: int, name: str) -> int:
    try:
        value = int(meta.get(key, default))
    except ValueError:
        raise UserInputError(f"latent file {name!r}: metadata {key} {meta[key]!r} is not an integer",
                             input="name") from None
    if value < 1:
        raise UserInputError(f"latent file {name!r}: metadata {key} {value} must be at least 1", input="name")
    return value


@node(category="latent/io", fingerprint=_latent_fingerprint)
def load_latent(ctx: Context,
                name: str = Input("", help="a .safetensors (or ComfyUI .latent) file in the input folder; "
                                           "'/' for sub-folders")) -> Latent:
    """Load latents saved by save_latent (or ComfyUI's SaveLatent) from the input folder."""
    from safetensors import SafetensorError, safe_open

    if not name:
        raise UserInputError("name a latent file in the input folder (copy one there from the output "
                             "folder's latents/)", input="name")
    path = _path(ctx.input_dir, name)
    if not path.is_file():
        raise UserInputError(f"no latent file {name!r} in the input folder {ctx.input_dir}", input="name")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            keys = set(f.keys())
            if LATENT_KEY not in keys:
                raise UserInputError(f"latent file {name!r} has no {LATENT_KEY!r} tensor (it holds "
                                     f"{sorted(keys)[:6]})", input="name")
            samples = f.get_tensor(LATENT_KEY).float()
            mask = f.get_tensor(MASK_KEY).float() if MASK_KEY in keys else None
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserInputError(f"cannot read latent file {name!r}: {exc}", input="name") from exc
    if samples.ndim != 4:
        raise UserInputError(f"latent file {name!r} holds a tensor of shape {tuple(samples.shape)}, not "
                             "(B, C, h, w)", input="name")
    if FORMAT_KEY not in keys:
        samples = samples * OLD_COMFY_SCALE  # ComfyUI's first format stored unscaled latents
    index = None
    if "loom.batch_index" in meta:
        try:
            index = tuple(int(i) for i in json.loads(meta["loom.batch_index"]))
        except (ValueError, TypeError):
            raise UserInputError(f"latent file {name!r}: metadata loom.batch_index is not a list of "
                                 "integers", input="name") from None
        if len(index) != samples.shape[0]:
            log.warning("%s: batch_index has %d entries for %d latents; ignored", name, len(index),
                        samples.shape[0])
            index = None
    family = meta.get("loom.family", "unknown") or "unknown"
    downscale = _metadata_int(meta, "loom.downscale", 8, name)
    return Latent(samples, family, downscale, mask, index)
