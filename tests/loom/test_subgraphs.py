"""Subgraphs: instances expanded before compile into ``instance/inner`` nodes, nesting, cycles,
problems that name the inner node, cache keys equal to the flat workflow's, and limits."""
from __future__ import annotations

import copy
import time
from typing import Any

import pytest

import tinynodes
from loom import compile_workflow, validate
from loom import subgraphs
from loom.subgraphs import MAX_DEPTH, MAX_NODES


def L(n: str, out: str = "int") -> dict[str, str]:
    return {"node": n, "output": out}


PLUS = {"title": "Plus 4 then 10",
        "nodes": {"a": {"type": "t_add", "inputs": {"b": 4}, "ui": {"pos": [0, 0]}},
                  "b": {"type": "t_add", "inputs": {"a": L("a"), "b": 10}}},
        "inputs": [{"name": "x", "type": "int", "to": [{"node": "a", "input": "a"}]}],
        "outputs": [{"name": "y", "type": "int", "from": {"node": "b", "output": "int"}}]}


def nested_wf() -> dict[str, Any]:
    """const 3 → [plus: add 4 → add 10] → collect (17)."""
    return {"nodes": {"c": {"type": "t_const", "inputs": {"value": 3}},
                      "s": {"type": "subgraph", "subgraph": "plus", "inputs": {"x": L("c")}},
                      "out": {"type": "t_collect", "inputs": {"value": L("s", "y")}}},
            "subgraphs": {"plus": copy.deepcopy(PLUS)}}


def flat_wf() -> dict[str, Any]:
    """The same workflow written without a subgraph."""
    return {"nodes": {"c": {"type": "t_const", "inputs": {"value": 3}},
                      "a": {"type": "t_add", "inputs": {"a": L("c"), "b": 4}},
                      "b": {"type": "t_add", "inputs": {"a": L("a"), "b": 10}},
                      "out": {"type": "t_collect", "inputs": {"value": L("b")}}}}


def codes(problems) -> list[tuple[Any, Any, str]]:
    return [(p.node, p.input, p.code) for p in problems]


def test_an_instance_expands_into_prefixed_nodes_and_runs_like_the_flat_graph(executor):
    result = executor.run(nested_wf())
    assert result.outputs["out"]["int"] == 17
    assert result.executed == ["c", "s/a", "s/b", "out"]


def test_the_plan_keeps_the_document_with_its_subgraphs(registry, settings):
    plan = compile_workflow(nested_wf(), registry, settings)
    assert list(plan.steps) == ["c", "s/a", "s/b", "out"]
    assert plan.document["subgraphs"]["plus"]["title"] == "Plus 4 then 10"
    assert plan.document["nodes"]["s"]["type"] == "subgraph"


def test_inner_cache_keys_equal_the_flat_ones_and_a_rerun_is_fully_cached(registry, settings, executor):
    flat = compile_workflow(flat_wf(), registry, settings)
    nested = compile_workflow(nested_wf(), registry, settings)
    pairs = {"c": "c", "a": "s/a", "b": "s/b", "out": "out"}
    for f, n in pairs.items():
        assert flat.steps[f].key is not None and flat.steps[f].key == nested.steps[n].key
    executor.run(flat_wf())
    tinynodes.reset()
    again = executor.run(nested_wf())
    assert again.executed == [] and again.cached == ["out"]  # a cached node needs no inputs
    assert again.outputs["out"]["int"] == 17


def test_two_instances_of_one_definition_and_a_literal_input(executor):
    wf = nested_wf()
    wf["nodes"]["s2"] = {"type": "subgraph", "subgraph": "plus", "inputs": {"x": 100}}
    wf["nodes"]["out2"] = {"type": "t_collect", "inputs": {"value": L("s2", "y")}}
    result = executor.run(wf)
    assert result.outputs["out"]["int"] == 17 and result.outputs["out2"]["int"] == 114
    assert "s2/a" in result.executed


