"""Text nodes: join strings and fill templates (e.g. to build prompts from parts)."""
from __future__ import annotations

import re
from typing import NamedTuple

from loom import Input, UserInputError, node


class TextOut(NamedTuple):
    text: str


@node(category="text")
def text_concat(a: str = Input("", multiline=True), b: str = Input("", multiline=True),
                separator: str = Input(", ", help="put between a and b when both are non-empty")) -> TextOut:
    """Join two texts with a separator (skipped when either text is empty)."""
    if not a or not b:
        return TextOut(a or b)
    return TextOut(f"{a}{separator}{b}")


_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@node(category="text")
def text_format(template: str = Input("a photo of {a}, {b}", multiline=True,
                                      help="{a} {b} {c} {d} are replaced; {{ and }} give braces"),
                a: str = "", b: str = "", c: str = "", d: str = "") -> TextOut:
    """Fill the fields {a}, {b}, {c}, {d} of a template with texts."""
    values = {"a": a, "b": b, "c": c, "d": d}

    def fill(m: re.Match[str]) -> str:
        token = m.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = m.group(1)
        if name is None:
            raise UserInputError(f"unmatched {token!r} at position {m.start()} of the template; "
                                 "write {{ or }} for a literal brace", input="template")
        if name.strip() not in values:
            raise UserInputError(f"unknown field {{{name}}} in the template; the fields are "
                                 "{a}, {b}, {c} and {d}", input="template")
        return values[name.strip()]

    return TextOut(_FIELD.sub(fill, template))
