"""Primitive value nodes: one widget whose value can feed several inputs."""
from __future__ import annotations

from typing import NamedTuple

from loom import Input, node
from loom.types import Seed


class IntOut(NamedTuple):
    value: int


class FloatOut(NamedTuple):
    value: float


class StringOut(NamedTuple):
    value: str


class SeedOut(NamedTuple):
    seed: int


@node(category="primitive")
def int_value(value: int = Input(0, ge=-(2**53), le=2**53)) -> IntOut:
    """An integer to wire into several int inputs."""
    return IntOut(value)


@node(category="primitive")
def float_value(value: float = Input(0.0, ge=-1e12, le=1e12, step=0.01)) -> FloatOut:
    """A number to wire into several float inputs."""
    return FloatOut(value)


@node(category="primitive")
def string_value(value: str = Input("", multiline=True)) -> StringOut:
    """Text to wire into several text inputs (e.g. one prompt for two encoders)."""
    return StringOut(value)


@node(category="primitive")
def seed_value(seed: Seed = 0) -> SeedOut:
    """A seed to share between nodes; the canvas can randomize it after each run."""
    return SeedOut(int(seed))
