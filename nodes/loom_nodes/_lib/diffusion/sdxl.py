"""SDXL's micro-conditioning: the size, crop and (refiner) aesthetic-score time ids.

``sdxl_conditioning`` stores them in a conditioning's ``extras[SDXL_KEY]``; the denoiser reads
them when it builds ``added_cond_kwargs["time_ids"]`` — (original h, w, crop top, left,
target h, w) for base models, (original h, w, crop top, left, aesthetic score) for refiners,
exactly diffusers' ``_get_add_time_ids``. Without them a conditioning is conditioned on the
latent's pixel size, uncropped (``(h, w, 0, 0, h, w)``), as diffusers' defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SDXL_KEY = "sdxl"
DEFAULT_AESTHETIC = 6.0  # diffusers' and ComfyUI's default (diffusers' negative default: 2.5)


@dataclass(frozen=True)
class SizeConditioning:
    """Sizes in pixels (height, width); None means the latent's size."""

    original: tuple[int, int] | None = None
    crop: tuple[int, int] = (0, 0)           # (top, left)
    target: tuple[int, int] | None = None
    aesthetic_score: float = DEFAULT_AESTHETIC


def id_count(unet_config: Any, pooled_width: int) -> int:
    """How many time ids the UNet's added embedding takes (6: base model, 5: refiner)."""
    dim = int(getattr(unet_config, "addition_time_embed_dim", 0) or 0)
    total = int(getattr(unet_config, "projection_class_embeddings_input_dim", 0) or 0)
    if dim <= 0 or total <= pooled_width:
        return 6
    return (total - pooled_width) // dim


def time_ids(extras: dict[str, Any], height: int, width: int, unet_config: Any,
             pooled_width: int) -> list[float]:
    """The time ids for a latent of ``height × width`` pixels and a conditioning's extras."""
    size = extras.get(SDXL_KEY)
    if not isinstance(size, SizeConditioning):
        size = SizeConditioning()
    original = size.original or (height, width)
    target = size.target or (height, width)
    head = [*original, *size.crop]
    if id_count(unet_config, pooled_width) == 5:
        return [*head, float(size.aesthetic_score)]
    return [*head, *target]
