"""Procedural captioned "shapes" data set: deterministic 64x64 RGB images with captions."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 180),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SIZES: tuple[str, ...] = ("small", "large")
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)
_POS_PHRASE: dict[str, str] = {
    "top left": "at the top left", "top": "at the top", "top right": "at the top right",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "at the bottom left", "bottom": "at the bottom",
    "bottom right": "at the bottom right",
}
_PHRASE_POS = {v: k for k, v in _POS_PHRASE.items()}
_RADIUS = {"small": 0.15, "large": 0.22}  # fraction of the image side
_CENTRES = (0.25, 0.5, 0.75)  # fraction of the image side, per grid column/row
_SS = 4  # supersampling factor for anti-aliasing

_CAPTION_RE = re.compile(
    r"^\s*an?\s+(?P<size>{s})\s+(?P<colour>{c})\s+(?P<shape>{h})\s+(?P<pos>{p})"
    r"\s+on\s+an?\s+(?P<bg>{c})\s+background\s*\.?\s*$".format(
        s="|".join(SIZES), c="|".join(COLOURS), h="|".join(SHAPES),
        p="|".join(sorted(_PHRASE_POS, key=len, reverse=True)),
    ),
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ShapeSpec:
    """What one image shows; jitter fields vary the drawing but not the caption."""

    shape: str
    colour: str
    size: str
    position: str
    background: str
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    angle: float = 0.0

    def labels(self) -> dict[str, int]:
        """Class indices of the captioned attributes."""
        return {
            "shape": SHAPES.index(self.shape),
            "colour": COLOURS.index(self.colour),
            "size": SIZES.index(self.size),
            "position": POSITIONS.index(self.position),
            "background": COLOURS.index(self.background),
        }


def random_spec(rng: np.random.Generator) -> ShapeSpec:
    """Draw a random spec (with small position/size/rotation jitter) from a numpy Generator."""
    colour = COLOURS[int(rng.integers(len(COLOURS)))]
    bgs = [c for c in COLOURS if c != colour]
    return ShapeSpec(
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
        colour=colour,
        size=SIZES[int(rng.integers(len(SIZES)))],
        position=POSITIONS[int(rng.integers(len(POSITIONS)))],
        background=bgs[int(rng.integers(len(bgs)))],
        dx=float(rng.uniform(-0.03, 0.03)),
        dy=float(rng.uniform(-0.03, 0.03)),
        scale=float(rng.uniform(0.9, 1.1)),
        angle=float(rng.uniform(-15.0, 15.0)),
    )


def _polygon(cx: float, cy: float, radii: list[float], angle_deg: float) -> list[tuple[float, float]]:
    """Points of a polygon whose vertices alternate through `radii`, first vertex pointing up."""
    n = len(radii)
    out = []
    for i, r in enumerate(radii):
        a = math.radians(angle_deg) - math.pi / 2 + 2 * math.pi * i / n
        out.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return out


def _background(spec: ShapeSpec, size: int) -> np.ndarray:
    """A plain background colour with a faint vertical gradient (HxWx3 uint8)."""
    base = np.array(RGB[spec.background], dtype=np.float32)
    ramp = np.linspace(-12.0, 12.0, size, dtype=np.float32)[:, None, None]
    img = np.clip(base[None, None, :] + ramp, 0, 255)
    return np.broadcast_to(img, (size, size, 3)).astype(np.uint8)


def render(spec: ShapeSpec, size: int = 64) -> Image.Image:
    """Draw a spec as an anti-aliased RGB image of side `size`."""
    big = size * _SS
    img = Image.fromarray(_background(spec, big), "RGB")
    draw = ImageDraw.Draw(img)
    pi = POSITIONS.index(spec.position)
    cx = (_CENTRES[pi % 3] + spec.dx) * big
    cy = (_CENTRES[pi // 3] + spec.dy) * big
    r = _RADIUS[spec.size] * spec.scale * big
    fill = RGB[spec.colour]
    if spec.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif spec.shape == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        hole = r * 0.55
        inner = Image.fromarray(_background(spec, big), "RGB")
        mask = Image.new("L", (big, big), 0)
        ImageDraw.Draw(mask).ellipse((cx - hole, cy - hole, cx + hole, cy + hole), fill=255)
        img.paste(inner, (0, 0), mask)
    elif spec.shape == "square":
        h = r * 0.85
        draw.polygon(_polygon(cx, cy, [h * math.sqrt(2)] * 4, spec.angle + 45.0), fill=fill)
    elif spec.shape == "triangle":
        pts = _polygon(cx, cy + r * 0.15, [r * 1.15] * 3, spec.angle)
        draw.polygon(pts, fill=fill)
    elif spec.shape == "star":
        draw.polygon(_polygon(cx, cy + r * 0.05, [r * 1.1, r * 0.45] * 5, spec.angle), fill=fill)
    else:
        raise ValueError(f"unknown shape {spec.shape!r}")
    return img.resize((size, size), Image.BOX)


def caption(spec: ShapeSpec) -> str:
    """The English caption of a spec, e.g. 'a large red circle at the top left on a blue background'."""
    return f"a {spec.size} {spec.colour} {spec.shape} {_POS_PHRASE[spec.position]} on a {spec.background} background"


def parse_caption(text: str) -> ShapeSpec | None:
    """Parse a caption produced by `caption` back into a spec (no jitter); None if it does not match."""
    m = _CAPTION_RE.match(text)
    if m is None:
        return None
    g = {k: v.lower() for k, v in m.groupdict().items()}
    pos = _PHRASE_POS[re.sub(r"\s+", " ", g["pos"])]
    return ShapeSpec(shape=g["shape"], colour=g["colour"], size=g["size"], position=pos, background=g["bg"])


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """Stack PIL images into a float32 Bx3xHxW tensor in [0, 1]."""
    arr = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)


def make_batch(n: int, seed: int, size: int = 64) -> tuple[torch.Tensor, list[str], list[ShapeSpec]]:
    """Render `n` random images deterministically from `seed`: (images in [0,1], captions, specs)."""
    rng = np.random.default_rng(seed)
    specs = [random_spec(rng) for _ in range(n)]
    images = to_tensor([render(s, size) for s in specs])
    return images, [caption(s) for s in specs], specs


def labels_tensor(specs: list[ShapeSpec]) -> dict[str, torch.Tensor]:
    """Class-index tensors (shape, colour, size, position, background) for a list of specs."""
    rows = [s.labels() for s in specs]
    return {k: torch.tensor([r[k] for r in rows], dtype=torch.long) for k in rows[0]}
