"""Float32 steps for thresholds: ComfyUI keeps mask values *above* a threshold, Loom's
``threshold_mask`` those *at or above* its level. Masks are float32, so ``v > t`` is exactly
``v >= next_up(t)``: the neighbouring float32, written with the fewest digits that name it."""
from __future__ import annotations

import math
import struct


def _bits(x: float) -> int:
    return struct.unpack("<i", struct.pack("<f", x))[0]


def _from_bits(i: int) -> float:
    return struct.unpack("<f", struct.pack("<i", i))[0]


def to_f32(x: float) -> float:
    """``x`` rounded to the nearest float32 (what torch compares a float32 mask with)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def shortest(x: float) -> float:
    """The float32 value of ``x`` with the fewest decimal digits that still round to it."""
    f = to_f32(x)
    for digits in range(1, 10):
        candidate = float(f"{f:.{digits}g}")
        if to_f32(candidate) == f:
            return candidate
    return f


def next_up(x: float) -> float:
    """The smallest float32 above ``x`` (for ``x`` >= 0), shortest form."""
    f = to_f32(x)
    if math.isinf(f) or math.isnan(f):
        return f
    return shortest(_from_bits(_bits(f) + 1) if f > 0 else _from_bits(1) if f == 0 else
                    _from_bits(_bits(f) - 1))


def next_down(x: float) -> float:
    """The largest float32 below ``x`` (for ``x`` > 0), shortest form."""
    f = to_f32(x)
    if f <= 0 or math.isinf(f) or math.isnan(f):
        return f
    return shortest(_from_bits(_bits(f) - 1))