def nest_wf() -> dict[str, Any]:
    """A definition that uses another: twice = plus(plus(x)); 3 → 31."""
    wf = nested_wf()
    wf["subgraphs"]["twice"] = {
        "title": "Twice",
        "nodes": {"p": {"type": "subgraph", "subgraph": "plus", "inputs": {}},
                  "q": {"type": "subgraph", "subgraph": "plus", "inputs": {"x": L("p", "y")}}},
        "inputs": [{"name": "in", "type": "int", "to": [{"node": "p", "input": "x"}]}],
        "outputs": [{"name": "out", "type": "int", "from": {"node": "q", "output": "y"}}]}
    wf["nodes"]["s"] = {"type": "subgraph", "subgraph": "twice", "inputs": {"in": L("c")}}
    wf["nodes"]["out"]["inputs"]["value"] = L("s", "out")
    return wf


def test_nested_subgraphs_expand_to_a_slash_b_slash_c(executor):
    result = executor.run(nest_wf())
    assert result.outputs["out"]["int"] == 31
    assert result.executed == ["c", "s/p/a", "s/p/b", "s/q/a", "s/q/b", "out"]


def test_a_subgraph_that_uses_itself_is_refused_with_its_path(registry):
    wf = nest_wf()
    wf["subgraphs"]["plus"]["nodes"]["loop"] = {"type": "subgraph", "subgraph": "twice", "inputs": {}}
    problems = validate(wf, registry)
    cyc = [p for p in problems if p.code == "cycle"]
    assert [(p.node, p.code) for p in cyc] == [("s/p/loop", "cycle"), ("s/q/loop", "cycle")]
    assert "twice → plus → twice" in cyc[0].message
    direct = nested_wf()
    direct["subgraphs"]["plus"]["nodes"]["me"] = {"type": "subgraph", "subgraph": "plus"}
    assert ("s/me", None, "cycle") in codes(validate(direct, registry))


def test_a_problem_inside_names_the_instance_and_the_inner_node(registry):
    wf = nested_wf()
    wf["subgraphs"]["plus"]["nodes"]["b"]["inputs"]["b"] = 5000
    assert codes(validate(wf, registry)) == [("s/b", "b", "out_of_range")]
    wf = nested_wf()
    wf["subgraphs"]["plus"]["nodes"]["a"]["type"] = "not_installed"
    problems = validate(wf, registry)
    assert codes(problems) == [("s/a", None, "unknown_type")]
    assert str(problems[0]).startswith("s/a: unknown node type 'not_installed'")


def test_an_input_the_instance_does_not_give_is_missing_on_the_inner_node(registry):
    wf = nested_wf()
    wf["nodes"]["s"]["inputs"] = {}
    assert codes(validate(wf, registry)) == [("s/a", "a", "missing_input")]


@pytest.mark.parametrize("change, expected", [
    (lambda wf: wf["nodes"]["s"].update(subgraph="nope"), [("s", None, "missing_node"),
                                                           ("out", "value", "missing_input")]),
    (lambda wf: wf["nodes"]["s"].pop("subgraph"), [("s", None, "bad_node"), ("out", "value", "missing_input")]),
    (lambda wf: wf["nodes"]["s"]["inputs"].update(z=1), [("s", "z", "unknown_input")]),
    (lambda wf: wf["nodes"]["out"]["inputs"].update(value=L("s", "zz")), [("out", "value", "missing_input")]),
    (lambda wf: wf["subgraphs"]["plus"].update(outputs=[{"name": "y"}]), [("s", None, "bad_node"),
                                                                           ("out", "value", "missing_input")]),
    (lambda wf: wf["subgraphs"]["plus"]["outputs"][0]["from"].update(node="gone"),
     [("s", None, "bad_node"), ("out", "value", "missing_input")]),
    (lambda wf: wf["subgraphs"]["plus"]["inputs"][0]["to"][0].update(node="gone"),
     [("s", "x", "bad_node"), ("out", "value", "missing_input")]),
    (lambda wf: wf.update(subgraphs=[]), [(None, None, "bad_node"), ("s", None, "missing_node"),
                                          ("out", "value", "missing_input")]),
])
def test_instance_and_definition_problems_name_the_instance(registry, change, expected):
    wf = nested_wf()
    change(wf)
    problems = validate(wf, registry)
    assert codes(problems) == expected, problems
    assert all(p.message for p in problems)


