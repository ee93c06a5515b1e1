"""The ``@node`` decorator: a typed function becomes a node declaration.

The decorator checks the declaration at import time and attaches a
``NodeSpec``; it does not register anything globally. A ``Registry`` collects
the specs declared in the modules it imports (see ``declared_in``).
"""
from __future__ import annotations

import enum
import functools
import inspect
import re
import sys
import types as pytypes
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union, get_args, get_origin

from .errors import DeclarationError
from .types import ImageFile, ModelFile, Seed, SEED_MAX, type_name

__all__ = ["node", "Input", "NodeSpec", "InputSpec", "OutputSpec", "declared_in"]

_MISSING = inspect.Parameter.empty
WIDGET_BASE_TYPES = (bool, int, float, str)
_ACRONYMS = {"vae", "gan", "fid", "lpips", "ssim", "psnr", "cfg", "rgb", "png", "ddim", "lcm"}

_DECLARED: dict[str, list["NodeSpec"]] = {}


class Input:
    """Default value and constraints of one node input (use as the parameter default)."""

    def __init__(self, default: Any = _MISSING, *, ge: float | None = None, le: float | None = None,
                 step: float | None = None, help: str = "", multiline: bool = False,
                 label: str | None = None) -> None:
        self.default = default
        self.ge, self.le, self.step = ge, le, step
        self.help, self.multiline, self.label = help, multiline, label


@dataclass
class InputSpec:
    """One declared input: a socket (a link) or a widget (a literal, or a link of its type)."""

    name: str
    type: Any                      # a class, Any, or the Literal/Enum type
    kind: str                      # "socket" | "widget"
    widget: str | None             # int float str bool seed combo model_file image_file
    required: bool
    default: Any = None
    ge: float | None = None
    le: float | None = None
    step: float | None = None
    help: str = ""
    multiline: bool = False
    label: str | None = None
    choices: tuple[Any, ...] | None = None
    enum: type[enum.Enum] | None = None
    model_kind: str | None = None

    @property
    def type_name(self) -> str:
        """Name of the accepted type in schemas."""
        if self.widget == "combo":
            return "combo"
        return type_name(self.type)


@dataclass
class OutputSpec:
    """One declared output."""

    name: str
    type: Any


