"""Image sources and sinks: bundled samples, uploads, saving and previewing."""
from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from PIL import Image as PILImage

from loom import Context, Input, UserInputError, file_fingerprint, node, png_info, resolve_inside
from loom.types import Image, ImageFile, Mask

from ._lib.imageutil import from_numpy, from_pil, to_pil

SampleName = Literal["astronaut", "chelsea", "coffee", "rocket", "camera", "brick", "grass", "gravel"]


@node(category="image/source")
def sample_image(name: SampleName = "astronaut") -> Image:
    """A public-domain sample image bundled with scikit-image (no files needed)."""
    import skimage.data
    return from_numpy(getattr(skimage.data, name)())


class LoadedImage(NamedTuple):
    image: Image
    mask: Mask


def _image_fingerprint(image: Path) -> str:
    return file_fingerprint(image)


@node(category="image/source", fingerprint=_image_fingerprint)
def load_image(image: ImageFile) -> LoadedImage:
    """Load an uploaded image; the mask is its alpha channel (1 where transparent)."""
    try:
        with PILImage.open(image) as im:
            im.load()
            rgb, alpha = from_pil(im)
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read image {image.name!r}: {exc}", input="image") from exc
    mask = 1.0 - alpha if alpha is not None else torch.zeros(1, 1, rgb.shape[2], rgb.shape[3])
    return LoadedImage(rgb, mask)


_PREFIX_OK = re.compile(r"[\w\-. ]+(/[\w\-. ]+)*")


def _next_path(folder: Path, prefix: str, ext: str = "png") -> Path:
    """The next free ``<prefix>_NNNNN.<ext>``; the prefix names a file strictly inside ``folder``."""
    if not _PREFIX_OK.fullmatch(prefix):
        raise UserInputError(f"file prefix {prefix!r} may use letters, digits, '-', '_', '.', "
                             "spaces and '/' for sub-folders", input="prefix")
    try:
        target = resolve_inside(folder, prefix)
    except ValueError as exc:
        raise UserInputError(f"file prefix {prefix!r} {exc}: it must name a file inside the "
                             "output folder, such as 'loom' or 'sub/loom'",
                             input="prefix") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    stem = target.name
    taken = [int(m.group(1)) for p in target.parent.glob(f"{stem}_*.{ext}")
             if (m := re.fullmatch(re.escape(stem) + r"_(\d+)\." + re.escape(ext), p.name))]
    n = max(taken, default=0) + 1
    return target.parent / f"{stem}_{n:05d}.{ext}"


@node(category="image/output", output=True)
def save_image(ctx: Context, images: Image,
               prefix: str = Input("loom", help="file name prefix; '/' makes sub-folders")) -> None:
    """Save images as PNG files in the output folder, with the workflow embedded."""
    root = ctx.output_dir
    saved = []
    for i in range(images.shape[0]):
        path = _next_path(root, prefix)
        run = {"run": ctx.run_id, "node": ctx.node_id, "index": i, "seeds": ctx.run_info.get("seeds", {})}
        to_pil(images, i).save(path, pnginfo=png_info(ctx.workflow, run), compress_level=4)
        saved.append({"kind": "output", "path": path.relative_to(root.resolve()).as_posix()})
        ctx.log.info("saved %s", path)
    ctx.show(images=saved)


@node(category="image/output", output=True)
def preview_image(ctx: Context, images: Image) -> None:
    """Show images on the canvas without saving them to the output folder."""
    root = ctx.preview_dir
    shown = []
    for i in range(images.shape[0]):
        name = f"preview_{ctx.run_id}_{ctx.node_id}_{i}_{uuid.uuid4().hex[:6]}.png"
        name = re.sub(r"[^\w.\-]", "_", name)
        to_pil(images, i).save(root / name, compress_level=1)
        shown.append({"kind": "preview", "path": name})
    ctx.show(images=shown)
