"""Conversions between PIL images, numpy arrays and Loom Image tensors (B, C, H, W in [0, 1])."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image as PILImage


def from_numpy(arr: np.ndarray) -> torch.Tensor:
    """HxW or HxWxC uint8/float array → (1, 3 or 4, H, W) float32 in [0, 1]."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = np.stack([a, a, a], axis=-1)
    if a.dtype == np.uint8:
        t = torch.from_numpy(a.copy()).float() / 255.0
    else:
        t = torch.from_numpy(a.astype(np.float32).copy())
    return t.permute(2, 0, 1).unsqueeze(0).clamp(0, 1).contiguous()


def from_pil(img: PILImage.Image) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A PIL image → (RGB Image tensor (1,3,H,W), alpha Mask (1,1,H,W) where alpha exists)."""
    alpha = None
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = from_numpy(np.asarray(rgba)[..., 3])[:, :1]
        img = rgba
    return from_numpy(np.asarray(img.convert("RGB"))), alpha


def to_pil(image: torch.Tensor, index: int = 0) -> PILImage.Image:
    """One image of a batch (B, C, H, W) in [0, 1] → an 8-bit PIL image (RGB or L)."""
    t = image[index].detach().float().cpu().clamp(0, 1)
    arr = (t.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    if arr.shape[2] == 1:
        return PILImage.fromarray(arr[..., 0], mode="L")
    if arr.shape[2] == 4:
        return PILImage.fromarray(arr, mode="RGBA")
    return PILImage.fromarray(arr[..., :3], mode="RGB")
