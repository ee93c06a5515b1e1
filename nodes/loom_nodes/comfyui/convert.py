"""ComfyUI file → Loom workflow + report: the steps, in order.

1. Read the file (``formats``): nodes with named links and widget values, layout, groups.
2. Map each node, sources first: its handler from the table (``table.specs()``), or a
   placeholder that keeps its data when Loom has no counterpart. Muted nodes are left out,
   bypassed nodes and reroutes pass their inputs on, primitive nodes become values, notes
   become titled groups and ``meta.notes``.
3. Resolve every link (``Mapper.finish``); give empty latents the VAE of the model they are
   sampled with; lay out nodes that came without positions (the API format has none).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from loom import topological_order

from .context import Mapper
from .formats import parse
from .map_custom_sampling import link_sigma_models
from .model import BYPASSED, MUTED, CNode, Parsed, Report
from .table import Spec, specs

log = logging.getLogger(__name__)
NOTE_TYPES = ("Note", "MarkdownNote")
COLUMN, ROW, MARGIN = 380, 280, 40
GROUP_TITLE_MAX = 80


def convert(data: Any, options: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ComfyUI workflow (parsed JSON, or PNG/JSON bytes) as a Loom workflow dict and a report.

    ``options``: ``models`` ({pattern: replacement} or ["pattern=replacement"]: model files to
    substitute; ``diffusers:NAME`` loads a diffusers folder), ``title`` (the workflow's title).
    """
    report = Report()
    parsed = parse(data, report)
    report.source = parsed.source
    table = specs()
    mapper = Mapper(parsed, report, options)
    notes: list[dict[str, Any]] = []
    for node in _order(parsed):
        _map(mapper, node, table, notes)
    mapper.finish()
    _link_latent_vaes(mapper)
    link_sigma_models(mapper)
    _auto_layout(mapper.nodes)
    groups = list(parsed.groups) + [g for n in notes if (g := _note_group(n))]
    title = (options or {}).get("title") or "Imported ComfyUI workflow"
    meta: dict[str, Any] = {"title": str(title), "imported_from": parsed.source}
    if notes:
        meta["notes"] = notes
    workflow: dict[str, Any] = {"format": "loom.workflow", "version": 1, "nodes": mapper.nodes}
    if groups:
        workflow["groups"] = groups
    workflow["meta"] = meta
    return workflow, report.to_dict(nodes=len(parsed.nodes), links=parsed.link_count,
                                    loom_nodes=len(mapper.nodes))


def _order(parsed: Parsed) -> list[CNode]:
    """Sources before the nodes they feed (stable in file order; nodes on cycles last)."""
    nodes = parsed.nodes
    parents = {nid: [ref.node for ref in node.links.values() if ref.node in nodes and ref.node != nid]
               for nid, node in nodes.items()}
    order = topological_order(nodes, parents)
    seen = set(order)
    return [nodes[n] for n in order] + [n for nid, n in nodes.items() if nid not in seen]


def _custom_reason(node: CNode, parsed: Parsed) -> str:
    if node.type in parsed.subgraphs:
        return (f"a subgraph ({parsed.subgraphs[node.type]!r}): subgraphs are not expanded yet; "
                "convert it back to nodes in ComfyUI first")
    if node.type.startswith(("workflow>", "workflow/")):
        return "a group node (old ComfyUI frontends): not expanded; convert it to nodes in ComfyUI first"
    pack = node.properties.get("cnr_id") or node.properties.get("aux_id")
    if pack == "comfy-core":
        return "a ComfyUI core node Loom has no mapping for yet"
    origin = f"from the node pack {pack!r}" if isinstance(pack, str) and pack else \
        "not a ComfyUI core node (a custom node pack?)"
    return f"custom node, {origin}: Loom has no counterpart"


def _map(m: Mapper, node: CNode, table: dict[str, Spec], notes: list[dict[str, Any]]) -> None:
    """Map one node (never raises: a failing handler leaves a placeholder and a problem)."""
    if node.mode == MUTED:
        m.dissolved(node, "muted: left out, as ComfyUI does")
        return
    if node.mode == BYPASSED:
        m.dissolved(node, "bypassed: each output passes on the node's input of the same type")
        return
    if node.type == "Reroute":
        m.dissolved(node, "reroute: its link goes straight to its consumers")
        return
    if node.type == "PrimitiveNode":
        m.dissolved(node, f"primitive: its value {node.values.get('value')!r} goes into the "
                          "widgets it feeds")
        return
    if node.type in NOTE_TYPES:
        text = node.values.get("text", node.widgets_raw[0] if isinstance(node.widgets_raw, list)
                               and node.widgets_raw else "")
        notes.append({"title": node.title or node.type, "text": str(text),
                      **({"ui": {k: node.ui[k] for k in ("pos", "size") if k in node.ui}}
                         if node.ui.get("pos") else {})})
        m.dissolved(node, "note: a titled group where it was; its text is in meta.notes")
        return
    spec = table.get(node.type)
    outputs = [n for n, _ in node.outputs] or list(spec.outputs if spec else [])
    if spec is None or node.type in m.parsed.subgraphs:
        m.placeholder(node, _custom_reason(node, m.parsed), outputs)
        return
    if spec.handler is None:
        m.placeholder(node, spec.note, outputs)
        return
    before = set(m.nodes)
    try:
        spec.handler(m, node)
    except Exception as exc:  # noqa: BLE001 - bad input must never end the conversion
        log.debug("mapping %s failed", node.label, exc_info=True)
        for nid in set(m.nodes) - before:
            del m.nodes[nid]
            m.origin.pop(nid, None)
        for key in [k for k in m.outs if k[0] == node.id]:
            del m.outs[key]
        m.report.problem(node, f"could not be mapped ({type(exc).__name__}: {exc}); kept as a placeholder")
        m.placeholder(node, "mapping failed on its values (see the problem above)", outputs)


