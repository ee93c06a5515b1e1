"""Tiny trivial nodes for engine tests (counting how often each runs)."""
from __future__ import annotations

import enum
import threading
import time
from collections import Counter
from typing import Literal, NamedTuple, Optional

from loom import Context, Input, node
from loom.types import Image, Seed

CALLS: Counter[str] = Counter()
STARTED = threading.Event()


def reset() -> None:
    """Forget call counts."""
    CALLS.clear()
    STARTED.clear()


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@node(category="test")
def t_const(value: int = Input(1, ge=-1000, le=1000)) -> int:
    """A constant integer."""
    CALLS["t_const"] += 1
    return value


@node(category="test")
def t_add(a: int, b: int = Input(0, ge=-1000, le=1000)) -> int:
    """a + b."""
    CALLS["t_add"] += 1
    return a + b


class DivMod(NamedTuple):
    quotient: int
    remainder: int


@node(category="test")
def t_divmod(a: int, b: int = Input(2, ge=1, le=100)) -> DivMod:
    """Quotient and remainder."""
    CALLS["t_divmod"] += 1
    return DivMod(a // b, a % b)


@node(category="test")
def t_scale(x: float, factor: float = Input(1.0, ge=-10.0, le=10.0, step=0.5)) -> float:
    """x * factor."""
    CALLS["t_scale"] += 1
    return x * factor


@node(category="test", output=True)
def t_sink(ctx: Context, value: float, label: str = "v", extra: Optional[int] = None) -> None:
    """Show a number."""
    CALLS["t_sink"] += 1
    ctx.show(values={label: value}, text=[f"{label}={value}"])


@node(category="test", output=True)
def t_collect(value: int) -> int:
    """An output node that also returns its value."""
    CALLS["t_collect"] += 1
    return value


@node(category="test")
def t_fail(a: int) -> int:
    """Always raises."""
    CALLS["t_fail"] += 1
    raise RuntimeError(f"boom with {a}")


@node(category="test")
def t_slow(ctx: Context, a: int, steps: int = Input(200, ge=1, le=100000)) -> int:
    """Counts slowly, reporting progress and checking for interrupts."""
    CALLS["t_slow"] += 1
    STARTED.set()
    for i in range(steps):
        time.sleep(0.01)
        ctx.progress(i + 1, steps)
    return a + steps


@node(category="test", cache=False)
def t_clock(a: int = 0) -> float:
    """Not cacheable: the time."""
    CALLS["t_clock"] += 1
    return time.time()


@node(category="test")
def t_combo(mode: Literal["x", "y"] = "x", colour: Colour = Colour.RED, seed: Seed = 5,
            flag: bool = False, text: str = Input("hi", multiline=True)) -> str:
    """Every widget kind."""
    CALLS["t_combo"] += 1
    assert isinstance(colour, Colour)
    return f"{mode}-{colour.value}-{seed}-{flag}-{text}"


@node(category="test", output=True)
def t_text_sink(ctx: Context, text: str) -> None:
    """Show text."""
    ctx.show(text=[text])


@node(category="test")
def t_big(size: int = Input(1000, ge=1, le=10**8)) -> Image:
    """A tensor of a given number of floats."""
    import torch
    CALLS["t_big"] += 1
    return torch.zeros(1, 1, 1, size)


@node(category="test", output=True)
def t_image_sink(image: Image) -> None:
    """Consume an image."""
    CALLS["t_image_sink"] += 1


def link(node: str, output: str) -> dict[str, str]:
    """A link object."""
    return {"node": node, "output": output}
