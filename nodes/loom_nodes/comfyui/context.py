"""The mapper: what handlers use to build Loom nodes, and how links are resolved afterwards.

Mapping runs in two passes. Each ComfyUI node's handler adds its Loom node(s), whose inputs
may still hold ``Ref`` (a ComfyUI output), and declares what each of its output
slots becomes (``output``). Then ``finish`` resolves every ``Ref`` through reroutes, bypassed
nodes and primitives to a Loom link or a value; a link that leads nowhere is reported on the
node that used it.
"""
from __future__ import annotations

import fnmatch
from typing import Any, Iterable, Mapping

from .model import BYPASSED, MUTED, CNode, Link, Literal, Missing, Parsed, Ref, Report

MAX_CHAIN = 10_000   # links followed through reroutes and bypassed nodes before calling it a cycle
PLACEHOLDER_PREFIX = "comfyui:"


def _substitutions(options: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``options["models"]``: {pattern: replacement} or ["pattern=replacement", ...]."""
    raw = (options or {}).get("models") or {}
    pairs: Iterable[tuple[str, str]]
    if isinstance(raw, Mapping):
        pairs = ((str(k), str(v)) for k, v in raw.items())
    else:
        pairs = (tuple(str(item).split("=", 1)) for item in raw if "=" in str(item))  # type: ignore[misc]
    return [(k.strip(), v.strip()) for k, v in pairs if k.strip() and v.strip()]


class Mapper:
    """Builds the Loom nodes of one conversion and resolves their links."""

    ABSENT: Any = object()   # ``value()`` when the ComfyUI node has no such input

    def __init__(self, parsed: Parsed, report: Report, options: Mapping[str, Any] | None = None) -> None:
        self.parsed = parsed
        self.report = report
        self.substitutions = _substitutions(options)
        self.nodes: dict[str, dict[str, Any]] = {}
        self.origin: dict[str, CNode] = {}
        self.outs: dict[tuple[str, int], Any] = {}
        self.placeholders: dict[str, tuple[str, list[str]]] = {}   # ComfyUI id → (Loom id, outputs)
        self.numerics_noted = False

    # --- building ----------------------------------------------------------------------
    def add(self, node: CNode, loom_type: str, inputs: dict[str, Any], suffix: str = "",
            ui: dict[str, Any] | None = None) -> str:
        """Add a Loom node for ``node`` (its id, or ``<id>_<suffix>`` for a helper node)."""
        nid = f"{node.id}_{suffix}" if suffix else node.id
        while nid in self.nodes:
            nid += "_"
        for name in [k for k, v in inputs.items() if v is self.ABSENT]:
            del inputs[name]   # an input the ComfyUI node does not have (e.g. an unlinked socket)
        entry: dict[str, Any] = {"type": loom_type, "inputs": inputs}
        node_ui = dict(node.ui) if not suffix else self._helper_ui(node)
        node_ui.update(ui or {})
        if node_ui:
            entry["ui"] = node_ui
        self.nodes[nid] = entry
        self.origin[nid] = node
        return nid

    def _helper_ui(self, node: CNode) -> dict[str, Any]:
        """A helper node (e.g. the scheduler of a KSampler) goes just below its node."""
        pos, size = node.ui.get("pos"), node.ui.get("size")
        if not pos:
            return {}
        height = size[1] if size else 260
        offset = sum(1 for nid in self.nodes if nid.startswith(f"{node.id}_"))
        return {"pos": [pos[0], round(pos[1] + height + 20 + offset * 150, 1)]}

    @staticmethod
    def link(nid: str, output: str) -> Link:
        """Output ``output`` of Loom node ``nid``."""
        return Link(nid, output)

    def output(self, node: CNode, slot: int, target: Any) -> None:
        """What ComfyUI output ``slot`` of ``node`` becomes: a ``Link``, a ``Ref`` (passed
        through), a ``Literal`` or ``Missing``."""
        self.outs[(node.id, slot)] = target

    def value(self, node: CNode, name: str, default: Any = ABSENT) -> Any:
        """Input ``name``: a plain value (primitives already resolved), a ``Ref``, or ``default``."""
        if name in node.links:
            ref = node.links[name]
            target = self.follow(ref)
            return target.value if isinstance(target, Literal) else ref
        return node.values.get(name, default)

    def control(self, node: CNode, name: str) -> str | None:
        """The "control after generate" of widget ``name``: a primitive node feeding it has its own."""
        if name in node.links:
            ref, depth = node.links[name], 0
            while depth < 64:
                src = self.parsed.nodes.get(ref.node)
                if src is None:
                    return None
                if src.type == "PrimitiveNode":
                    return src.controls.get("value")
                if src.type != "Reroute" or not src.links:
                    return None
                ref, depth = next(iter(src.links.values())), depth + 1
            return None
        return node.controls.get(name)

    def substitute(self, node: CNode, name_input: str, name: Any,
                   folders: bool = True) -> tuple[Any, bool]:
        """A model file name as Loom lists it, after ``--models`` substitution; the flag says
        the replacement is a diffusers folder (``diffusers:NAME``). ``folders`` False (LoRA,
        upscale models: single files) skips ``diffusers:`` replacements, which name a whole
        model, and takes the next pattern that matches."""
        if not isinstance(name, str):
            return name, False
        clean = self.clean_name(node, name_input, name)
        for pattern, repl in self.substitutions:
            if not folders and repl.startswith("diffusers:"):
                continue
            base = clean.rsplit("/", 1)[-1]
            if fnmatch.fnmatchcase(clean, pattern) or fnmatch.fnmatchcase(base, pattern):
                new = repl.removeprefix("diffusers:")
                self.changed(node, name_input, clean, new, "model substituted (--models)")
                return new, repl.startswith("diffusers:")
        return clean, False

    def clean_name(self, node: CNode, name_input: str, name: str) -> str:
        """A file name with '/' separators and without ComfyUI's ``[input]`` annotation."""
        clean = name.replace("\\", "/")
        for suffix in (" [output]", " [input]", " [temp]"):
            clean = clean.removesuffix(suffix)
        if clean != name:
            self.changed(node, name_input, name, clean, "Loom names files with '/' and no "
                                                        "folder annotation")
        return clean

    # --- the report --------------------------------------------------------------------
    def mapped(self, node: CNode, ids: list[str], status: str, message: str = "",
               **extra: Any) -> None:
        """Report ``node`` as mapped to the Loom nodes ``ids``."""
        described = ", ".join(f"{i} ({self.nodes[i]['type']})" for i in ids)
        carried = sorted(k for k in ("pos", "size", "title", "color", "bgcolor", "collapsed")
                         if k in node.ui)
        text = f"→ {described}" + (f"; {message}" if message else "")
        self.report.add("mapped", node, text, loom=ids, status=status, ui=carried, **extra)

    def changed(self, node: CNode, name: str, old: Any, new: Any, why: str) -> None:
        """Report a value Loom had to change."""
        self.report.add("changed", node, f"{name}: {old!r} → {new!r} ({why})",
                        input=name, old=old, new=new)

    def dissolved(self, node: CNode, message: str) -> None:
        """Report a node that became links, values or layout."""
        self.report.add("dissolved", node, message)

    def note(self, node: CNode | None, message: str, **extra: Any) -> None:
        """Report something worth knowing that changes nothing."""
        self.report.add("note", node, message, **extra)

    def placeholder(self, node: CNode, reason: str, output_names: list[str] | None = None) -> str:
        """A stand-in Loom node (type ``comfyui:<type>``) keeping the node's data; the canvas
        draws it red, and export-comfy writes it back as it was."""
        names = output_names or [n or f"output_{i}" for i, (n, _) in enumerate(node.outputs)]
        inputs: dict[str, Any] = {name: self.value(node, name) for name in node.links}
        for name, v in node.values.items():
            inputs.setdefault(name, v)
        data: dict[str, Any] = {"class_type": node.type, "reason": reason, "outputs": names}
        if node.widgets_raw is not None:
            data["widgets_values"] = node.widgets_raw
        if node.mode:
            data["mode"] = node.mode
        if node.controls:
            data["controls"] = dict(node.controls)
        nid = self.add(node, PLACEHOLDER_PREFIX + node.type, inputs)
        self.nodes[nid]["comfyui"] = data
        self.placeholders[node.id] = (nid, names)
        self.report.add("unmapped", node, reason, loom=[nid])
        return nid

    # --- resolution --------------------------------------------------------------------
    def follow(self, ref: Ref, depth: int = 0) -> Any:
        """Where ComfyUI output ``ref`` leads in Loom: a ``Link``, ``Literal`` or ``Missing``."""
        if depth > MAX_CHAIN:
            return Missing("its links run in a cycle through reroutes or bypassed nodes")
        src = self.parsed.nodes.get(ref.node)
        if src is None:
            return Missing(f"its source, node {ref.node}, is not in the file")
        if src.mode == MUTED:
            return Missing(f"its source, node {src.label}, is muted (left out, as ComfyUI "
                           "does)")
        if src.mode == BYPASSED or src.type == "Reroute":
            nxt = self._passthrough(src, ref.slot)
            if nxt is None:
                what = "bypassed node" if src.mode == BYPASSED else "reroute"
                return Missing(f"the {what} {src.label} has no input to pass through "
                               f"to output {ref.slot}")
            return self.follow(nxt, depth + 1)
        if src.type == "PrimitiveNode":
            if "value" in src.values:
                return Literal(src.values["value"])
            return Missing(f"the primitive node {src.id} holds no value")
        target = self.outs.get((ref.node, ref.slot))
        if target is not None:
            return self.follow(target, depth + 1) if isinstance(target, Ref) else target
        if ref.node in self.placeholders:
            nid, names = self.placeholders[ref.node]
            name = names[ref.slot] if 0 <= ref.slot < len(names) else f"output_{ref.slot}"
            return Link(nid, name)
        return Missing(f"output {ref.slot} of node {src.label} has no Loom counterpart")

    def _passthrough(self, src: CNode, slot: int) -> Ref | None:
        """A reroute's input; for a bypassed node the input of the output's type, at the same
        slot when it matches, else the first (as ComfyUI's bypass does)."""
        if src.type == "Reroute":
            return next(iter(src.links.values()), None)
        out_type = src.outputs[slot][1] if 0 <= slot < len(src.outputs) else None
        if out_type is None:
            return None
        order = src.input_order
        if slot < len(order) and src.input_types.get(order[slot]) == out_type and order[slot] in src.links:
            return src.links[order[slot]]
        for name in order:
            if src.input_types.get(name) == out_type and name in src.links:
                return src.links[name]
        return None

    def finish(self) -> None:
        """Resolve every input of every Loom node (second pass)."""
        for nid, entry in self.nodes.items():
            node = self.origin[nid]
            inputs = entry["inputs"]
            for name in list(inputs):
                v = inputs[name]
                if isinstance(v, Ref):
                    v = self.follow(v)
                if isinstance(v, Link):
                    inputs[name] = v.to_json()
                elif isinstance(v, Literal):
                    inputs[name] = v.value
                elif isinstance(v, Missing):
                    del inputs[name]
                    self.report.problem(node, f"input {name!r}: {v.why}; left unset", input=name)
