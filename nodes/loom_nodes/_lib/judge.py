"""ShapesJudge: a small CNN that reads shape, colour, size and position from 64x64 shapes images."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

HEADS: dict[str, int] = {"shape": 5, "colour": 8, "size": 2, "position": 9}


def _block(cin: int, cout: int) -> nn.Sequential:
    """conv-bn-relu then strided conv-bn-relu (halves the resolution)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class ShapesJudge(nn.Module):
    """Multi-head classifier on images in [0, 1] (resized to `image_size` if needed)."""

    def __init__(self, image_size: int = 64, width: int = 32, heads: dict[str, int] | None = None,
                 class_names: dict[str, list[str]] | None = None) -> None:
        super().__init__()
        self.image_size = image_size
        self.width = width
        self.heads = dict(heads or HEADS)
        self.class_names = class_names or {}
        w = width
        self.features = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w))
        feat = 4 * w * (image_size // 16) ** 2  # keeps the spatial layout for position
        self.neck = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(feat, 256), nn.ReLU(inplace=True))
        self.out = nn.ModuleDict({k: nn.Linear(256, n) for k, n in self.heads.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per head for images (B, 3, H, W) in [0, 1]."""
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        h = self.neck(self.features(images * 2.0 - 1.0))
        return {k: head(h) for k, head in self.out.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predicted class index per head."""
        was = self.training
        self.eval()
        out = {k: v.argmax(-1) for k, v in self(images).items()}
        self.train(was)
        return out

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments."""
        return {"arch": "shapes_judge", "image_size": self.image_size, "width": self.width,
                "heads": self.heads, "class_names": self.class_names}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "ShapesJudge":
        """Build an untrained judge from `config()` output."""
        kw = {k: v for k, v in cfg.items() if k != "arch"}
        return cls(**kw)

    @classmethod
    def load(cls, folder: str | Path) -> "ShapesJudge":
        """Load config.json + model.safetensors from a folder (weights upcast to float32)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        model = cls.from_config(json.loads((folder / "config.json").read_text()))
        state = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
        model.load_state_dict(state)
        return model.eval()
