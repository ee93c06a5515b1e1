"""Evaluation metrics as pure functions: KID, improved precision/recall, judge accuracy, CLIP score.

* KID (Bińkowski et al. 2018): the unbiased estimate of the squared MMD with the cubic
  polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over random subsets (as torchmetrics'
  ``KernelInceptionDistance``: each subset draws ``subset_size`` rows of each set without
  replacement; the mean and the population standard deviation over subsets are reported).
* Improved precision and recall (Kynkäänniemi et al. 2019): each sample's k-NN radius within
  its own set spans a "manifold"; precision is the share of generated samples inside the
  reference manifold, recall the share of reference samples inside the generated one.
* Judge accuracy: what the shapes judge reads from an image against what its prompt asks.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from .shapes import COLOURS, POSITIONS, SHAPES, SIZES, ShapeSpec, caption, parse_caption, random_spec, render, to_tensor

ATTRIBUTES: tuple[str, ...] = ("colour", "shape", "size", "position")
_CHOICES: dict[str, tuple[str, ...]] = {"colour": COLOURS, "shape": SHAPES, "size": SIZES,
                                        "position": POSITIONS}
_BACKGROUND = re.compile(r"\bon an?\s+(\w+)\s+background\b")
_ALIASES = {"centre": "center", "middle": "center", "big": "large", "tiny": "small", "grey": "gray"}


# --- KID ------------------------------------------------------------------------------
def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    """(x·yᵀ / d + coef) ** degree for rows of x (N, d) and y (M, d)."""
    return (x @ y.T / x.shape[1] + coef) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² of two equal-size sets (m, d), m >= 2, with the cubic polynomial kernel."""
    m = x.shape[0]
    if m < 2 or y.shape[0] != m:
        raise ValueError(f"need two sets of equal size >= 2, got {x.shape[0]} and {y.shape[0]}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


@dataclass(frozen=True)
class KIDResult:
    mean: float
    std: float
    subsets: int
    subset_size: int


def kid(a: torch.Tensor, b: torch.Tensor, subsets: int, subset_size: int, generator: torch.Generator
        ) -> KIDResult:
    """KID of features a (N, d) and b (M, d): MMD² averaged over ``subsets`` random subsets.

    ``subset_size`` 0 means min(N, M). Raises ValueError when a set has fewer rows than the
    subset size, the subset size is below 2, or the feature sizes differ.
    """
    x, y = a.detach().double().cpu(), b.detach().double().cpu()
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"feature shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    size = subset_size or min(x.shape[0], y.shape[0])
    if size < 2:
        raise ValueError(f"the subset size is {size}: KID needs at least 2 images per set")
    if size > min(x.shape[0], y.shape[0]):
        raise ValueError(f"the subset size {size} is larger than the sets ({x.shape[0]} and {y.shape[0]} "
                         "images)")
    if subsets < 1:
        raise ValueError(f"need at least one subset, got {subsets}")
    values = []
    for _ in range(subsets):
        ix = torch.randperm(x.shape[0], generator=generator)[:size]
        iy = torch.randperm(y.shape[0], generator=generator)[:size]
        values.append(mmd2_unbiased(x[ix], y[iy]))
    t = torch.tensor(values, dtype=torch.float64)
    return KIDResult(float(t.mean()), float(t.std(unbiased=False)), subsets, size)


# --- precision / recall -----------------------------------------------------------------
def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of every row of x to its k-th nearest other row (N,)."""
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} samples for k-NN radii, got {x.shape[0]}")
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # the 1st smallest is the row itself (distance 0)


def coverage_share(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """Share of ``points`` inside at least one ball (centre, radius)."""
    d = torch.cdist(points, centres)
    return float((d <= radii[None, :]).any(dim=1).double().mean())


def precision_recall(reference: torch.Tensor, generated: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved (precision, recall) of generated vs reference features (rows), k-NN radius k."""
    r, g = reference.detach().double().cpu(), generated.detach().double().cpu()
    if r.ndim != 2 or g.ndim != 2 or r.shape[1] != g.shape[1]:
        raise ValueError(f"feature shapes differ: {tuple(r.shape)} vs {tuple(g.shape)}")
    precision = coverage_share(g, r, knn_radii(r, k))
    recall = coverage_share(r, g, knn_radii(g, k))
    return precision, recall


# --- reference images ----------------------------------------------------------------------
def caption_batch(spec: ShapeSpec, n: int, seed: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """``n`` renders of one caption's spec with the data set's random jitter (position, size, angle)."""
    import dataclasses

    import numpy as np
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        r = random_spec(rng)
        specs.append(dataclasses.replace(spec, dx=r.dx, dy=r.dy, scale=r.scale, angle=r.angle))
    return to_tensor([render(s, size) for s in specs]), [caption(s) for s in specs]


# --- judge accuracy ---------------------------------------------------------------------
def _find(words: tuple[str, ...], text: str) -> str | None:
    """The first of ``words`` (longest first when they overlap) found as whole words in text."""
    best: tuple[int, int, str] | None = None
    for w in words:
        m = re.search(rf"\b{re.escape(w)}s?\b", text)
        if m and (best is None or (m.start(), -len(w)) < best[:2]):
            best = (m.start(), -len(w), w)
    return best[2] if best else None


def prompt_targets(text: str) -> dict[str, int]:
    """Class indices of the attributes a prompt names ({} when it names none the judge reads).

    A caption of the shapes data set parses exactly; other prompts are read word by word:
    the first shape, colour, size and position words ('top left', 'center', ...) outside
    an 'on a <colour> background' phrase.
    """
    spec = parse_caption(text)
    if spec is not None:
        labels = spec.labels()
        return {k: labels[k] for k in ATTRIBUTES}
    low = " ".join(_ALIASES.get(w, w) for w in re.findall(r"[a-z]+", text.lower()))
    low = _BACKGROUND.sub(" ", low)
    found: dict[str, int] = {}
    for attr in ATTRIBUTES:
        word = _find(_CHOICES[attr], low)
        if word is not None:
            found[attr] = _CHOICES[attr].index(word)
    return found


def judge_accuracy(predicted: dict[str, torch.Tensor], targets: list[dict[str, int]]) -> dict[str, float]:
    """Per attribute: share of images (whose prompt names it) the judge reads as asked; NaN if none.

    ``overall``: share of images whose every named attribute is read as asked.
    """
    n = len(targets)
    out: dict[str, float] = {}
    all_right = [True] * n
    for attr in ATTRIBUTES:
        pred = predicted[attr].tolist()
        hits = [pred[i] == t[attr] for i, t in enumerate(targets) if attr in t]
        for i, t in enumerate(targets):
            if attr in t and pred[i] != t[attr]:
                all_right[i] = False
        out[attr] = sum(hits) / len(hits) if hits else math.nan
    named = [i for i, t in enumerate(targets) if t]
    out["overall"] = sum(all_right[i] for i in named) / len(named) if named else math.nan
    return out


# --- CLIP score -------------------------------------------------------------------------
def clip_score(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Per pair max(100 · cos(image, text), 0), as torchmetrics' CLIPScore (B,)."""
    a = torch.nn.functional.normalize(image_embeds.double(), dim=-1)
    b = torch.nn.functional.normalize(text_embeds.double(), dim=-1)
    return (100.0 * (a * b).sum(-1)).clamp(min=0.0)
