"""The validator, the schema's `accepts` and `loom.links.can_feed` give one verdict per link.

Every (output type × input) pair of the default registry plus the link-rule test nodes
(tests/web/plugin/: bool, Enum, str-Enum and Any outputs; an Enum combo, a combo of ints...)
becomes a two-node workflow `src → dst.input`; the validator reports `type_mismatch` on it
exactly when `can_feed` says no, and the input's `accepts` in the schema lists the output's
type exactly when it says yes.
"""
from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

from loom import Settings, validate
from loom.links import can_feed
from loom.plan import compile_workflow
from loom.registry import Registry
from loom.types import type_name

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "web" / "plugin"


def _link_problems(registry: Registry, src: tuple[str, str], dst: str, input_name: str) -> list[Any]:
    """The validator's problems on dst.input_name when it is linked from src (node type, output)."""
    src_spec, dst_spec = registry[src[0]], registry[dst]
    wf = {"format": "loom.workflow", "version": 1, "nodes": {
        "src": {"type": src_spec.id, "version": src_spec.version, "inputs": {}},
        "dst": {"type": dst, "version": dst_spec.version,
                "inputs": {input_name: {"node": "src", "output": src[1]}}},
    }}
    if dst_spec.output:
        problems = validate(wf, registry)
    else:  # validate() checks what feeds an output node; a target makes any node checked
        result = compile_workflow(wf, registry, targets=["dst"])
        problems = result if isinstance(result, list) else []
    return [p for p in problems if p.node == "dst" and p.input == input_name]


def test_validator_schema_and_can_feed_agree_on_every_pair(tmp_path: Path) -> None:
    registry = Registry.default(Settings(home=tmp_path, custom_nodes_dirs=[PLUGIN_DIR], device="cpu"))
    assert not registry.plugin_errors, registry.plugin_errors
    sources: dict[Any, tuple[str, str]] = {}  # output type → (a node type making it, its output)
    for spec in sorted(registry, key=lambda s: s.id):
        for out in spec.outputs:
            sources.setdefault(out.type, (spec.id, out.name))
    accepts = {s["id"]: {i["name"]: set(i["accepts"]) for i in s["inputs"]} for s in registry.schemas()}

    disagree, pairs, kinds = [], 0, set()
    for spec in registry:
        for inp in spec.inputs:
            kinds.add((inp.kind, inp.widget, inp.enum is not None))
            for out_type, src in sources.items():
                pairs += 1
                allowed = can_feed(out_type, inp)
                problems = _link_problems(registry, src, spec.id, inp.name)
                refused = any(p.code == "type_mismatch" for p in problems)
                listed = type_name(out_type) in accepts[spec.id][inp.name]
                if refused == allowed or listed != allowed:
                    disagree.append(f"{type_name(out_type)} → {spec.id}.{inp.name}: can_feed {allowed}, "
                                    f"validator refuses {refused}, accepts lists it {listed}")
    assert not disagree, f"{len(disagree)} of {pairs} pairs disagree:\n" + "\n".join(disagree[:30])
    # every input kind was walked: sockets, each widget kind, Enum combos
    assert {("socket", None, False), ("widget", "combo", True), ("widget", "combo", False),
            ("widget", "int", False), ("widget", "float", False), ("widget", "bool", False),
            ("widget", "str", False), ("widget", "seed", False), ("widget", "model_file", False),
            ("widget", "image_file", False)} <= kinds


def test_the_pairs_canvas_and_server_once_disagreed_on(tmp_path: Path) -> None:
    registry = Registry.default(Settings(home=tmp_path, custom_nodes_dirs=[PLUGIN_DIR], device="cpu"))
    sink = registry["lr_sink"].input_map
    shade = registry["lr_shade"].outputs[0].type
    speed = registry["lr_speed"].outputs[0].type
    assert issubclass(shade, enum.Enum) and issubclass(speed, str)
    assert can_feed(bool, sink["count"]) and not can_feed(bool, sink["ratio"])
    assert can_feed(shade, sink["shade"]) and not can_feed(shade, sink["speed"])
    assert can_feed(int, sink["size"]) and not can_feed(float, sink["size"])
    assert can_feed(speed, sink["word"]) and not can_feed(speed, registry["t_solid"].input_map["color"])
    assert _link_problems(registry, ("lr_flag", "bool"), "lr_sink", "count") == []
    assert [p.code for p in _link_problems(registry, ("lr_flag", "bool"), "lr_sink", "ratio")] == ["type_mismatch"]
