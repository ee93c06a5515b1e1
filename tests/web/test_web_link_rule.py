"""The canvas links by the server's one rule (`loom.links.can_feed`), read from `accepts`.

For every output type the registry has × every input of every node, litegraph's own check
(`LiteGraph.isValidConnection` on the slot types of real nodes) and the palette's link filter
must say what the engine says. The tiny nodes of tests/web/plugin/link_rule_nodes.py add the
pairs the canvas once got wrong: bool → int, an Enum → its combo, int → a combo of ints.
"""
from __future__ import annotations

from typing import Any

from loom import validate
from loom.links import can_feed
from loom.registry import Registry
from loom.types import type_name

from web_helpers import exported

# What litegraph decides for every input slot of a freshly created node of each type.
CANVAS_VERDICTS_JS = """async ([ids, outTypes]) => {
  const { LiteGraph } = await import('/vendor/litegraph/litegraph.es.js');
  const { canConnect } = await import('/src/nodes.js');
  if (LiteGraph.isValidConnection !== canConnect) throw new Error('isValidConnection is not canConnect');
  const verdicts = {};
  for (const id of ids) {
    const node = LiteGraph.createNode(id);
    verdicts[id] = Object.fromEntries(node.inputs.map((slot) =>
      [slot.name, outTypes.filter((t) => LiteGraph.isValidConnection(t, slot.type))]));
    node.onRemoved?.();  // drops the DOM of multiline widgets
  }
  return verdicts;
}"""

# What the palette offers when a link is dropped on empty canvas: from each output type,
# and from each input slot.
PALETTE_OFFERS_JS = """async ([ids, outTypes]) => {
  const { LiteGraph } = await import('/vendor/litegraph/litegraph.es.js');
  const { search } = await import('/src/palette.js');
  const offered = (filter) => search('', filter).map((s) => s.id);
  const fromOutput = Object.fromEntries(outTypes.map((t) => [t, offered({ type: t, wantsInput: true })]));
  const fromInput = {};
  for (const id of ids) {
    const node = LiteGraph.createNode(id);
    for (const slot of node.inputs) {
      fromInput[`${id}.${slot.name}`] = offered({ type: slot.type, wantsInput: false });
    }
    node.onRemoved?.();
  }
  return { fromOutput, fromInput, max: search('').length };
}"""


def _registry(loom_server: Any) -> tuple[Registry, dict[str, Any]]:
    """The server's registry (same settings) and its output types by name."""
    registry = Registry.default(loom_server.settings)
    out_types = {type_name(t): t for t in registry.output_types()}
    assert len(out_types) == len(registry.output_types()), "two output types share a name"
    return registry, out_types


def _specs(registry: Registry) -> list[Any]:
    return [registry[s["id"]] for s in registry.schemas()]


def test_canvas_and_server_agree_on_every_link(canvas: Any, loom_server: Any) -> None:
    registry, out_types = _registry(loom_server)
    specs = _specs(registry)
    served = {s["id"]: {i["name"]: i["accepts"] for i in s["inputs"]}
              for s in loom_server.get_json("/api/nodes")}
    verdicts = canvas.evaluate(CANVAS_VERDICTS_JS, [[s.id for s in specs], sorted(out_types)])

    disagree, pairs = [], 0
    for spec in specs:
        for inp in spec.inputs:
            engine = sorted(n for n, t in out_types.items() if can_feed(t, inp))
            assert served[spec.id][inp.name] == engine, (spec.id, inp.name)  # the schema says it
            for name, tp in out_types.items():
                pairs += 1
                if (name in verdicts[spec.id][inp.name]) != can_feed(tp, inp):
                    disagree.append(f"{name} → {spec.id}.{inp.name}: engine {can_feed(tp, inp)}")
    assert not disagree, f"{len(disagree)} of {pairs} pairs disagree:\n" + "\n".join(disagree[:30])
    assert pairs > 2000

    # the pairs the canvas once got wrong, and their neighbours
    sink = verdicts["lr_sink"]
    assert "bool" in sink["count"]  # bool → int widget (COERCIONS)
    assert "bool" not in sink["ratio"]  # bool → float is not a coercion
    assert "Shade" in sink["shade"] and "Shade" not in sink["speed"]  # an Enum feeds its own combo
    assert "Speed" in sink["word"] and "Speed" not in verdicts["t_solid"]["color"]  # str Enum
    assert "int" in sink["size"] and "float" not in sink["size"]  # a combo of ints
    assert set(sink["thing"]) == set(out_types)  # an Any socket takes everything
    assert all("*" in v for node in verdicts.values() for v in node.values())  # Any feeds all


