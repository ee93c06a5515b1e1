"""Subgraphs: reusable groups of nodes that a workflow uses like one node.

A workflow may carry a top-level ``"subgraphs"`` object of definitions::

    "subgraphs": {"blur2": {
        "title": "Blur twice",
        "nodes": {"a": {...same node format...}, "b": {...}},
        "inputs":  [{"name": "image", "type": "Image", "to": [{"node": "a", "input": "image"}]}],
        "outputs": [{"name": "image", "type": "Image", "from": {"node": "b", "output": "image"}}]}}

and a node uses one as ``{"type": "subgraph", "subgraph": "blur2", "inputs": {"image": link}}``.
An instance's input (a link or a literal) replaces every inner input it goes ``to``; an
input the instance does not give keeps the inner node's own value, if it has one. A link to
``{"node": instance, "output": name}`` means the inner output named by ``from``.

``expand_subgraphs`` turns every instance into plain nodes with ids ``<instance>/<inner>``
(nested: ``a/b/c``) before compile; inner nodes are the same nodes with the same literal
inputs and links, so their cache keys equal those of the same nodes written flat. An
instance's ``"mode"`` (mute or bypass) applies to every node inside it; ``ui`` is ignored.
Definitions may use other subgraphs; a definition that uses itself (directly or through
others) is refused, and so is nesting deeper than ``MAX_DEPTH`` or an expansion of more than
``MAX_NODES`` nodes.
"""
from __future__ import annotations

from typing import Any, Iterable

from .errors import MigrationError
from .registry import Registry
from .validation import Problem
from .workflow import MAX_JSON_DEPTH, Workflow, is_link

__all__ = ["SUBGRAPH_TYPE", "MAX_DEPTH", "MAX_NODES", "expand_subgraphs", "expand_targets",
           "is_instance"]

SUBGRAPH_TYPE = "subgraph"
MAX_DEPTH = MAX_JSON_DEPTH  # subgraphs inside subgraphs: the same bound as JSON nesting
MAX_NODES = 100_000  # nodes and instances after expansion (a 16 MB workflow holds about as many)
SEP = "/"


class _TooLarge(Exception):
    """The expansion went over ``MAX_NODES``."""


def is_instance(entry: Any) -> bool:
    """Is this node entry a use of a subgraph?"""
    return isinstance(entry, dict) and entry.get("type") == SUBGRAPH_TYPE


def expand_subgraphs(workflow: Workflow, registry: Registry | None = None
                     ) -> tuple[dict[str, Any], list[Problem]]:
    """The workflow's nodes with every subgraph instance replaced by its inner nodes.

    Returns ``(nodes, problems)``; problems inside a definition name the expanded node
    (``instance/inner``), problems of an instance name the instance. With a ``registry``,
    inner nodes of an older version are migrated (a failing migration is a problem).
    Without any instance the workflow's own ``nodes`` dict comes back unchanged.
    """
    nodes = workflow.nodes
    if not any(is_instance(e) for e in nodes.values()):
        return nodes, []
    defs = workflow.extra.get("subgraphs", {})
    problems: list[Problem] = []
    if not isinstance(defs, dict):
        problems.append(Problem(None, None, "bad_node", "\"subgraphs\" must be an object of "
                                                        "subgraph id → definition"))
        defs = {}
    expander = _Expander(defs, problems)
    try:
        expander.level(nodes, "", (), {}, None)
    except _TooLarge:  # the instances are left out: links to them name them
        return {n: e for n, e in nodes.items() if not is_instance(e)}, [Problem(
            None, None, "bad_node", f"the workflow expands to more than {MAX_NODES} nodes; "
                                    f"the limit is {MAX_NODES}")]
    flat = expander.resolve()
    if registry is not None and expander.inner:
        flat = _migrate_inner(flat, expander.inner, registry, problems)
    return flat, problems


def expand_targets(targets: Iterable[str], nodes: dict[str, Any], registry: Registry) -> list[str]:
    """Targets with each instance id replaced by the output nodes inside it (expanded ids)."""
    out: list[str] = []
    for t in targets:
        if t in nodes:
            out.append(t)
            continue
        prefix = t + SEP
        inner = [n for n, e in nodes.items() if n.startswith(prefix) and isinstance(e, dict)
                 and (spec := registry.get(e.get("type"))) is not None and spec.output]
        out.extend(inner or [t])
    return out


