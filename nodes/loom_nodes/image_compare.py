"""Comparing two images on the canvas: a slider between them (web/src/comparer.js draws it)."""
from __future__ import annotations

import re
import uuid

from loom import Context, Input, UserInputError, node
from loom.types import Image

from ._lib.imageutil import to_pil


def _preview(ctx: Context, images: Image, index: int, side: str) -> dict[str, str]:
    """Write image ``index`` of a batch as a preview PNG; its ``ui.images`` entry."""
    name = f"compare_{ctx.run_id}_{ctx.node_id}_{side}_{uuid.uuid4().hex[:6]}.png"
    name = re.sub(r"[^\w.\-]", "_", name)  # ids become part of a file name: keep it plain
    to_pil(images, index).save(ctx.preview_dir / name, compress_level=1)
    return {"kind": "preview", "path": name}


@node(category="image", output=True)
def compare_images(ctx: Context, a: Image, b: Image,
                   index: int = Input(0, ge=0, help="which image of each batch to compare")) -> None:
    """Compare two images on the canvas with a slider between them (a on the left, b on the right)."""
    for side, images in (("a", a), ("b", b)):
        if index >= images.shape[0]:
            raise UserInputError(f"index {index} is past the end of input {side!r}, a batch of "
                                 f"{images.shape[0]} image(s) (the first is 0)", input="index")
    # the canvas shows ui.images[0] (a) and ui.images[1] (b) of a compare_images node as one
    # picture split by a slider; elsewhere (the gallery, `loom run`) they are two previews
    ctx.show(images=[_preview(ctx, a, index, "a"), _preview(ctx, b, index, "b")])