def test_a_missing_output_names_the_outputs_there_are(registry):
    wf = nested_wf()
    wf["nodes"]["out"]["inputs"]["value"] = L("s", "zz")
    (problem,) = validate(wf, registry)
    assert "subgraph node 's' has no output 'zz' (outputs: y)" in problem.message


def test_ui_is_ignored_and_a_clashing_id_is_refused(registry, settings):
    plan = compile_workflow(nested_wf(), registry, settings)
    assert "ui" not in plan.workflow.nodes["s"]  # the document itself is untouched
    wf = nested_wf()
    wf["nodes"]["s/a"] = {"type": "t_const", "inputs": {}}
    assert ("s/a", None, "bad_node") in codes(validate(wf, registry))


def test_mute_and_bypass_on_an_instance_apply_to_every_node_inside(executor, registry):
    wf = nested_wf()
    wf["nodes"]["s"]["mode"] = "bypass"
    result = executor.run(wf)
    assert result.outputs["out"]["int"] == 3 and result.executed == ["c", "out"]
    wf["nodes"]["s"]["mode"] = "mute"
    (problem,) = validate(wf, registry)
    assert (problem.node, problem.input, problem.code) == ("out", "value", "missing_input")


def test_targets_may_name_an_instance(executor):
    wf = nested_wf()
    wf["subgraphs"]["plus"]["nodes"]["show"] = {"type": "t_collect", "inputs": {"value": L("a")}}
    plan = executor.compile(wf, targets=["s"])
    assert plan.outputs == ("s/show",) and "out" not in plan.steps


def chain_of_definitions(depth: int) -> dict[str, Any]:
    """Definition gK uses g(K+1); the last holds one node; the workflow uses g0."""
    defs = {}
    for k in range(depth):
        inner = ({"n": {"type": "subgraph", "subgraph": f"g{k + 1}", "inputs": {}}} if k < depth - 1
                 else {"n": {"type": "t_const", "inputs": {"value": 1}}})
        out = {"node": "n", "output": "out" if k < depth - 1 else "int"}
        defs[f"g{k}"] = {"title": f"g{k}", "nodes": inner, "inputs": [],
                         "outputs": [{"name": "out", "type": "int", "from": out}]}
    return {"nodes": {"s": {"type": "subgraph", "subgraph": "g0", "inputs": {}},
                      "o": {"type": "t_collect", "inputs": {"value": L("s", "out")}}},
            "subgraphs": defs}


def test_nesting_is_limited_to_max_depth(registry, executor):
    ok = executor.run(chain_of_definitions(MAX_DEPTH))
    assert ok.outputs["o"]["int"] == 1 and ok.executed[0].count("/") == MAX_DEPTH
    problems = validate(chain_of_definitions(MAX_DEPTH + 1), registry)
    deep = [p for p in problems if p.code == "bad_node"]
    assert len(deep) == 1 and f"the limit is {MAX_DEPTH}" in deep[0].message


def test_an_expansion_over_the_node_limit_stops_early(registry, monkeypatch):
    assert MAX_NODES == 100_000
    monkeypatch.setattr(subgraphs, "MAX_NODES", 2000)  # the same check, sooner
    defs = {}
    for k in range(40):  # 2**40 nodes if nothing stopped it
        defs[f"d{k}"] = {"nodes": {"x": {"type": "subgraph", "subgraph": f"d{k + 1}"},
                                   "y": {"type": "subgraph", "subgraph": f"d{k + 1}"}}}
    defs["d40"] = {"nodes": {"n": {"type": "t_const", "inputs": {}}}}
    wf = {"nodes": {"s": {"type": "subgraph", "subgraph": "d0"},
                    "o": {"type": "t_collect", "inputs": {"value": 1}}}, "subgraphs": defs}
    start = time.perf_counter()
    problems = validate(wf, registry)
    assert time.perf_counter() - start < 2
    assert codes(problems) == [(None, None, "bad_node")]
    assert "more than 2000 nodes; the limit is 2000" in problems[0].message


