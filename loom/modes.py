"""Muted and bypassed nodes: the workflow as it runs once they are taken out.

A node entry may say ``"mode": "mute"`` or ``"mode": "bypass"`` (absent or ``"active"``: it
runs), as node-editor users know them:

- a muted node is left out, as if it were not there; an input linked to it is then empty
  (a problem when the input is required);
- a bypassed node is left out too, but each link from one of its outputs is rewired to the
  first of its own linked inputs (in declaration order) whose source can feed the consumer
  (``loom.links.can_feed``): an image filter passes its image through. Chains of bypassed
  nodes are followed. When none of its inputs fits, the consumer's input is a problem.

``compile`` applies this first, so cache keys of a bypassed chain equal those of the chain
written without the node.
"""
from __future__ import annotations

from typing import Any

from .links import can_feed
from .registry import Registry
from .validation import Problem
from .workflow import is_link

MODES = ("active", "bypass", "mute")


def apply_modes(nodes: dict[str, Any], registry: Registry) -> tuple[dict[str, Any], list[Problem]]:
    """The nodes with muted and bypassed ones taken out, and the problems that leaves."""
    modes: dict[str, str] = {}
    problems: list[Problem] = []
    for nid, entry in nodes.items():
        mode = entry.get("mode", "active") if isinstance(entry, dict) else "active"
        if mode not in MODES:
            problems.append(Problem(nid, None, "bad_node",
                                    f"\"mode\" must be one of {', '.join(MODES)}, got {mode!r}"))
        elif mode != "active":
            modes[nid] = mode
    if not modes:
        return nodes, problems
    out: dict[str, Any] = {}
    for nid, entry in nodes.items():
        if nid in modes:
            continue
        inputs = entry.get("inputs") if isinstance(entry, dict) else None
        if not isinstance(inputs, dict) or not any(is_link(v) and v["node"] in modes
                                                   for v in inputs.values()):
            out[nid] = entry
            continue
        spec = registry.get(entry.get("type")) if isinstance(entry.get("type"), str) else None
        new_inputs = dict(inputs)
        for name, v in inputs.items():
            if not (is_link(v) and v["node"] in modes):
                continue
            inp = spec.input_map.get(name) if spec is not None else None
            source, why = _through(v, inp, nodes, modes, registry)
            if source is not None:
                new_inputs[name] = source
                continue
            del new_inputs[name]
            if inp is not None and inp.required and (inp.kind == "socket" or inp.default is None):
                problems.append(Problem(nid, name, "missing_input", why))
        out[nid] = {**entry, "inputs": new_inputs}
    return out, problems


def _through(link: dict[str, Any], inp: Any, nodes: dict[str, Any], modes: dict[str, str],
             registry: Registry) -> tuple[dict[str, Any] | None, str]:
    """Where a link into muted/bypassed nodes really comes from: (link or None, why not)."""
    seen: set[str] = set()
    while link["node"] in modes:
        nid = link["node"]
        if modes[nid] == "mute":
            return None, f"comes from node {nid!r}, which is muted"
        if nid in seen:
            return None, f"comes from a loop of bypassed nodes through {nid!r}"
        seen.add(nid)
        entry = nodes[nid]
        spec = registry.get(entry.get("type")) if isinstance(entry.get("type"), str) else None
        if spec is None:
            return None, f"comes from node {nid!r}, which is bypassed and of an unknown type"
        given = entry.get("inputs", {}) if isinstance(entry.get("inputs"), dict) else {}
        link = next((v for v in (given.get(i.name) for i in spec.inputs)
                     if is_link(v) and _feeds(v, inp, nodes, modes, registry)), None)  # type: ignore[assignment]
        if link is None:
            return None, (f"comes from node {nid!r}, which is bypassed and has no linked input "
                          "that can take its place")
    return link, ""


def _feeds(link: dict[str, Any], inp: Any, nodes: dict[str, Any], modes: dict[str, str],
           registry: Registry) -> bool:
    """May what ``link`` carries feed ``inp``? (a link into another bypassed node: its type is
    the output's declared type; a muted source never feeds)."""
    src = nodes.get(link["node"])
    if not isinstance(src, dict) or modes.get(link["node"]) == "mute":
        return False
    spec = registry.get(src.get("type")) if isinstance(src.get("type"), str) else None
    out = spec.output_map.get(link["output"]) if spec is not None else None
    return inp is None or out is None or can_feed(out.type, inp)
