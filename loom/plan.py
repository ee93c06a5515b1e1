"""compile(): a workflow becomes an immutable Plan, or the list of every problem.

One pass upgrades old node versions (migrations), checks every value and link, resolves
model and image files and enums, orders the nodes and computes the cache keys that are
known before anything runs. ``validate()`` is compile's problems; ``Executor.run(plan)``
only runs nodes. The server compiles a posted workflow once and hands the Plan to its
worker; nothing is checked twice.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from .cache import literal_key, node_key
from .errors import LoomError, MigrationError
from .nodeapi import InputSpec, NodeSpec
from .modes import apply_modes
from .registry import Registry
from .settings import Settings
from .subgraphs import expand_subgraphs, expand_targets
from .graph import needed_nodes, parents_of, topological_order
from .validation import Problem, check_node, cycles, link_graph
from .workflow import Workflow, is_link

__all__ = ["Plan", "PlanCache", "Step", "Link", "compile", "compile_workflow", "validate"]


@dataclass(frozen=True, slots=True)
class Link:
    """One linked input: ``input`` takes ``node``'s ``output``; ``widget`` when the input is a
    widget (its value is checked and converted when it arrives)."""

    input: str
    node: str
    output: str
    widget: InputSpec | None


@dataclass(frozen=True, slots=True)
class Step:
    """One node of a plan, ready to run."""

    id: str
    spec: NodeSpec
    values: Mapping[str, Any]        # literal inputs and defaults, converted for the function
    links: tuple[Link, ...]
    literals: Mapping[str, Any]      # the workflow's literal inputs as written (for cache keys)
    key: str | None                  # the cache key when known before running (None: at run time)
    seeds: tuple[tuple[str, Any], ...]  # (input, literal value or Link) of every Seed input


@dataclass(frozen=True)
class Plan:
    """An immutable, checked workflow: steps in run order, output nodes, the source document."""

    steps: Mapping[str, Step]
    order: tuple[str, ...]
    outputs: tuple[str, ...]
    workflow: Workflow
    settings: Settings | None = field(default=None, compare=False)
    document: dict[str, Any] = field(default_factory=dict, compare=False)  # JSON of ``workflow``

    def __len__(self) -> int:
        return len(self.order)


def validate(workflow: Workflow | dict[str, Any], registry: Registry,
             settings: Settings | None = None) -> list[Problem]:
    """Every problem of the workflow, found at once (compile's problems; [] when it compiles)."""
    result = compile_workflow(workflow, registry, settings)
    return result if isinstance(result, list) else []


def compile_workflow(workflow: Workflow | dict[str, Any], registry: Registry,
                     settings: Settings | None = None,
                     targets: Sequence[str] | None = None, *, upgraded: bool = False
                     ) -> Plan | list[Problem]:
    """The workflow as a Plan, or every problem it has.

    Nodes that feed no output node are not checked (like a scratch node on the canvas),
    except for unknown types and cycles. ``targets`` runs these nodes (and their ancestors)
    instead of the output nodes. Without ``settings``, model and image names are checked
    for their form only and stay names (such a plan is for checking, not for running).
    ``upgraded=True``: the caller already applied the migrations (``Registry.upgrade``).
    """
    wf = workflow if upgraded and isinstance(workflow, Workflow) else _upgraded(workflow, registry)
    if isinstance(wf, list):
        return wf
    nodes, problems = expand_subgraphs(wf, registry)  # instances → "instance/inner" nodes
    nodes, moded = apply_modes(nodes, registry)  # muted and bypassed nodes taken out
    problems += moded
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
    if targets is not None:
        targets = expand_targets(targets, nodes, registry)  # an instance: its output nodes
        outputs = [t for t in targets if t in specs]
        problems += [Problem(t, None, "missing_node", f"no node {t!r} to run")
                     for t in targets if t not in nodes]
    else:
        outputs = [nid for nid, s in specs.items() if s.output]
        if not outputs:
            problems.append(Problem(None, None, "no_output",
                                    "the workflow has no output node (save, preview or a metric)"))
    parents = parents_of(nodes)
    order = topological_order(nodes, parents)
    needed = needed_nodes(nodes, outputs, parents)
    converted: dict[str, dict[str, Any]] = {}
    for nid in needed:
        if nid in specs:
            converted[nid] = {}
            problems += check_node(nid, nodes[nid], specs[nid], nodes, specs, settings, converted[nid])
    if len(order) < len(nodes):  # only now is a graph library worth it: to name the cycles
        problems += cycles(link_graph(nodes))
    if problems:  # one problem per (node, input, code): the first found says the most
        return list({(p.node, p.input, p.code): p for p in reversed(problems)}.values())[::-1]
    needed_set = set(needed)
    steps: dict[str, Step] = {}
    for nid in order:
        if nid in needed_set:
            steps[nid] = _step(nid, nodes[nid], specs[nid], converted[nid], steps)
    return Plan(MappingProxyType(steps), tuple(steps), tuple(outputs), wf, settings,
                wf.to_dict(copy_data=False))


compile = compile_workflow  # the name the design uses; ``compile_workflow`` avoids the builtin


def _upgraded(workflow: Workflow | dict[str, Any], registry: Registry) -> Workflow | list[Problem]:
    try:
        if isinstance(workflow, dict) and not isinstance(workflow.get("nodes"), dict):
            return [Problem(None, None, "bad_node", "a workflow needs \"nodes\": an object")]
        return registry.upgrade(workflow)
    except MigrationError as exc:
        return [Problem(exc.node, None, "bad_node",
                        f"migrating from version {exc.from_version} failed: {exc.message}")]
    except LoomError as exc:
        return [Problem(None, None, "bad_node", str(exc))]


def _step(nid: str, entry: dict[str, Any], spec: NodeSpec, values: dict[str, Any],
          done: dict[str, Step]) -> Step:
    inputs = entry.get("inputs", {})
    links: list[Link] = []
    literals: dict[str, Any] = {}
    for name, v in inputs.items():
        if is_link(v):
            inp = spec.input_map[name]
            links.append(Link(name, v["node"], v["output"], inp if inp.kind == "widget" else None))
        elif name in spec.input_map:
            literals[name] = v
    seeds: list[tuple[str, Any]] = []
    for inp in spec.inputs:
        if inp.widget == "seed":
            link = next((lk for lk in links if lk.input == inp.name), None)
            seeds.append((inp.name, link if link is not None else values.get(inp.name)))
    key = None
    if spec.cache and spec.fingerprint is None:
        parents = [(lk.input, done[lk.node].key, lk.output) for lk in links]
        if all(pk is not None for _, pk, _ in parents):
            key = node_key(spec.id, spec.version, literals, parents, None)  # type: ignore[arg-type]
    for lk in links:
        values.pop(lk.input, None)
    return Step(nid, spec, MappingProxyType(values), tuple(links), MappingProxyType(literals), key,
                tuple(seeds))


class PlanCache:
    """Plans compiled recently, by the content of their workflow (an LRU; thread-safe).

    Compiling a 1,000-node workflow costs ~7 ms; encoding it to find its plan costs ~1 ms.
    A plan is reused only while every file it resolved (models, uploads) still exists;
    fingerprints (file changes) are taken when the plan runs, never at compile time.
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._plans: "OrderedDict[str, Plan]" = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(workflow: Workflow | dict[str, Any], targets: Sequence[str] | None = None) -> str | None:
        """The content key of a workflow, or None when it is not plain JSON (never cached)."""
        doc = workflow.to_dict(copy_data=False) if isinstance(workflow, Workflow) else workflow
        try:
            text = _ENCODE(doc)
        except (TypeError, ValueError):
            return None
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16)
        if targets is not None:
            digest.update("\x00".join(targets).encode())
        return digest.hexdigest()

    def get(self, key: str | None) -> Plan | None:
        """The plan for ``key`` if it is known and every file it resolved is still there."""
        if key is None:
            return None
        with self._lock:
            plan = self._plans.get(key)
            if plan is None:
                return None
            self._plans.move_to_end(key)
        if not all(v.exists() for step in plan.steps.values() for v in step.values.values()
                   if isinstance(v, Path)):
            with self._lock:
                self._plans.pop(key, None)
            return None
        return plan

    def put(self, key: str | None, plan: Plan) -> None:
        """Remember a plan (the least recently used beyond ``size`` are dropped)."""
        if key is None or self.size <= 0:
            return
        with self._lock:
            self._plans[key] = plan
            self._plans.move_to_end(key)
            while len(self._plans) > self.size:
                self._plans.popitem(last=False)


_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False).encode


def literal_json(step: Step) -> str:
    """Canonical JSON of a step's literal inputs (what its cache key hashes)."""
    return literal_key(dict(step.literals))
