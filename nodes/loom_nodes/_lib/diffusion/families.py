"""Naming latent spaces, so a latent is never decoded by a VAE of another space."""
from __future__ import annotations

from typing import Any

# (latent channels, scaling factor, shift factor) of well-known VAEs.
_NAMED = {
    (4, 0.18215, None): "sd1",       # SD 1.x and 2.x share this latent space
    (4, 0.13025, None): "sdxl",
    (16, 1.5305, 0.0609): "sd3",
    (16, 0.3611, 0.1159): "flux",
}


def latent_family(config: Any) -> str:
    """A stable name for the latent space of a VAE config (channels + scaling + shift)."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    ch = int(get("latent_channels", 4) or 4)
    scale = get("scaling_factor", None)
    shift = get("shift_factor", None)
    scale = round(float(scale), 5) if scale is not None else 1.0
    shift = round(float(shift), 4) if shift is not None else None
    named = _NAMED.get((ch, scale, shift))
    if named:
        return named
    tail = f"-shift{shift:g}" if shift is not None else ""
    return f"vae{ch}ch-scale{scale:g}{tail}"


def downscale_factor(config: Any) -> int:
    """Pixels per latent cell: 2 ** (number of down blocks - 1)."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    blocks = get("block_out_channels", None) or get("down_block_types", None) or [0] * 4
    return 2 ** (len(blocks) - 1)
