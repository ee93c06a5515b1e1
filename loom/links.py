"""The one rule for links, and the runtime check of a value against its declared type.

``can_feed(output_type, input)`` decides whether an output may feed an input. The validator
asks it for every link; the registry asks it to list, for every input, the output types the
canvas may connect to it (``accepts`` in the schema), so the canvas never decides on its own.

``check_value(type, value)`` is what the executor asks of every output a node returns: a
socket type checks its runtime value (``Image`` is a float BCHW tensor, a ``VAE`` is an
instance of ``VAE``...). A socket class may define ``loom_check(value) -> str | None`` to
say more than ``isinstance``.
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch

from .types import COERCIONS, Image, Mask, type_name

if TYPE_CHECKING:  # pragma: no cover
    from .nodeapi import InputSpec

__all__ = ["can_feed", "accepted_types", "check_value", "register_check"]


def can_feed(out_type: Any, inp: "InputSpec") -> bool:
    """May an output of ``out_type`` feed the input ``inp``?

    A subclass feeds its bases; ``COERCIONS`` adds int → float and bool → int. Widget inputs
    take a link of their own kind: a ``str`` for combos of strings, model and image files
    (checked against the choices when the value is known), an ``int`` for a seed or a combo
    of integers, the Enum itself for an Enum combo. ``Any`` on either side feeds anything.
    """
    in_type = inp.type
    if out_type is Any or in_type is Any:
        return True
    if not isinstance(out_type, type):
        return bool(out_type == in_type)
    if inp.widget == "combo":
        if inp.enum is not None and issubclass(out_type, inp.enum):
            return True
        if issubclass(out_type, enum.Enum):
            return False
        choices = inp.choices or ()
        if issubclass(out_type, str):
            return all(isinstance(c, str) for c in choices)
        return out_type is int and bool(choices) and all(
            isinstance(c, int) and not isinstance(c, bool) for c in choices)
    if inp.widget in ("model_file", "image_file"):
        return issubclass(out_type, str)
    if inp.widget == "seed":
        return issubclass(out_type, int) and not issubclass(out_type, bool)
    if isinstance(in_type, type):
        return issubclass(out_type, in_type) or (out_type, in_type) in COERCIONS
    return False


def accepted_types(inp: "InputSpec", output_types: Iterable[Any]) -> list[str]:
    """The type names, among ``output_types``, whose outputs may feed ``inp`` (sorted)."""
    return sorted({type_name(t) for t in output_types if can_feed(t, inp)})


# --- runtime checks ------------------------------------------------------------------
Check = Callable[[Any], "str | None"]
_CHECKS: dict[Any, Check] = {}


def register_check(tp: Any, check: Check) -> None:
    """Give a type a runtime check: ``check(value)`` returns None when fine, else what is wrong."""
    _CHECKS[tp] = check


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _image(value: Any) -> str | None:
    if not isinstance(value, torch.Tensor) or value.dim() != 4 or not value.is_floating_point():
        return f"expected an image (a float tensor B×C×H×W), got {_describe(value)}"
    if value.shape[1] not in (1, 3, 4):
        return f"expected an image with 1, 3 or 4 channels, got {_describe(value)}"
    if value.shape[0] == 0:
        return "expected an image batch, got an empty one"
    return None


def _mask(value: Any) -> str | None:
    if not isinstance(value, torch.Tensor) or value.dim() != 4 or value.shape[1] != 1 \
            or not value.is_floating_point():
        return f"expected a mask (a float tensor B×1×H×W), got {_describe(value)}"
    return None


def _number(kind: tuple[type, ...], name: str) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) and bool not in kind:
            return f"expected {name}, got a bool"
        if isinstance(value, kind):
            return None
        return f"expected {name}, got {_describe(value)}"
    return check


register_check(Image, _image)
register_check(Mask, _mask)
register_check(int, _number((int,), "an int"))
register_check(float, _number((int, float), "a float"))
register_check(bool, _number((bool,), "a bool"))


def check_value(tp: Any, value: Any) -> str | None:
    """None when ``value`` is a valid runtime value of the declared type ``tp``, else why not."""
    if tp is Any or tp is None:
        return None
    check = _CHECKS.get(tp)
    if check is None:
        own = getattr(tp, "loom_check", None)
        if callable(own):
            return own(value)  # type: ignore[no-any-return]
        if isinstance(tp, type):
            if isinstance(value, tp):
                return None
            return f"expected {type_name(tp)}, got {_describe(value)}"
        return None
    return check(value)
