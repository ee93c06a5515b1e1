"""Tiny nodes for the link-rule tests (tests/web/test_web_link_rule.py, tests/loom/test_link_rule.py).

Outputs of types the built-in nodes do not make (bool, two Enums, Any) and one sink whose
inputs are every widget kind a link can reach: an Enum combo, a str-Enum combo, a combo of
ints, int, float, bool, str, and an Any socket. These are the pairs the canvas and the server
once disagreed on (bool → int, Enum → its combo, int → a combo of ints).
"""
from __future__ import annotations

import enum
from typing import Any, Literal

from loom import Context, Input, node


class Shade(enum.Enum):
    """A plain Enum: feeds its own combo only."""

    LIGHT = "light"
    DARK = "dark"


class Speed(str, enum.Enum):
    """A str Enum: feeds its own combo and str widgets, not other combos of strings."""

    FAST = "fast"
    CAREFUL = "careful"


@node(category="test/links")
def lr_flag(on: bool = True) -> bool:
    """A bool value."""
    return on


@node(category="test/links")
def lr_count(value: int = Input(512, ge=0, le=4096)) -> int:
    """An int value."""
    return value


@node(category="test/links")
def lr_shade(dark: bool = False) -> Shade:
    """A Shade (Enum) value."""
    return Shade.DARK if dark else Shade.LIGHT


@node(category="test/links")
def lr_speed(careful: bool = False) -> Speed:
    """A Speed (str Enum) value."""
    return Speed.CAREFUL if careful else Speed.FAST


@node(category="test/links")
def lr_anything(word: str = "x") -> Any:
    """A value of any type."""
    return word


@node(category="test/links", output=True)
def lr_sink(ctx: Context, shade: Shade = Shade.LIGHT, speed: Speed = Speed.FAST,
            size: Literal[256, 512, 768] = 512, count: int = Input(1, ge=0, le=4096),
            ratio: float = 1.0, flag: bool = False, word: str = "", thing: Any = None) -> None:
    """Show what arrived at every kind of input."""
    ctx.show(values={"shade": str(shade), "speed": str(speed), "size": size, "count": count,
                     "ratio": ratio, "flag": flag, "word": word, "thing": repr(thing)})
