"""The checks of one workflow node: inputs, links, literal values, files; run order helpers.

``loom.plan.compile`` runs these over a whole workflow and turns the result into a Plan.
"""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from .errors import UserInputError
from .links import can_feed
from .models import resolve_model
from .nodeapi import InputSpec, NodeSpec, check_widget_value
from .paths import resolve_inside
from .settings import Settings
from .types import type_name
from .workflow import is_link

CODES = ("bad_node", "unknown_type", "version_too_new", "bad_inputs", "unknown_input",
         "missing_input", "bad_link", "missing_node", "missing_output", "type_mismatch",
         "expects_link", "bad_value", "out_of_range", "not_in_choices", "missing_model",
         "missing_file", "cycle", "no_output")


@dataclass(frozen=True)
class Problem:
    """One thing wrong: which node, which input, a stable code and a message for people."""

    node: str | None
    input: str | None
    code: str
    message: str

    def __str__(self) -> str:
        where = self.node if self.node is not None else "workflow"
        if self.input is not None:
            where = f"{where}.{self.input}"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def _widget_code(message: str) -> str:
    if "not one of the choices" in message:
        return "not_in_choices"
    if "minimum" in message or "maximum" in message or "multiple of" in message:
        return "out_of_range"
    return "bad_value"


def _links(entry: Any) -> list[tuple[str, Any]]:
    inputs = entry.get("inputs") if isinstance(entry, dict) else None
    if not isinstance(inputs, dict):
        return []
    return [(k, v) for k, v in inputs.items() if is_link(v)]


def check_node(nid: str, entry: dict[str, Any], spec: NodeSpec, nodes: dict[str, Any],
               specs: dict[str, NodeSpec], settings: Settings | None,
               values: dict[str, Any]) -> list[Problem]:
    """The problems of one node; fills ``values`` with its literal inputs (and defaults)
    converted for the function (see ``convert_value``)."""
    out: list[Problem] = []
    ver = entry.get("version", spec.version)
    if not isinstance(ver, int) or ver > spec.version:
        out.append(Problem(nid, None, "version_too_new",
                           f"{spec.id} version {ver!r} is newer than the installed version "
                           f"{spec.version}; update the plugin"))
    inputs = entry.get("inputs", {})
    if not isinstance(inputs, dict):
        return out + [Problem(nid, None, "bad_inputs", "\"inputs\" must be an object")]
    for name in inputs:
        if name not in spec.input_map:
            known = ", ".join(spec.input_map) or "none"
            out.append(Problem(nid, name, "unknown_input",
                               f"{spec.id} has no input {name!r} (inputs: {known})"))
    for inp in spec.inputs:
        if inp.name not in inputs or inputs[inp.name] is None:
            if inp.required and (inp.kind == "socket" or inp.default is None):
                what = f"a link from a {inp.type_name} output" if inp.kind == "socket" else "a value"
                out.append(Problem(nid, inp.name, "missing_input", f"required input needs {what}"))
            elif inp.default is not None:  # converted like a given value: a default model name resolves too
                out += _check_literal(nid, inp, inp.default, settings, values)
            else:
                values[inp.name] = None
            continue
        value = inputs[inp.name]
        if isinstance(value, dict) and ("node" in value or "output" in value):
            out += _check_link(nid, inp, value, nodes, specs)
        elif inp.kind == "socket":
            out.append(Problem(nid, inp.name, "expects_link",
                               f"needs a link from a {inp.type_name} output, got the value {value!r}"))
        else:
            out += _check_literal(nid, inp, value, settings, values)
    return out


def _check_link(nid: str, inp: InputSpec, link: Any, nodes: dict[str, Any],
                specs: dict[str, NodeSpec]) -> list[Problem]:
    if not is_link(link) or not isinstance(link["node"], str) or not isinstance(link["output"], str):
        return [Problem(nid, inp.name, "bad_link",
                        f"a link is {{\"node\": id, \"output\": name}}, got {link!r}")]
    src, out_name = link["node"], link["output"]
    if src not in nodes:
        return [Problem(nid, inp.name, "missing_node", f"links to node {src!r}, which does not exist")]
    src_spec = specs.get(src)
    if src_spec is None:
        return []  # the source's own problem is reported on it
    out = src_spec.output_map.get(out_name)
    if out is None:
        names = ", ".join(src_spec.output_map) or "none"
        return [Problem(nid, inp.name, "missing_output",
                        f"node {src!r} ({src_spec.id}) has no output {out_name!r} (outputs: {names})")]
    if not can_feed(out.type, inp):
        return [Problem(nid, inp.name, "type_mismatch",
                        f"expects {inp.type_name}, but {src}.{out_name} is {type_name(out.type)}")]
    return []


def _check_literal(nid: str, inp: InputSpec, value: Any, settings: Settings | None,
                   values: dict[str, Any]) -> list[Problem]:
    msg = check_widget_value(nid, inp, value)
    if msg:
        return [Problem(nid, inp.name, _widget_code(msg), msg)]
    try:
        values[inp.name] = _converted(inp, value, settings)
    except UserInputError as exc:
        code = "missing_model" if inp.widget == "model_file" else "missing_file"
        return [Problem(nid, inp.name, code, str(exc))]
    return []


def convert_value(nid: str, inp: InputSpec, value: Any, settings: Settings | None) -> Any:
    """A widget value as the node function receives it, or UserInputError naming the input.

    Enum combos get the member, numbers their type, model and image names the resolved
    ``Path`` (only with ``settings``). Compile converts literals once; the executor converts
    values that arrive over a link with this same function.
    """
    if inp.kind != "widget":
        return value
    if isinstance(value, bool) and inp.widget == "int":
        value = int(value)  # the bool -> int coercion of loom.types.COERCIONS
    msg = check_widget_value(nid, inp, value.value if isinstance(value, enum.Enum) and inp.enum else value)
    if msg:
        raise UserInputError(msg, inp.name)
    return _converted(inp, value, settings)


def _converted(inp: InputSpec, value: Any, settings: Settings | None) -> Any:
    if inp.kind != "widget":
        return value
    if inp.enum is not None:
        return value if isinstance(value, inp.enum) else inp.enum(value)
    if inp.widget == "float":
        return float(value)
    if inp.widget in ("int", "seed"):
        return int(value)
    if inp.widget == "model_file" and settings is not None:
        return resolve_model(settings, inp.model_kind or "", value)
    if inp.widget == "image_file" and settings is not None:
        return resolve_input_image(settings, value)
    return value


def resolve_input_image(settings: Settings, name: str) -> Path:
    """Absolute path of an uploaded image, strictly inside the input folder (``resolve_inside``)."""
    root = settings.inputs.resolve()
    try:
        path = resolve_inside(root, name)
    except ValueError as exc:
        raise UserInputError(f"image {name!r} {exc}: use a file name inside {root}") from None
    if not path.is_file():
        raise UserInputError(f"image {name!r} not found in {root} (upload it first)")
    return path


def link_graph(nodes: dict[str, Any]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((link["node"], nid) for nid in nodes for _, link in _links(nodes[nid])
                     if isinstance(link["node"], str) and link["node"] in nodes)
    return g


def cycles(g: nx.DiGraph) -> list[Problem]:
    out = []
    for comp in nx.strongly_connected_components(g):
        first = next(iter(comp))
        if len(comp) == 1 and not g.has_edge(first, first):
            continue
        cycle = nx.find_cycle(g.subgraph(comp), source=min(comp))
        path = [u for u, _ in cycle] + [cycle[0][0]]
        out.append(Problem(path[0], None, "cycle", "cycle: " + " → ".join(path)))
    return out
