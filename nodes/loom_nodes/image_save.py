"""Save images as WebP or JPEG, or a batch as one animated WebP or GIF, with the workflow embedded.

Where the workflow goes (``save_image``'s PNGs keep theirs in the ``loom.workflow`` chunk):

* WebP and animated WebP: in the EXIF ImageDescription tag (0x010E), as one JSON object
  ``{"loom.workflow": …, "loom.run": …}``.
* JPEG: the same EXIF tag, but JPEG's EXIF block holds at most 64 KB; a larger workflow is
  left out with a warning.
* animated GIF: the same JSON in the GIF comment extension.

``Workflow.load`` reads workflows back from PNGs only; these files carry it for other tools
and for reading by hand (``PIL.Image.open(f).getexif()[0x010E]`` or ``.info["comment"]``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image as PILImage

from loom import Context, Input, node
from loom.types import Image

from ._lib.imageutil import to_pil
from .image_io import _next_path

log = logging.getLogger(__name__)

SaveFormat = Literal["webp", "animated_webp", "animated_gif", "jpeg"]
EXIF_DESCRIPTION = 0x010E
JPEG_EXIF_LIMIT = 65_000  # an APP1 segment is at most 64 KiB, its header included


def metadata_json(workflow: Any, run: dict[str, Any]) -> str:
    """The workflow and run info as one ASCII JSON text (EXIF strings are ASCII)."""
    wf = workflow.to_dict() if hasattr(workflow, "to_dict") else workflow
    return json.dumps({"loom.workflow": wf, "loom.run": run}, ensure_ascii=True, default=str)


def _exif(text: str) -> bytes:
    exif = PILImage.Exif()
    exif[EXIF_DESCRIPTION] = text
    return exif.tobytes()


def _frames(images: torch.Tensor) -> list[PILImage.Image]:
    return [to_pil(images, i) for i in range(images.shape[0])]


def save_frames(frames: list[PILImage.Image], path: Path, fmt: str, text: str | None, quality: int,
                lossless: bool, fps: float, loop: int) -> None:
    """Write one still (``webp``/``jpeg``: ``frames`` has one image) or one animation."""
    duration = max(1, round(1000.0 / fps))
    if fmt == "webp":
        extra = {"exif": _exif(text)} if text else {}
        frames[0].save(path, format="WEBP", quality=quality, lossless=lossless, **extra)
    elif fmt == "jpeg":
        exif = _exif(text) if text else b""
        if len(exif) > JPEG_EXIF_LIMIT:
            log.warning("workflow (%d bytes) is too large for JPEG's EXIF block; %s is saved without it",
                        len(exif), path.name)
            exif = b""
        frames[0].convert("RGB").save(path, format="JPEG", quality=quality, exif=exif)
    elif fmt == "animated_webp":
        extra = {"exif": _exif(text)} if text else {}
        frames[0].save(path, format="WEBP", save_all=True, append_images=frames[1:], duration=duration,
                       loop=loop, quality=quality, lossless=lossless, **extra)
    elif fmt == "animated_gif":
        extra = {"comment": text.encode("ascii")} if text else {}
        frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=duration,
                       loop=loop, optimize=False, **extra)
    else:
        raise ValueError(f"unknown format {fmt!r}")


EXTENSIONS = {"webp": "webp", "animated_webp": "webp", "animated_gif": "gif", "jpeg": "jpg"}


@node(category="image/output", output=True)
def save_image_as(ctx: Context, images: Image,
                  prefix: str = Input("loom", help="file name prefix; '/' makes sub-folders"),
                  format: SaveFormat = "webp",
                  quality: int = Input(90, ge=1, le=100, help="WebP/JPEG quality (ignored when lossless)"),
                  lossless: bool = Input(False, help="lossless WebP"),
                  fps: float = Input(8.0, ge=0.1, le=60.0, step=0.1, help="frames per second of animations"),
                  loop: int = Input(0, ge=0, le=1000, help="animation repeats; 0 = forever"),
                  embed_workflow: bool = Input(True, help="store the workflow in the file's metadata")) -> None:
    """Save images as WebP/JPEG files, or the batch as one animated WebP or GIF, in the output folder."""
    root = ctx.output_dir
    frames = _frames(images)
    seeds = ctx.run_info.get("seeds", {})
    animated = format.startswith("animated")
    groups = [frames] if animated else [[f] for f in frames]
    saved = []
    for i, group in enumerate(groups):
        path = _next_path(root, prefix, EXTENSIONS[format])
        run = {"run": ctx.run_id, "node": ctx.node_id, "index": None if animated else i, "seeds": seeds}
        text = metadata_json(ctx.workflow, run) if embed_workflow and ctx.workflow is not None else None
        save_frames(group, path, format, text, quality, lossless, fps, loop)
        saved.append({"kind": "output", "path": path.relative_to(root.resolve()).as_posix()})
        ctx.log.info("saved %s", path)
    ctx.show(images=saved)
