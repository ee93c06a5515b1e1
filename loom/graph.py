"""Order and reach in a workflow's link graph: plain dicts, no torch (importers use it too)."""
from __future__ import annotations

from collections import deque
from typing import Any

from .workflow import is_link


def parents_of(nodes: dict[str, Any]) -> dict[str, list[str]]:
    """For each node, the existing nodes its links come from (one entry per link)."""
    out: dict[str, list[str]] = {}
    for nid, entry in nodes.items():
        inputs = entry.get("inputs") if isinstance(entry, dict) else None
        srcs: list[str] = []
        if isinstance(inputs, dict):
            for v in inputs.values():
                if type(v) is dict and is_link(v):
                    src = v["node"]
                    if isinstance(src, str) and src in nodes:
                        srcs.append(src)
        out[nid] = srcs
    return out


def needed_nodes(nodes: dict[str, Any], outputs: list[str],
                 parents: dict[str, list[str]] | None = None) -> list[str]:
    """Output nodes and all their ancestors (iterative; no recursion)."""
    parents = parents_of(nodes) if parents is None else parents
    seen = set(outputs)
    queue = deque(outputs)
    while queue:
        for src in parents.get(queue.popleft(), ()):
            if src not in seen:
                seen.add(src)
                queue.append(src)
    return [n for n in nodes if n in seen]


def topological_order(nodes: dict[str, Any], parents: dict[str, list[str]] | None = None) -> list[str]:
    """Nodes with every linked parent before its children (Kahn's algorithm, stable in
    insertion order). Nodes on or behind a cycle are left out."""
    parents = parents_of(nodes) if parents is None else parents
    children: dict[str, list[str]] = {nid: [] for nid in nodes}
    waiting = dict.fromkeys(nodes, 0)
    for nid, srcs in parents.items():
        for src in srcs:
            children[src].append(nid)
        waiting[nid] = len(srcs)
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
