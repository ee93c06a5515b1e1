"""Recognising and reading ComfyUI files: the UI format, the API format, and PNGs carrying them.

* UI format (what "Save" writes; litegraph's serialization): ``nodes`` is a list with
  ``widgets_values`` in widget order, ``links`` a list of ``[id, origin, slot, target, slot,
  type]`` arrays (schema version 1: objects), plus ``groups``. Version 0.4 and 1 are read.
* API format (what "Export (API)" writes and ``/prompt`` takes): ``{id: {"class_type",
  "inputs": {name: value or [source id, slot]}, "_meta": {"title"}}}``, optionally wrapped
  as ``{"prompt": {...}}``.
* PNGs that ComfyUI saved: text chunks ``workflow`` (UI) and ``prompt`` (API); the first one
  that reads is used.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from loom.errors import WorkflowFileError
from loom.importers import png_text
from loom.workflow import PNG_SIGNATURE, parse_json

from .model import (ACTIVE, BYPASSED, CONTROL, CONTROL_VALUES, MUTED, TITLE_HEIGHT, UPLOAD, CNode,
                    Parsed, Ref, Report, box)
from .table import Spec

PNG_KEYS = ("workflow", "prompt")


def classify(value: Any) -> str | None:
    """"ui", "api" or None for a parsed JSON value."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("nodes"), list) and any(
            k in value for k in ("links", "last_node_id", "state", "version", "groups")):
        return "ui"
    return "api" if api_body(value) is not None else None


def api_body(value: dict[str, Any]) -> dict[str, Any] | None:
    """The nodes of an API-format prompt: the dict itself, or its ``prompt`` (a ``/prompt``
    request body); None when it is neither."""
    if "format" in value or "nodes" in value:
        return None
    if any(isinstance(v, dict) and isinstance(v.get("class_type"), str) for v in value.values()):
        return value
    prompt = value.get("prompt")
    if isinstance(prompt, dict) and prompt is not value:
        return api_body(prompt)
    return None


def _png_chunks(data: bytes) -> dict[str, str]:
    """ComfyUI's text chunks (read without decoding the image)."""
    text = png_text(data)
    return {k: text[k] for k in PNG_KEYS if k in text}


def sniff(data: Any) -> bool:
    """Whether ``data`` (parsed JSON, or PNG/JSON bytes) is a ComfyUI workflow."""
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data)
        if data.startswith(PNG_SIGNATURE):
            return bool(_png_chunks(data))
        try:
            data = parse_json(data)
        except WorkflowFileError:
            return False
    return classify(data) is not None


def parse(data: Any, report: Report) -> Parsed:
    """Read either format (or a PNG carrying one); ``WorkflowFileError`` when nothing reads."""
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data)
        if data.startswith(PNG_SIGNATURE):
            return _parse_png(data, report)
        data = parse_json(data)
    kind = classify(data)
    if kind == "ui":
        return parse_ui(data, report)
    if kind == "api":
        return parse_api(api_body(data) or {}, report)
    raise WorkflowFileError("not a ComfyUI workflow: expected the UI format (\"nodes\" and "
                            "\"links\" lists) or the API format ({id: {\"class_type\", \"inputs\"}})")


def _parse_png(data: bytes, report: Report) -> Parsed:
    chunks = _png_chunks(data)
    if not chunks:
        raise WorkflowFileError("this PNG carries no ComfyUI workflow (no \"workflow\" or "
                                "\"prompt\" text chunk)")
    troubles = []
    for key in PNG_KEYS:
        if key not in chunks:
            continue
        try:
            value = parse_json(chunks[key], f"the {key!r} chunk")
        except WorkflowFileError as exc:
            troubles.append(str(exc))
            continue
        kind = classify(value)
        if kind is None:
            troubles.append(f"the {key!r} chunk is not a ComfyUI workflow")
            continue
        for why in troubles:
            report.problem(None, f"{why}; read the {key!r} chunk instead")
        parsed = parse_ui(value, report) if kind == "ui" else parse_api(value, report)
        parsed.source = f"PNG ({key!r} text chunk): {parsed.source}"
        return parsed
    raise WorkflowFileError("the PNG's ComfyUI text chunks are unreadable: " + "; ".join(troubles))


def _specs() -> dict[str, Spec]:
    from .table import specs
    return specs()


