"""Muted and bypassed nodes ("mode" in a node entry), as ComfyUI users know them."""
from __future__ import annotations

from typing import Any

import tinynodes
from loom import validate


def L(n: str, out: str = "int") -> dict[str, str]:
    return {"node": n, "output": out}


def chain(mode_of_add: str | None = None) -> dict[str, Any]:
    """const 3 → add (+4) → add (+10) → collect."""
    add = {"type": "t_add", "inputs": {"a": L("c"), "b": 4}}
    if mode_of_add:
        add["mode"] = mode_of_add
    return {"nodes": {"c": {"type": "t_const", "inputs": {"value": 3}}, "add": add,
                      "add2": {"type": "t_add", "inputs": {"a": L("add"), "b": 10}},
                      "out": {"type": "t_collect", "inputs": {"value": L("add2")}}}}


def test_a_bypassed_node_passes_its_matching_input_through(executor):
    assert executor.run(chain()).outputs["out"]["int"] == 17
    result = executor.run(chain("bypass"))
    assert result.outputs["out"]["int"] == 13  # 3 + 10: add is skipped, its input goes on
    assert "add" not in result.executed and "add" not in result.cached


def test_bypass_gives_the_cache_keys_of_the_graph_without_the_node(executor):
    without = chain()
    del without["nodes"]["add"]
    without["nodes"]["add2"]["inputs"]["a"] = L("c")
    executor.run(without)
    tinynodes.reset()
    again = executor.run(chain("bypass"))
    assert again.executed == [] and again.outputs["out"]["int"] == 13


def test_a_chain_of_bypassed_nodes_is_followed(executor):
    wf = chain("bypass")
    wf["nodes"]["add2"]["mode"] = "bypass"
    assert executor.run(wf).outputs["out"]["int"] == 3


def test_a_muted_node_is_left_out_and_a_required_input_from_it_is_a_problem(registry, settings):
    problems = validate(chain("mute"), registry, settings)
    assert [(p.node, p.input, p.code) for p in problems] == [("add2", "a", "missing_input")]
    assert "muted" in problems[0].message


def test_a_muted_output_node_does_not_run_and_an_unknown_muted_type_is_ignored(executor):
    wf = chain()
    wf["nodes"]["scratch"] = {"type": "not_installed", "mode": "mute", "inputs": {}}
    wf["nodes"]["out2"] = {"type": "t_collect", "mode": "mute", "inputs": {"value": L("c")}}
    result = executor.run(wf)
    assert set(result.outputs) == {"out"} and "out2" not in result.executed


def test_bypass_without_a_fitting_input_and_a_bad_mode_are_problems(registry, settings):
    wf = {"nodes": {"c": {"type": "t_const", "inputs": {"value": 3}},
                    "img": {"type": "t_big", "mode": "bypass", "inputs": {"size": 4}},
                    "sink": {"type": "t_image_sink", "inputs": {"image": L("img", "image")}},
                    "x": {"type": "t_const", "mode": "sideways", "inputs": {}}}}
    problems = {(p.node, p.input, p.code) for p in validate(wf, registry, settings)}
    assert problems == {("sink", "image", "missing_input"), ("x", None, "bad_node")}
