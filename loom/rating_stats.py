"""Statistics of human ratings: means with 95 % intervals, Bradley–Terry strengths, Spearman's ρ.

Pure math on plain Python values (scipy only for the t quantile); no node, no HTTP.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

MAX_ITERATIONS = 10_000
TOLERANCE = 1e-10


@dataclass(frozen=True)
class Interval:
    """A mean with its 95 % confidence interval (t-distribution); low/high are NaN when n < 2."""

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON form: NaN becomes None."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in (("mean", self.mean), ("low", self.low), ("high", self.high), ("n", self.n))}


def t_quantile(df: int, p: float = 0.975) -> float:
    """The p quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t
    return float(t.ppf(p, df))


def mean_interval(values: Iterable[float]) -> Interval:
    """Mean and 95 % t-interval (mean ± t₀.₉₇₅,ₙ₋₁ · s/√n) of the finite values; ValueError if none."""
    xs = [float(v) for v in values]
    bad = [v for v in xs if not math.isfinite(v)]
    if bad:
        raise ValueError(f"ratings must be finite numbers, got {bad[0]!r}")
    n = len(xs)
    if n == 0:
        raise ValueError("no values: a mean needs at least one rating")
    mean = math.fsum(xs) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in xs) / (n - 1))
    half = t_quantile(n - 1) * s / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def _outcomes(pairs: Iterable[Sequence[object]]) -> list[tuple[str, str, float]]:
    """(a, b, a's score) from (winner, loser) or (a, b, score) with score 1, 0.5 (tie) or 0."""
    out = []
    for p in pairs:
        if len(p) == 2:
            a, b, score = str(p[0]), str(p[1]), 1.0
        elif len(p) == 3:
            a, b, score = str(p[0]), str(p[1]), float(p[2])  # type: ignore[arg-type]
            if score not in (0.0, 0.5, 1.0):
                raise ValueError(f"the score of {a!r} against {b!r} must be 1, 0.5 (a tie) or 0, got {p[2]!r}")
        else:
            raise ValueError(f"a comparison is (winner, loser) or (a, b, score), got {p!r}")
        if a == b:
            raise ValueError(f"{a!r} is compared with itself")
        out.append((a, b, score))
    return out


def bradley_terry(pairs: Iterable[Sequence[object]], prior: float = 0.5) -> dict[str, float]:
    """Bradley–Terry strengths (summing to 1) from A/B choices, by Hunter's MM algorithm.

    ``pairs`` holds (winner, loser) tuples, or (a, b, score) where score 0.5 is a tie (half a
    win for each). P(i beats j) = pᵢ / (pᵢ + pⱼ). With ``prior`` > 0 every item also draws
    ``2·prior`` games against a virtual item of fixed strength (half won, half lost): a weak
    pull toward the average, so an unbeaten item keeps a finite strength and items in
    unconnected groups, or never compared, are put on one scale. ``prior=0`` gives the plain
    maximum-likelihood estimate (it exists only when every item both wins and loses, within
    a connected comparison graph).
    """
    games = _outcomes(pairs)
    items = sorted({x for a, b, _ in games for x in (a, b)})
    if not items:
        return {}
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    idx = {name: i for i, name in enumerate(items)}
    k = len(items)
    wins = [prior] * k
    count: dict[tuple[int, int], float] = {}
    for a, b, score in games:
        i, j = idx[a], idx[b]
        wins[i] += score
        wins[j] += 1.0 - score
        key = (min(i, j), max(i, j))
        count[key] = count.get(key, 0.0) + 1.0
    if prior == 0 and min(wins) == 0:
        raise ValueError(f"{items[wins.index(0)]!r} never won: the plain maximum-likelihood strengths do "
                         "not exist (use prior > 0)")
    neighbours: list[list[tuple[int, float]]] = [[] for _ in range(k)]
    for (i, j), n in count.items():
        neighbours[i].append((j, n))
        neighbours[j].append((i, n))
    p = [1.0] * k
    for _ in range(MAX_ITERATIONS):
        new = []
        for i in range(k):
            denom = sum(n / (p[i] + p[j]) for j, n in neighbours[i]) + 2.0 * prior / (p[i] + 1.0)
            new.append(wins[i] / denom if denom > 0 else p[i])
        if prior == 0:  # no anchor: fix the scale by the geometric mean
            g = math.exp(math.fsum(math.log(v) for v in new) / k)
            new = [v / g for v in new]
        change = max(abs(a - b) / max(b, 1e-300) for a, b in zip(new, p))
        p = new
        if change < TOLERANCE:
            break
    total = math.fsum(p)
    return {name: p[idx[name]] / total for name in items}


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return out


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation with ties (Pearson's r of the mid-ranks); NaN when undefined.

    Pairs where either value is missing (None or NaN) are left out.
    """
    if len(a) != len(b):
        raise ValueError(f"the sequences differ in length: {len(a)} and {len(b)}")
    kept = [(float(x), float(y)) for x, y in zip(a, b)
            if x is not None and y is not None and not (math.isnan(float(x)) or math.isnan(float(y)))]
    if len(kept) < 2:
        return math.nan
    ra, rb = ranks([x for x, _ in kept]), ranks([y for _, y in kept])
    ma, mb = math.fsum(ra) / len(ra), math.fsum(rb) / len(rb)
    cov = math.fsum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = math.fsum((x - ma) ** 2 for x in ra)
    vb = math.fsum((y - mb) ** 2 for y in rb)
    if va == 0 or vb == 0:
        return math.nan
    return cov / math.sqrt(va * vb)