def _note_group(note: dict[str, Any]) -> dict[str, Any] | None:
    """A note as a group: its first line as the title, framing where the note was."""
    ui = note.get("ui") or {}
    if not ui.get("pos"):
        return None
    w, h = ui.get("size") or [300, 120]
    lines = (line.strip().lstrip("#").strip() for line in note["text"].splitlines())
    first = next((line for line in lines if line), note["title"])
    title = first if len(first) <= GROUP_TITLE_MAX else first[:GROUP_TITLE_MAX - 1] + "…"
    return {"title": title, "bounding": [ui["pos"][0], ui["pos"][1], w, h], "color": "#8a8a5a"}


def _link_latent_vaes(m: Mapper) -> None:
    """An empty latent sampled by a model loaded from a checkpoint gets that loader's VAE, so its
    channels and latent family are the model's (ComfyUI's empty latents have fixed channels)."""
    for nid, entry in m.nodes.items():
        if entry["type"] not in ("sample", "sample_advanced"):
            continue
        lat, den = entry["inputs"].get("latent"), entry["inputs"].get("denoiser")
        if not (isinstance(lat, dict) and isinstance(den, dict)):
            continue
        empty = m.nodes.get(str(lat.get("node")))
        loader = m.nodes.get(str(den.get("node")))
        for _ in range(64):   # through LoRAs and shift nodes to the model they patch
            if loader is None or loader["type"] not in ("load_lora", "model_sampling_flow"):
                break
            den = loader["inputs"].get("denoiser")
            loader = m.nodes.get(str(den.get("node"))) if isinstance(den, dict) else None
        if empty is None or empty["type"] != "empty_latent" or "vae" in empty["inputs"]:
            continue
        if loader is not None and loader["type"] in ("load_checkpoint", "load_diffusers_model"):
            empty["inputs"]["vae"] = {"node": den["node"], "output": "vae"}
            m.note(m.origin[str(lat["node"])], f"its vae input is linked from {den['node']}, the "
                                               f"model of sampler {nid}, so the latent has its channels")
            continue
        vae = _decoding_vae(m, nid)   # a model loaded alone (UNETLoader): the VAE its output goes to
        if vae is not None:
            empty["inputs"]["vae"] = vae
            m.note(m.origin[str(lat["node"])], f"its vae input is linked from {vae['node']}, the VAE "
                                               f"that decodes sampler {nid}, so the latent has its channels")


def _decoding_vae(m: Mapper, sampler: str) -> dict[str, Any] | None:
    """The VAE link of the vae_decode fed by ``sampler`` (through further samplers), else None."""
    seen, todo = {sampler}, [sampler]
    while todo:
        src = todo.pop(0)
        for nid, entry in m.nodes.items():
            lat = entry["inputs"].get("latent")
            if not (isinstance(lat, dict) and lat.get("node") == src) or nid in seen:
                continue
            vae = entry["inputs"].get("vae")
            if entry["type"] == "vae_decode" and isinstance(vae, dict):
                return dict(vae)
            if entry["type"] in ("sample", "sample_advanced", "latent_upscale"):
                seen.add(nid)
                todo.append(nid)
    return None


def _auto_layout(nodes: dict[str, dict[str, Any]]) -> None:
    """Positions for nodes that have none: a column per link depth, a row per node."""
    missing = [nid for nid, e in nodes.items() if not (e.get("ui") or {}).get("pos")]
    if not missing:
        return
    depth: dict[str, int] = {}

    def depth_of(nid: str, trail: frozenset[str] = frozenset()) -> int:
        if nid in depth:
            return depth[nid]
        d = 0
        for v in nodes[nid]["inputs"].values():
            src = v.get("node") if isinstance(v, dict) and set(v) == {"node", "output"} else None
            if isinstance(src, str) and src in nodes and src not in trail and len(trail) < 200:
                d = max(d, depth_of(src, trail | {nid}) + 1)
        depth[nid] = d
        return d

    rows: dict[int, int] = {}
    for nid in missing:
        col = depth_of(nid)
        row = rows.get(col, 0)
        rows[col] = row + 1
        nodes[nid].setdefault("ui", {})["pos"] = [MARGIN + col * COLUMN, MARGIN + row * ROW]