@dataclass
class NodeSpec:
    """Everything the engine knows about one node type."""

    id: str
    fn: Callable[..., Any]
    title: str
    category: str
    version: int
    description: str
    output: bool
    cache: bool
    fingerprint: Callable[..., str] | None
    migrations: dict[int, Callable[[dict[str, Any]], dict[str, Any]]]
    inputs: list[InputSpec]
    outputs: list[OutputSpec]
    takes_context: bool
    returns: str                   # "none" | "single" | "tuple"
    override: bool = False
    module: str = ""
    input_map: dict[str, InputSpec] = field(default_factory=dict)
    output_map: dict[str, OutputSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.input_map = {i.name: i for i in self.inputs}
        self.output_map = {o.name: o for o in self.outputs}

    @functools.cached_property
    def fingerprint_takes_settings(self) -> bool:
        """Whether ``fingerprint`` declares a keyword-only ``settings``: it then also gets the run's
        Settings (to find files that an input names, e.g. embeddings named in a prompt)."""
        if self.fingerprint is None:
            return False
        try:
            param = inspect.signature(self.fingerprint).parameters.get("settings")
        except (TypeError, ValueError):
            return False
        return param is not None and param.kind is param.KEYWORD_ONLY

    def normalize_result(self, result: Any) -> dict[str, Any]:
        """Turn what the function returned into {output name: value}."""
        if self.returns == "none":
            return {}
        if self.returns == "single":
            return {self.outputs[0].name: result}
        if isinstance(result, tuple) and len(result) == len(self.outputs):
            return {o.name: v for o, v in zip(self.outputs, result)}
        raise TypeError(f"node {self.id!r} must return {len(self.outputs)} values "
                        f"({', '.join(o.name for o in self.outputs)}), got {type(result).__name__}")


def declared_in(module_prefix: str) -> list[NodeSpec]:
    """Specs declared in a module or package (and its submodules), in declaration order."""
    out: list[NodeSpec] = []
    for mod, specs in _DECLARED.items():
        if mod == module_prefix or mod.startswith(module_prefix + "."):
            out.extend(specs)
    return out


def _title(node_id: str) -> str:
    return " ".join(w.upper() if w in _ACRONYMS else w.capitalize() for w in node_id.split("_"))


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, pytypes.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _check_widget_value(node_id: str, spec: InputSpec, value: Any) -> str | None:
    """Problem text when ``value`` is not acceptable for the widget, else None."""
    w = spec.widget
    if w == "bool":
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if w in ("int", "seed"):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return f"expected an integer, got {value!r}"
    elif w == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {value!r}"
        if value != value:
            return "expected a number, got NaN"
    elif w in ("str", "model_file", "image_file"):
        if not isinstance(value, str):
            return f"expected text, got {value!r}"
    elif w == "combo":
        if value not in (spec.choices or ()):
            shown = ", ".join(map(repr, (spec.choices or ())[:12]))
            return f"{value!r} is not one of the choices ({shown})"
        return None
    if w == "int" and spec.step and spec.step > 1 and int(spec.step) == spec.step:
        base = spec.ge if spec.ge is not None and spec.ge > 0 else 0
        if (value - base) % int(spec.step) and not (value == 0 and spec.ge is not None and spec.ge <= 0):
            return f"{value!r} is not a multiple of {int(spec.step)}"
    if w in ("int", "float", "seed"):
        if spec.ge is not None and value < spec.ge:
            return f"{value!r} is below the minimum {spec.ge:g}"
        if spec.le is not None and value > spec.le:
            return f"{value!r} is above the maximum {spec.le:g}"
    return None


def _input_spec(node_id: str, param: inspect.Parameter, tp: Any) -> InputSpec:
    decl = param.default if isinstance(param.default, Input) else Input(param.default)
    tp, optional = _unwrap_optional(tp)
    common = dict(name=param.name, ge=decl.ge, le=decl.le, step=decl.step, help=decl.help,
                  multiline=decl.multiline, label=decl.label)
    default = None if decl.default is _MISSING else decl.default
    required = decl.default is _MISSING and not optional
    widget: str | None = None
    choices: tuple[Any, ...] | None = None
    enum_t: type[enum.Enum] | None = None
    model_kind: str | None = None
    if get_origin(tp) is Literal:
        widget, choices = "combo", tuple(get_args(tp))
        if not choices:
            raise DeclarationError(f"node {node_id!r}, input {param.name!r}: Literal[] has no choices")
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        widget, enum_t = "combo", tp
        choices = tuple(m.value for m in tp)
        if isinstance(default, enum.Enum):
            default = default.value
    elif tp is Seed:
        widget = "seed"
        common["ge"] = 0 if decl.ge is None else decl.ge
        common["le"] = SEED_MAX if decl.le is None else decl.le
    elif isinstance(tp, type) and issubclass(tp, ModelFile):
        if tp is ModelFile:
            raise DeclarationError(f"node {node_id!r}, input {param.name!r}: "
                                   "write ModelFile[\"kind\"], e.g. ModelFile[\"checkpoints\"]")
        widget, model_kind = "model_file", tp.kind
    elif tp is ImageFile:
        widget = "image_file"
    elif tp in WIDGET_BASE_TYPES:
        widget = {bool: "bool", int: "int", float: "float", str: "str"}[tp]
    if widget is None and (decl.ge is not None or decl.le is not None or decl.multiline):
        raise DeclarationError(f"node {node_id!r}, input {param.name!r}: min/max/multiline apply "
                               f"to widgets, not to a {type_name(tp)} socket")
    if widget is None and default is not None:
        raise DeclarationError(f"node {node_id!r}, input {param.name!r}: a socket input of type "
                               f"{type_name(tp)} cannot have a default other than None")
    spec = InputSpec(kind="widget" if widget else "socket", widget=widget, type=tp,
                     required=required, default=default, choices=choices, enum=enum_t,
                     model_kind=model_kind, **common)
    if spec.ge is not None and spec.le is not None and spec.ge > spec.le:
        raise DeclarationError(f"node {node_id!r}, input {param.name!r}: minimum {spec.ge} "
                               f"is above maximum {spec.le}")
    if widget and default is not None and widget not in ("model_file", "image_file"):
        problem = _check_widget_value(node_id, spec, default)
        if problem:
            raise DeclarationError(f"node {node_id!r}, input {param.name!r}: default {problem}")
    return spec


def _outputs(node_id: str, ret: Any) -> tuple[list[OutputSpec], str]:
    if ret is None or ret is type(None):
        return [], "none"
    if isinstance(ret, type) and issubclass(ret, tuple) and hasattr(ret, "_fields"):
        hints = typing.get_type_hints(ret)
        outs = []
        for f in ret._fields:
            if f not in hints:
                raise DeclarationError(f"node {node_id!r}: output {f!r} of {ret.__name__} "
                                       "has no type annotation")
            outs.append(OutputSpec(f, hints[f]))
        if not outs:
            raise DeclarationError(f"node {node_id!r}: {ret.__name__} declares no outputs")
        return outs, "tuple"
    name = _snake(type_name(ret)) if ret is not Any else "value"
    return [OutputSpec(name, ret)], "single"


def node(fn: Callable[..., Any] | None = None, *, id: str | None = None, category: str = "misc",
         version: int = 1, title: str | None = None, output: bool = False, cache: bool = True,
         fingerprint: Callable[..., str] | None = None, override: bool = False,
         migrations: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] | None = None) -> Any:
    """Declare a node. Use as ``@node`` or ``@node(category=..., version=...)``."""

    caller = sys._getframe(1)
    local_ns = dict(caller.f_locals) if caller.f_code.co_name != "<module>" else None

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        node_id = id or f.__name__
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", node_id):
            raise DeclarationError(f"node id {node_id!r} must be letters, digits, '_', '-' or '.'")
        if not isinstance(version, int) or version < 1:
            raise DeclarationError(f"node {node_id!r}: version must be an integer ≥ 1")
        for v in (migrations or {}):
            if not (isinstance(v, int) and 1 <= v < version):
                raise DeclarationError(f"node {node_id!r}: migration from version {v!r} "
                                       f"must be between 1 and {version - 1}")
        try:
            hints = typing.get_type_hints(f, localns=local_ns, include_extras=False)
        except Exception as exc:  # unresolvable forward references
            raise DeclarationError(f"node {node_id!r}: cannot resolve annotations: {exc}") from exc
        sig = inspect.signature(f)
        params = list(sig.parameters.values())
        takes_ctx = False
        if params and (params[0].name == "ctx" or _is_context(hints.get(params[0].name))):
            takes_ctx, params = True, params[1:]
        inputs = []
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise DeclarationError(f"node {node_id!r}, parameter {p.name!r}: "
                                       "*args, **kwargs and positional-only parameters are not inputs")
            if p.name not in hints:
                raise DeclarationError(f"node {node_id!r}, parameter {p.name!r}: missing type annotation")
            inputs.append(_input_spec(node_id, p, hints[p.name]))
        if "return" not in hints:
            raise DeclarationError(f"node {node_id!r}: missing return annotation "
                                   "(write -> None for a node without outputs)")
        outputs, returns = _outputs(node_id, hints["return"])
        if fingerprint is not None and not cache:
            raise DeclarationError(f"node {node_id!r}: give either cache=False or fingerprint=, not both")
        doc = inspect.getdoc(f) or ""
        spec = NodeSpec(id=node_id, fn=f, title=title or _title(node_id), category=category,
                        version=version, description=doc.strip().splitlines()[0] if doc else "",
                        output=output, cache=cache, fingerprint=fingerprint,
                        migrations=dict(migrations or {}), inputs=inputs, outputs=outputs,
                        takes_context=takes_ctx, returns=returns, override=override,
                        module=f.__module__)
        f.__loom_node__ = spec  # type: ignore[attr-defined]
        _DECLARED.setdefault(f.__module__, []).append(spec)
        return f

    return wrap(fn) if fn is not None else wrap


def _is_context(tp: Any) -> bool:
    from .context import Context
    return isinstance(tp, type) and issubclass(tp, Context)


check_widget_value = _check_widget_value