def assign_widgets(node: CNode, spec: Spec | None, report: Report) -> None:
    """Name a UI node's ``widgets_values`` after its spec's widget layout (or a variant).

    ``control_after_generate`` and ``upload`` values are taken only where ComfyUI wrote
    them. A list of another length is assigned by position and reported (mapped types)."""
    raw = node.widgets_raw
    if isinstance(raw, dict):
        node.values.update({str(k): v for k, v in raw.items()})
        return
    if not isinstance(raw, list):
        return
    if spec is None or (spec.status == "unmapped" and not spec.widgets):
        _name_from_widget_inputs(node, raw)
        return
    for names in spec.widget_lists:
        fitted = _fit(names, raw)
        if fitted is not None:
            node.values.update(fitted[0])
            node.controls.update(fitted[1])
            return
    names = [n for n in spec.widgets if n not in (CONTROL, UPLOAD)]
    plain = [v for i, v in enumerate(raw) if not _is_pseudo(spec.widgets, raw, i)]
    for name, v in zip(names, plain):
        node.values[name] = v
    if spec.status != "unmapped":
        report.problem(node, f"widgets_values holds {len(raw)} values where {spec.type} has "
                             f"{len(names)} widgets ({', '.join(names) or 'none'}); assigned by "
                             "position, the rest left at Loom's defaults", widgets=raw)


def _is_pseudo(names: Sequence[str], raw: list[Any], i: int) -> bool:
    """Whether ``raw[i]`` looks like a seed control or upload value the layout allows."""
    v = raw[i]
    return ((CONTROL in names and isinstance(v, str) and v in CONTROL_VALUES)
            or (UPLOAD in names and i > 0 and v == "image"))


def _fit(names: Sequence[str], raw: list[Any]) -> tuple[dict[str, Any], dict[str, str]] | None:
    values: dict[str, Any] = {}
    controls: dict[str, str] = {}
    i, last = 0, None
    for name in names:
        if name == CONTROL:
            if i < len(raw) and isinstance(raw[i], str) and raw[i] in CONTROL_VALUES:
                if last is not None:
                    controls[last] = raw[i]
                i += 1
            continue
        if name == UPLOAD:
            if i < len(raw) and (raw[i] == "image" or raw[i] is None):
                i += 1
            continue
        if i >= len(raw):
            return None
        values[name] = raw[i]
        last = name
        i += 1
    return (values, controls) if i == len(raw) else None


def _name_from_widget_inputs(node: CNode, raw: list[Any]) -> None:
    """A type without a spec: newer ComfyUI lists every widget as an input with "widget";
    when their count matches the values, they name them."""
    names = [n for n in node.input_order if n in node.widget_inputs]
    if names and len(names) == len(raw):
        node.values.update(dict(zip(names, raw)))


# colours as litegraph writes them: #rgb, #rgba, #rrggbb, #rrggbbaa, or rgb()/rgba()/hsl()/hsla()
_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})"
                     r"|(?:rgba?|hsla?)\(\s*[-+0-9.%deg]+(?:\s*[,/ ]\s*[-+0-9.%deg]+){2,3}\s*\)")


def css_colour(value: Any) -> str | None:
    """``value`` when it is a colour the canvas can draw (hex or rgb()/hsl()), else None."""
    if isinstance(value, str) and len(value) <= 64 and _COLOUR.fullmatch(value.strip()):
        return value.strip()
    return None


def _colours(n: dict[str, Any], node: CNode, report: Report) -> None:
    """A node's ``color``/``bgcolor`` into its ui; a value that is no colour is left out, with a note."""
    for key in ("color", "bgcolor"):
        if key not in n or n[key] is None:
            continue
        colour = css_colour(n[key])
        if colour is None:
            report.add("note", node, f"{key} {str(n[key])[:40]!r} is not a colour (#rgb, #rrggbb, "
                       "rgb(), hsl()); left out")
        else:
            node.ui[key] = colour


def _layout(n: dict[str, Any], node: CNode) -> None:
    pos, size = box(n.get("pos")), box(n.get("size"))
    if pos:
        node.ui["pos"] = [pos[0], round(pos[1] - TITLE_HEIGHT, 1)]
    if size:
        node.ui["size"] = [size[0], round(size[1] + TITLE_HEIGHT, 1)]
    title = n.get("title")
    if isinstance(title, str) and title:
        node.title = title
        node.ui["title"] = title
    flags = n.get("flags")
    if isinstance(flags, dict):
        if flags.get("collapsed"):
            node.ui["collapsed"] = True
        if flags.get("pinned"):
            node.ui["pinned"] = True


def _links_table(raw: Any, report: Report) -> dict[Any, tuple[str, int]]:
    """link id → (origin node id, origin slot), from arrays or schema-1 objects."""
    table: dict[Any, tuple[str, int]] = {}
    for i, link in enumerate(raw if isinstance(raw, list) else []):
        if isinstance(link, dict):
            lid, origin, slot = link.get("id"), link.get("origin_id"), link.get("origin_slot")
        elif isinstance(link, list) and len(link) >= 5:
            lid, origin, slot = link[0], link[1], link[2]
        else:
            report.problem(None, f"links[{i}] is neither a link array nor a link object; skipped")
            continue
        if origin is None or not isinstance(slot, int) or isinstance(lid, (list, dict)):
            report.problem(None, f"links[{i}] has no origin node or slot; skipped")
            continue
        table[lid] = (str(origin), slot)
    return table