def test_odd_values_in_an_instance_are_problems_not_crashes(registry):
    wf = nested_wf()
    wf["nodes"]["s"]["inputs"] = {"x": {"node": ["c"], "output": "int"}}
    wf["nodes"]["out2"] = {"type": "t_collect", "inputs": {"value": {"node": ["s"], "output": "y"}}}
    wf["nodes"]["t"] = {"type": "subgraph", "subgraph": "plus", "inputs": [1]}
    found = codes(validate(wf, registry))
    assert ("s/a", "a", "bad_link") in found and ("out2", "value", "bad_link") in found
    assert ("t", None, "bad_inputs") in found


def test_the_cli_runs_and_validates_a_workflow_with_a_subgraph(tmp_path, monkeypatch, capsys):
    """image_basics with resize → crop as a subgraph: the PNG keeps the subgraphs section,
    and a bad value inside is reported as ``instance/inner.input``."""
    import json

    from loom import Workflow
    from loom.cli import main
    from loom.settings import SHIPPED_WORKFLOWS
    wf = json.loads((SHIPPED_WORKFLOWS / "image_basics.json").read_text())
    inner = {k: wf["nodes"].pop(k) for k in ("small", "crop")}
    del inner["small"]["inputs"]["image"]
    wf["subgraphs"] = {"prep": {
        "title": "Resize and crop", "nodes": inner,
        "inputs": [{"name": "image", "type": "Image", "to": [{"node": "small", "input": "image"}]}],
        "outputs": [{"name": "image", "type": "Image", "from": {"node": "crop", "output": "image"}}]}}
    wf["nodes"]["prep"] = {"type": "subgraph", "subgraph": "prep", "inputs": {"image": L("cat", "image")}}
    for name in ("negative", "batch"):
        for k, v in wf["nodes"][name]["inputs"].items():
            if v == L("crop", "image"):
                wf["nodes"][name]["inputs"][k] = L("prep", "image")
    path = tmp_path / "nested.json"
    path.write_text(json.dumps(wf))
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(path)]) == 0
    saved = Workflow.load(tmp_path / "output" / "image_basics_00001.png")
    assert saved.extra["subgraphs"]["prep"]["title"] == "Resize and crop"
    wf["subgraphs"]["prep"]["nodes"]["crop"]["inputs"]["width"] = -5
    path.write_text(json.dumps(wf))
    capsys.readouterr()
    assert main(["validate", str(path)]) == 2
    assert "prep/crop.width: " in capsys.readouterr().out


def test_inner_nodes_of_an_old_version_are_migrated_and_a_failing_migration_is_a_problem(settings):
    from loom import Executor, Registry, node

    def bad(inputs):
        raise ValueError("cannot read this")

    @node(id="sg_mig", version=2, output=True, migrations={1: lambda i: {"count": i.get("amount", 0) * 10}})
    def sg_mig(count: int = 0) -> int:
        """Version 2 renamed amount → count and changed its unit."""
        return count

    @node(id="sg_bad_mig", version=2, output=True, migrations={1: bad})
    def sg_bad_mig(count: int = 0) -> int:
        """A migration that fails."""
        return count

    reg = Registry()
    reg.add(sg_mig)
    reg.add(sg_bad_mig)
    wf = {"nodes": {"s": {"type": "subgraph", "subgraph": "d"}},
          "subgraphs": {"d": {"nodes": {"m": {"type": "sg_mig", "version": 1, "inputs": {"amount": 4}}}}}}
    assert Executor(reg, settings=settings).run(wf).outputs["s/m"]["int"] == 40
    wf["subgraphs"]["d"]["nodes"]["m"]["type"] = "sg_bad_mig"
    problem = validate(wf, reg)[0]  # (the old inputs are then reported as they are, too)
    assert (problem.node, problem.code) == ("s/m", "bad_node") and "cannot read this" in problem.message


def test_a_workflow_without_instances_is_passed_through_untouched(registry):
    from loom import Workflow
    from loom.subgraphs import expand_subgraphs
    wf = Workflow.from_dict(flat_wf())
    nodes, problems = expand_subgraphs(wf, registry)
    assert nodes is wf.nodes and problems == []