def _definition_problem(defn: Any, sid: str) -> str | None:
    """Why a definition is malformed, or None."""
    if not isinstance(defn, dict):
        return f"subgraph {sid!r} is not an object"
    if not isinstance(defn.get("nodes"), dict):
        return f"subgraph {sid!r} needs \"nodes\": an object"
    for key, ends in (("inputs", "to"), ("outputs", "from")):
        ports = defn.get(key, [])
        if not isinstance(ports, list):
            return f"subgraph {sid!r}: \"{key}\" must be a list"
        for port in ports:
            if not isinstance(port, dict) or not isinstance(port.get("name"), str):
                return f"subgraph {sid!r}: each of its {key} needs a \"name\""
            end = port.get(ends)
            if key == "inputs":
                ok = isinstance(end, list) and all(
                    isinstance(t, dict) and isinstance(t.get("node"), str)
                    and isinstance(t.get("input"), str) for t in end)
            else:
                ok = (isinstance(end, dict) and isinstance(end.get("node"), str)
                      and isinstance(end.get("output"), str))
            if not ok:
                shape = ("[{\"node\", \"input\"}, …]" if key == "inputs"
                         else "{\"node\", \"output\"}")
                return f"subgraph {sid!r}: {key[:-1]} {port['name']!r} needs \"{ends}\": {shape}"
    return None