def parse_ui(data: dict[str, Any], report: Report) -> Parsed:
    """The UI format (litegraph serialization, versions 0.4 and 1)."""
    version = data.get("version")
    links = _links_table(data.get("links"), report)
    sub = (data.get("definitions") or {}).get("subgraphs") if isinstance(data.get("definitions"), dict) else None
    parsed = Parsed("ui", f"ComfyUI workflow (UI format, version {version})", link_count=len(links))
    for s in sub if isinstance(sub, list) else []:
        if isinstance(s, dict) and s.get("id"):
            parsed.subgraphs[str(s["id"])] = str(s.get("name") or s["id"])
    table = _specs()
    for i, n in enumerate(data.get("nodes") or []):
        if not isinstance(n, dict) or n.get("id") is None:
            report.problem(None, f"nodes[{i}] is not a node object with an id; skipped")
            continue
        nid = str(n["id"])
        ntype = n.get("type")
        stub = CNode(nid, str(ntype) if ntype is not None else "?")
        if not isinstance(ntype, str) or not ntype:
            report.problem(stub, "the node has no type; skipped")
            continue
        if nid in parsed.nodes:
            report.problem(stub, f"a second node with id {nid}; skipped")
            continue
        mode = n.get("mode", ACTIVE)
        node = CNode(nid, ntype, mode=mode if mode in (MUTED, BYPASSED) else ACTIVE,
                     widgets_raw=n.get("widgets_values"),
                     properties=n["properties"] if isinstance(n.get("properties"), dict) else {})
        _layout(n, node)
        _colours(n, node, report)
        for slot, inp in enumerate(n.get("inputs") or []):
            if not isinstance(inp, dict):
                continue
            name = str(inp.get("name", f"input_{slot}"))
            node.input_order.append(name)
            node.input_types[name] = str(inp.get("type", "*"))
            if isinstance(inp.get("widget"), dict):
                node.widget_inputs.add(str(inp["widget"].get("name", name)))
            lid = inp.get("link")
            if lid is None:
                continue
            if lid not in links:
                report.problem(node, f"input {name!r}: link {lid} is not in the links list; left unset")
                continue
            origin, oslot = links[lid]
            node.links[name] = Ref(origin, oslot)
        for slot, out in enumerate(n.get("outputs") or []):
            if isinstance(out, dict):
                node.outputs.append((str(out.get("name") or f"output_{slot}"), str(out.get("type", "*"))))
        assign_widgets(node, table.get(ntype), report)
        parsed.nodes[nid] = node
    for g in data.get("groups") or []:
        bounding = g.get("bounding") if isinstance(g, dict) else None
        if not (isinstance(bounding, list) and len(bounding) == 4
                and all(isinstance(v, (int, float)) for v in bounding)):
            report.problem(None, f"a group without a usable bounding box ({str(g)[:60]}); skipped")
            continue
        group = {"title": str(g.get("title") or "Group"), "bounding": [round(float(v), 1) for v in bounding]}
        if css_colour(g.get("color")):
            group["color"] = css_colour(g["color"])
        parsed.groups.append(group)
    return parsed


def parse_api(data: dict[str, Any], report: Report) -> Parsed:
    """The API format: ``{id: {"class_type", "inputs", "_meta"}}``."""
    parsed = Parsed("api", "ComfyUI prompt (API format)")
    table = _specs()
    for nid, n in data.items():
        nid = str(nid)
        if not isinstance(n, dict):
            report.problem(CNode(nid, "?"), "the node is not an object; skipped")
            continue
        ctype = n.get("class_type")
        if not isinstance(ctype, str) or not ctype:
            report.problem(CNode(nid, "?"), "the node has no class_type; skipped")
            continue
        node = CNode(nid, ctype)
        inputs = n.get("inputs")
        if inputs is not None and not isinstance(inputs, dict):
            report.problem(node, "its inputs are not an object; read as none")
            inputs = None
        for name, v in (inputs or {}).items():
            if (isinstance(v, list) and len(v) == 2 and isinstance(v[0], (str, int))
                    and not isinstance(v[0], bool) and isinstance(v[1], int)):
                node.links[str(name)] = Ref(str(v[0]), v[1])
                parsed.link_count += 1
            else:
                node.values[str(name)] = v
        node.raw_inputs = dict(inputs or {})
        meta = n.get("_meta")
        title = meta.get("title") if isinstance(meta, dict) else None
        spec = table.get(ctype)
        if isinstance(title, str) and title and title not in (ctype, spec.display if spec else None):
            node.title = title
            node.ui["title"] = title
        parsed.nodes[nid] = node
    return parsed
