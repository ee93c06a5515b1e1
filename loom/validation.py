"""Finding every problem of a workflow at once, before anything runs."""
from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from .errors import LoomError, UserInputError
from .models import resolve_model
from .nodeapi import InputSpec, NodeSpec, check_widget_value
from .registry import Registry, compatible
from .settings import Settings
from .types import type_name
from .workflow import Workflow, is_link

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


def needed_nodes(nodes: dict[str, Any], outputs: list[str]) -> list[str]:
    """Output nodes and all their ancestors (iterative; no recursion)."""
    seen = set(outputs)
    queue = deque(outputs)
    while queue:
        nid = queue.popleft()
        for _, link in _links(nodes.get(nid)):
            src = link["node"]
            if isinstance(src, str) and src in nodes and src not in seen:
                seen.add(src)
                queue.append(src)
    return [n for n in nodes if n in seen]


def topological_order(nodes: dict[str, Any]) -> list[str]:
    """Nodes with every linked parent before its children (Kahn's algorithm, stable in
    insertion order). Nodes on or behind a cycle are left out."""
    children: dict[str, list[str]] = {nid: [] for nid in nodes}
    waiting = dict.fromkeys(nodes, 0)
    for nid in nodes:
        for _, link in _links(nodes[nid]):
            src = link["node"]
            if isinstance(src, str) and src in nodes:
                children[src].append(nid)
                waiting[nid] += 1
    ready = deque(nid for nid, n in waiting.items() if n == 0)
    order: list[str] = []
    while ready:
        nid = ready.popleft()
        order.append(nid)
        for child in children[nid]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return order


@dataclass
class Plan:
    """What validation learned that the executor reuses: the needed nodes in run order."""

    order: list[str]
    needed: list[str]
    outputs: list[str]


def validate(workflow: Workflow | dict[str, Any], registry: Registry,
             settings: Settings | None = None, upgraded: bool = False) -> list[Problem]:
    """Every problem of the workflow (see ``check``)."""
    return check(workflow, registry, settings, upgraded)[0]


def check(workflow: Workflow | dict[str, Any], registry: Registry,
          settings: Settings | None = None, upgraded: bool = False) -> tuple[list[Problem], Plan | None]:
    """Every problem of the workflow. Nodes that feed no output node are not checked
    (like a scratch node on the canvas), except for unknown types and cycles.
    ``upgraded=True`` skips applying migrations (the caller already did)."""
    try:
        if upgraded and isinstance(workflow, Workflow):
            wf = workflow
        elif isinstance(workflow, dict) and not isinstance(workflow.get("nodes"), dict):
            return [Problem(None, None, "bad_node", "a workflow needs \"nodes\": an object")], None
        else:
            wf = registry.upgrade(workflow)
    except LoomError as exc:
        return [Problem(None, None, "bad_node", str(exc))], None
    except Exception as exc:  # noqa: BLE001 - a migration raised
        return [Problem(None, None, "bad_node", f"migrating the workflow failed: {exc}")], None
    nodes = wf.nodes
    problems: list[Problem] = []
    specs: dict[str, NodeSpec] = {}
    for nid, entry in nodes.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            problems.append(Problem(nid, None, "bad_node", "a node needs a \"type\" string"))
            continue
        spec = registry.get(entry["type"])
        if spec is None:
            problems.append(Problem(nid, None, "unknown_type",
                                    f"unknown node type {entry['type']!r} (is its plugin installed?)"))
            continue
        specs[nid] = spec
    outputs = [nid for nid, s in specs.items() if s.output]
    if not outputs:
        problems.append(Problem(None, None, "no_output",
                                "the workflow has no output node (save, preview or a metric)"))
    order = topological_order(nodes)
    needed = needed_nodes(nodes, outputs)
    for nid in needed:
        if nid in specs:
            problems += _check_node(nid, nodes[nid], specs[nid], nodes, specs, settings)
    if len(order) < len(nodes):  # only now is a graph library worth it: to name the cycles
        problems += _cycles(_link_graph(nodes))
    needed_set = set(needed)
    return problems, Plan([nid for nid in order if nid in needed_set], needed, outputs)


def _check_node(nid: str, entry: dict[str, Any], spec: NodeSpec, nodes: dict[str, Any],
                specs: dict[str, NodeSpec], settings: Settings | None) -> list[Problem]:
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
            continue
        value = inputs[inp.name]
        if isinstance(value, dict) and ("node" in value or "output" in value):
            out += _check_link(nid, inp, value, nodes, specs)
        elif inp.kind == "socket":
            out.append(Problem(nid, inp.name, "expects_link",
                               f"needs a link from a {inp.type_name} output, got the value {value!r}"))
        else:
            out += _check_literal(nid, inp, value, settings)
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
    if not compatible(out.type, inp):
        return [Problem(nid, inp.name, "type_mismatch",
                        f"expects {inp.type_name}, but {src}.{out_name} is {type_name(out.type)}")]
    return []


def _check_literal(nid: str, inp: InputSpec, value: Any, settings: Settings | None) -> list[Problem]:
    msg = check_widget_value(nid, inp, value)
    if msg:
        return [Problem(nid, inp.name, _widget_code(msg), msg)]
    if inp.widget == "model_file" and settings is not None:
        try:
            resolve_model(settings, inp.model_kind or "", value)
        except UserInputError as exc:
            return [Problem(nid, inp.name, "missing_model", str(exc))]
    if inp.widget == "image_file" and settings is not None:
        try:
            resolve_input_image(settings, value)
        except UserInputError as exc:
            return [Problem(nid, inp.name, "missing_file", str(exc))]
    return []


def resolve_input_image(settings: Settings, name: str) -> Path:
    """Absolute path of an uploaded image, never outside the input folder."""
    root = settings.inputs.resolve()
    path = (root / name).resolve()
    if not name or Path(name).is_absolute() or not path.is_relative_to(root):
        raise UserInputError(f"image {name!r} must be a file name inside {root}")
    if not path.is_file():
        raise UserInputError(f"image {name!r} not found in {root} (upload it first)")
    return path


def _link_graph(nodes: dict[str, Any]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((link["node"], nid) for nid in nodes for _, link in _links(nodes[nid])
                     if isinstance(link["node"], str) and link["node"] in nodes)
    return g


def _cycles(g: nx.DiGraph) -> list[Problem]:
    out = []
    for comp in nx.strongly_connected_components(g):
        first = next(iter(comp))
        if len(comp) == 1 and not g.has_edge(first, first):
            continue
        cycle = nx.find_cycle(g.subgraph(comp), source=min(comp))
        path = [u for u, _ in cycle] + [cycle[0][0]]
        out.append(Problem(path[0], None, "cycle", "cycle: " + " → ".join(path)))
    return out