def test_palette_offers_exactly_the_nodes_that_fit(canvas: Any, loom_server: Any) -> None:
    registry, out_types = _registry(loom_server)
    specs = _specs(registry)
    offers = canvas.evaluate(PALETTE_OFFERS_JS, [[s.id for s in specs], sorted(out_types)])

    def check(offered: list[str], expected: set[str], what: str) -> None:
        if len(expected) < offers["max"]:
            assert set(offered) == expected, what
        else:  # the palette shows its first MAX_RESULTS
            assert set(offered) <= expected and len(offered) == offers["max"], what

    for name, tp in out_types.items():
        expected = {s.id for s in specs if any(can_feed(tp, i) for i in s.inputs)}
        check(offers["fromOutput"][name], expected, f"from a {name} output")
    for spec in specs:
        for inp in spec.inputs:
            expected = {s.id for s in specs if any(can_feed(o.type, inp) for o in s.outputs)}
            check(offers["fromInput"][f"{spec.id}.{inp.name}"], expected, f"from {spec.id}.{inp.name}")


ADD_NODES_JS = """() => {
  const add = (type, x, y) => String(window.loom.addNode(type, [x, y]).id);
  return { flag: add('lr_flag', 40, 40), shade: add('lr_shade', 40, 200), count: add('lr_count', 40, 360),
           sink: add('lr_sink', 420, 40) };
}"""

CONNECT_JS = """([from, to, input]) => {
  const a = window.loom.nodeById(from);
  const b = window.loom.nodeById(to);
  return Boolean(a.connect(0, b, b.findInputSlot(input)));
}"""

LINK_COLOURS_JS = """(id) => {
  const node = window.loom.nodeById(id);
  const links = window.loom.graph.links;
  return Object.fromEntries(node.inputs.filter((s) => s.link != null)
    .map((s) => [s.name, [s.color_on, (links.get?.(s.link) ?? links[s.link]).color]]));
}"""


def test_node_connect_makes_allowed_links_only(canvas: Any, loom_server: Any) -> None:
    canvas.click("#btn-new")
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")
    ids = canvas.evaluate(ADD_NODES_JS)
    made = {(src, inp): canvas.evaluate(CONNECT_JS, [ids[src], ids["sink"], inp])
            for src, inp in [("flag", "count"), ("shade", "shade"), ("count", "size"),
                             ("flag", "ratio"), ("shade", "speed")]}
    assert made == {("flag", "count"): True, ("shade", "shade"): True, ("count", "size"): True,
                    ("flag", "ratio"): False, ("shade", "speed"): False}
    assert canvas.evaluate("window.loom.graph.links.size ?? Object.keys(window.loom.graph.links).length") == 3

    sink = exported(canvas)["nodes"][ids["sink"]]["inputs"]
    assert sink["count"] == {"node": ids["flag"], "output": "bool"}
    assert sink["shade"] == {"node": ids["shade"], "output": "shade"}
    assert sink["size"] == {"node": ids["count"], "output": "int"}
    assert sink["ratio"] == 1.0 and sink["speed"] == "fast"  # the refused ones stay widgets

    # sockets and links keep the colour of the input's own type (int, combo)
    colours = canvas.evaluate(LINK_COLOURS_JS, ids["sink"])
    assert colours["count"] == ["#9ccc65", "#9ccc65"]
    assert colours["size"] == ["#b0bec5", "#b0bec5"]

    # the validator takes what the canvas linked (what POST /api/runs checks before queueing)
    registry, _ = _registry(loom_server)
    assert validate(exported(canvas), registry, loom_server.settings) == []