class _Expander:
    """One expansion: flat nodes, instance outputs, and where each inner node came from."""

    def __init__(self, defs: dict[str, Any], problems: list[Problem]) -> None:
        self.defs = defs
        self.problems = problems
        self.flat: dict[str, Any] = {}
        self.outputs: dict[str, dict[str, dict[str, str]]] = {}  # instance → output → link
        self.inner: set[str] = set()  # ids of nodes that came from a definition
        self.broken: set[str] = set()  # instances with a problem of their own
        self.checked: dict[str, tuple[str | None, dict[str, Any]]] = {}  # id → (why bad, ports)
        self.count = 0  # nodes and instances so far

    def level(self, nodes: dict[str, Any], prefix: str, stack: tuple[str, ...],
              injected: dict[str, dict[str, Any]], mode: str | None) -> None:
        """Add the nodes of one graph level (the workflow, or a definition under ``prefix``)."""
        for nid, entry in nodes.items():
            full = prefix + nid
            self.count += 1
            if self.count > MAX_NODES:
                raise _TooLarge
            if is_instance(entry):
                self.instance(full, entry, prefix, stack, injected.get(nid, {}), mode)
                continue
            if full in self.flat:
                self.problems.append(Problem(full, None, "bad_node", f"node id {full!r} is used "
                                             "twice (once as a node inside a subgraph)"))
                continue
            if not prefix:
                self.flat[full] = entry
                continue
            node = {k: v for k, v in entry.items() if k != "ui"} if isinstance(entry, dict) else entry
            if isinstance(node, dict):
                inputs = node.get("inputs", {})
                if isinstance(inputs, dict):
                    inputs = {k: _prefixed(v, prefix) for k, v in inputs.items()}
                    inputs.update(injected.get(nid, {}))
                    node["inputs"] = inputs
                if mode is not None:
                    node["mode"] = mode
            self.flat[full] = node
            self.inner.add(full)

    def fail(self, instance: str, name: str | None, code: str, message: str) -> None:
        """A problem of an instance itself (links to its outputs then have nothing to follow)."""
        self.broken.add(instance)
        self.problems.append(Problem(instance, name, code, message))

    def instance(self, full: str, entry: dict[str, Any], prefix: str, stack: tuple[str, ...],
                 given_injected: dict[str, Any], mode: str | None) -> None:
        """Expand one instance whose id is ``full`` (its links are relative to ``prefix``)."""
        sid = entry.get("subgraph")
        defn = self.defs.get(sid) if isinstance(sid, str) else None
        self.outputs[full] = {}
        if not isinstance(sid, str):
            return self.fail(full, None, "bad_node",
                             "a subgraph node needs \"subgraph\": the id of a definition")
        if defn is None:
            return self.fail(full, None, "missing_node",
                             f"there is no subgraph {sid!r} in this workflow's \"subgraphs\"")
        if sid in stack:
            path = " → ".join((*stack[stack.index(sid):], sid))
            return self.fail(full, None, "cycle", f"subgraph {sid!r} uses itself: {path}")
        if len(stack) >= MAX_DEPTH:
            return self.fail(full, None, "bad_node",
                             f"subgraphs are nested more than {MAX_DEPTH} deep; the limit is {MAX_DEPTH}")
        if sid not in self.checked:
            why = _definition_problem(defn, sid)
            self.checked[sid] = why, ({p["name"]: p for p in defn.get("inputs", [])} if why is None else {})
        why, ports = self.checked[sid]
        if why is not None:
            return self.fail(full, None, "bad_node", why)
        inputs = entry.get("inputs", {})
        if not isinstance(inputs, dict):
            return self.fail(full, None, "bad_inputs", "\"inputs\" must be an object")
        inner_nodes = defn["nodes"]
        given = {k: _prefixed(v, prefix) for k, v in inputs.items()}
        given.update(given_injected)  # this instance is itself inside a definition
        injected: dict[str, dict[str, Any]] = {}
        for name, value in given.items():
            port = ports.get(name)
            if port is None:
                known = ", ".join(ports) or "none"
                self.problems.append(Problem(full, name, "unknown_input", f"subgraph {sid!r} has "
                                             f"no input {name!r} (inputs: {known})"))
                continue
            for to in port["to"]:
                if to["node"] not in inner_nodes:
                    return self.fail(full, name, "bad_node", f"subgraph {sid!r} sends input "
                                     f"{name!r} to a node {to['node']!r} it does not have")
                injected.setdefault(to["node"], {})[to["input"]] = value
        inner_prefix = full + SEP
        for port in defn.get("outputs", []):
            src = port["from"]
            if src["node"] not in inner_nodes:
                return self.fail(full, None, "bad_node", f"subgraph {sid!r}: output "
                                 f"{port['name']!r} comes from a node {src['node']!r} it does not have")
            self.outputs[full][port["name"]] = {"node": inner_prefix + src["node"],
                                                "output": src["output"]}
        own = entry.get("mode", "active")
        inner_mode = mode if mode is not None else (own if own in ("mute", "bypass") else None)
        self.level(inner_nodes, inner_prefix, (*stack, sid), injected, inner_mode)
        return None

    def resolve(self) -> dict[str, Any]:
        """The flat nodes with links to instances pointed at the inner nodes they stand for."""
        out: dict[str, Any] = {}
        for nid, entry in self.flat.items():
            inputs = entry.get("inputs") if isinstance(entry, dict) else None
            if not isinstance(inputs, dict) or not any(self._to_instance(v) for v in inputs.values()):
                out[nid] = entry
                continue
            new = dict(inputs)
            for name, v in inputs.items():
                if self._to_instance(v):
                    target, why = self._through(v)
                    if target is None:  # reported once, as the input's missing value
                        del new[name]
                        self.problems.append(Problem(nid, name, "missing_input", why))
                    else:
                        new[name] = target
            out[nid] = {**entry, "inputs": new}
        return out

    def _to_instance(self, value: Any) -> bool:
        return is_link(value) and isinstance(value["node"], str) and value["node"] in self.outputs

    def _through(self, link: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """Follow a link through instance outputs (nested ones too) to a plain node:
        (link, "") or (None, why not)."""
        while link["node"] in self.outputs:  # ends: each step goes one level deeper
            inst = link["node"]
            outs = self.outputs[inst]
            nxt = outs.get(link["output"]) if isinstance(link["output"], str) else None
            if nxt is None:
                if inst in self.broken:
                    return None, f"comes from subgraph node {inst!r}, which has a problem"
                names = ", ".join(outs) or "none"
                return None, (f"subgraph node {inst!r} has no output {link['output']!r} "
                              f"(outputs: {names})")
            link = nxt
        return link, ""


def _prefixed(value: Any, prefix: str) -> Any:
    """A link made relative to the top level (``prefix`` + node); other values unchanged."""
    if prefix and is_link(value) and isinstance(value["node"], str):
        return {"node": prefix + value["node"], "output": value["output"]}
    return value


def _migrate_inner(flat: dict[str, Any], inner: set[str], registry: Registry,
                   problems: list[Problem]) -> dict[str, Any]:
    """Inner nodes migrated to their node's current version, one at a time (so that a
    failing migration is that node's problem)."""
    out = dict(flat)
    for nid in inner:
        entry = flat[nid]
        spec = registry.get(entry.get("type")) if isinstance(entry, dict) else None
        ver = entry.get("version") if spec is not None else None
        if not isinstance(ver, int) or ver >= spec.version:  # type: ignore[union-attr]
            continue
        try:
            out[nid] = registry.upgrade(Workflow(nodes={nid: flat[nid]})).nodes[nid]
        except MigrationError as exc:
            problems.append(Problem(nid, None, "bad_node",
                                    f"migrating from version {exc.from_version} failed: {exc.message}"))
    return out
