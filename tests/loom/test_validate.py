"""Validation: one test per problem code, many problems at once, and a property test."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from loom import Executor, NodeError, Settings, validate
from loom.validation import CODES
from tinynodes import link


def wf(**nodes):
    return {"format": "loom.workflow", "version": 1, "nodes": nodes}


def sink(src="c", out="int", **extra):
    return {"type": "t_sink", "inputs": {"value": link(src, out), **extra}}


GOOD = dict(c={"type": "t_const", "inputs": {"value": 2}}, s=sink())


def codes(problems):
    return [(p.node, p.input, p.code) for p in problems]


def test_good_workflow_has_no_problems(registry):
    assert validate(wf(**GOOD), registry) == []


CASES = {
    "bad_node": (dict(GOOD, x=["not a node"]), ("x", None)),
    "unknown_type": (dict(GOOD, x={"type": "nope"}), ("x", None)),
    "version_too_new": (dict(c={"type": "t_const", "version": 9, "inputs": {}}, s=sink()), ("c", None)),
    "bad_inputs": (dict(c={"type": "t_const", "inputs": [1]}, s=sink()), ("c", None)),
    "unknown_input": (dict(c={"type": "t_const", "inputs": {"valu": 3}}, s=sink()), ("c", "valu")),
    "missing_input": (dict(c={"type": "t_const", "inputs": {}}, s={"type": "t_sink", "inputs": {}}), ("s", "value")),
    "bad_link": (dict(GOOD, s={"type": "t_sink", "inputs": {"value": {"node": "c"}}}), ("s", "value")),
    "missing_node": (dict(s=sink("ghost")), ("s", "value")),
    "missing_output": (dict(GOOD, s=sink("c", "nope")), ("s", "value")),
    "type_mismatch": (dict(c={"type": "t_combo", "inputs": {}}, s=sink("c", "str")), ("s", "value")),
    "expects_link": (dict(s={"type": "t_image_sink", "inputs": {"image": 3}}), ("s", "image")),
    "bad_value": (dict(c={"type": "t_const", "inputs": {"value": "three"}}, s=sink()), ("c", "value")),
    "out_of_range": (dict(c={"type": "t_const", "inputs": {"value": 5000}}, s=sink()), ("c", "value")),
    "not_in_choices": (dict(c={"type": "t_combo", "inputs": {"mode": "z"}},
                            s={"type": "t_text_sink", "inputs": {"text": link("c", "str")}}), ("c", "mode")),
    "cycle": (dict(a={"type": "t_add", "inputs": {"a": link("b", "int")}},
                   b={"type": "t_add", "inputs": {"a": link("a", "int")}}, s=sink("a")), ("a", None)),
    "no_output": (dict(c={"type": "t_const", "inputs": {}}), (None, None)),
}


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_problem_code(registry, code):
    nodes, where = CASES[code]
    problems = validate(wf(**nodes), registry)
    assert (where[0], where[1], code) in codes(problems), problems
    for p in problems:
        assert p.message and str(p).startswith(p.node or "workflow")


def test_every_code_is_tested():
    assert set(CODES) - set(CASES) <= {"missing_model", "missing_file"}


def test_missing_model_and_missing_file(tmp_path):
    from typing import Literal  # noqa: F401
    from loom import Registry, node
    from loom.types import Image, ImageFile, ModelFile

    @node(output=True)
    def v_needs_files(ckpt: ModelFile["checkpoints"], pic: ImageFile) -> None:  # noqa: F821
        """x"""

    reg = Registry()
    reg.add(v_needs_files)
    settings = Settings(home=tmp_path)
    problems = validate(wf(n={"type": "v_needs_files", "inputs": {"ckpt": "sd15.safetensors", "pic": "../x.png"}}),
                        reg, settings)
    by = {p.input: p for p in problems}
    assert by["ckpt"].code == "missing_model"
    assert str(tmp_path / "models" / "checkpoints" / "sd15.safetensors") in by["ckpt"].message
    assert by["pic"].code == "missing_file"


def test_a_default_model_name_is_resolved_like_a_given_one(tmp_path):
    from pathlib import Path

    from loom import Executor, Input, Registry, node
    from loom.types import ModelFile

    @node(output=True)
    def v_default_model(ckpt: ModelFile["checkpoints"] = Input("base.safetensors")) -> str:  # noqa: F821
        """Report what the function received."""
        return f"{type(ckpt).__name__}:{ckpt}"

    reg = Registry()
    reg.add(v_default_model)
    settings = Settings(home=tmp_path)
    doc = wf(n={"type": "v_default_model", "inputs": {}})
    [p] = validate(doc, reg, settings)  # a missing default file is a problem naming the input
    assert (p.input, p.code) == ("ckpt", "missing_model")
    f = tmp_path / "models" / "checkpoints" / "base.safetensors"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"x")
    got = Executor(reg, settings=settings).run(doc).outputs["n"]["str"]
    assert got == f"{type(Path()).__name__}:{f}"


def test_cycle_reports_its_path(registry):
    nodes, _ = CASES["cycle"]
    [p] = [p for p in validate(wf(**nodes), registry) if p.code == "cycle"]
    assert p.message in ("cycle: a → b → a", "cycle: b → a → b")


def test_five_different_problems_all_reported(registry):
    nodes = {
        "c": {"type": "t_const", "inputs": {"value": 99999}},           # out_of_range
        "d": {"type": "t_divmod", "inputs": {"a": link("c", "int"), "bogus": 1}},  # unknown_input
        "x": {"type": "mystery_node", "inputs": {}},                     # unknown_type
        "s1": {"type": "t_sink", "inputs": {"value": link("d", "quotient"), "label": 7}},  # bad_value
        "s2": {"type": "t_sink", "inputs": {"value": link("gone", "int")}},  # missing_node
    }
    got = {p.code for p in validate(wf(**nodes), registry)}
    assert {"out_of_range", "unknown_input", "unknown_type", "bad_value", "missing_node"} <= got


def test_nodes_that_feed_no_output_are_not_checked(registry):
    nodes = dict(GOOD, scratch={"type": "t_add", "inputs": {}})
    assert validate(wf(**nodes), registry) == []


def test_int_links_into_float_but_not_str(registry):
    ok = dict(c={"type": "t_const", "inputs": {}},
              sc={"type": "t_scale", "inputs": {"x": link("c", "int")}}, s=sink("sc", "float"))
    assert validate(wf(**ok), registry) == []
    bad = dict(c={"type": "t_const", "inputs": {}},
               s={"type": "t_text_sink", "inputs": {"text": link("c", "int")}})
    assert [p.code for p in validate(wf(**bad), registry)] == ["type_mismatch"]


# --- property test: random graphs -------------------------------------------------
TYPES = ["t_const", "t_add", "t_divmod", "t_scale", "t_sink", "t_collect", "t_combo", "t_text_sink", "nope"]
INPUT_NAMES = ["value", "a", "b", "x", "factor", "label", "mode", "text", "zzz"]
OUTPUT_NAMES = ["int", "float", "str", "quotient", "remainder", "value"]
literal = st.one_of(st.integers(-2000, 2000), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=3), st.booleans(), st.none(), st.sampled_from(["x", "y", "z"]),
                    st.lists(st.integers(), max_size=2))


@st.composite
def graphs(draw):
    n = draw(st.integers(1, 7))
    ids = [f"n{i}" for i in range(n)]
    nodes = {}
    for nid in ids:
        inputs = {}
        for name in draw(st.lists(st.sampled_from(INPUT_NAMES), max_size=3, unique=True)):
            if draw(st.booleans()):
                inputs[name] = {"node": draw(st.sampled_from(ids + ["ghost"])),
                                "output": draw(st.sampled_from(OUTPUT_NAMES))}
            else:
                inputs[name] = draw(literal)
        entry = {"type": draw(st.sampled_from(TYPES)), "inputs": inputs}
        if draw(st.integers(0, 9)) == 0:
            entry = draw(st.sampled_from([{"inputs": {}}, [], {"type": 3}, {"type": "t_const", "inputs": 4}]))
        nodes[nid] = entry
    return {"format": "loom.workflow", "version": 1, "nodes": nodes}


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graphs())
def test_validate_never_raises_and_accepted_graphs_run(registry, settings, graph):
    problems = validate(graph, registry)
    assert isinstance(problems, list)
    if not problems:
        ex = Executor(registry, settings=settings)
        try:
            ex.run(graph)
        except NodeError as err:  # only an arithmetic node error is acceptable (e.g. a huge float)
            assert err.node_type in ("t_scale", "t_sink", "t_add", "t_divmod"), err


def test_int_step_is_enforced(registry):
    from loom import Input, Registry, node

    @node(output=True)
    def v_stepped(width: int = Input(512, ge=8, le=4096, step=8), tile: int = Input(0, ge=0, le=1024, step=64)) -> None:
        """x"""

    reg = Registry()
    reg.add(v_stepped)
    ok = validate(wf(n={"type": "v_stepped", "inputs": {"width": 520, "tile": 0}}), reg)
    assert ok == []
    bad = validate(wf(n={"type": "v_stepped", "inputs": {"width": 500, "tile": 100}}), reg)
    assert {(p.input, p.code) for p in bad} == {("width", "out_of_range"), ("tile", "out_of_range")}
    assert "not a multiple of 8" in str(bad[0])
