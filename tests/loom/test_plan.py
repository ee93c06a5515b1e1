"""compile() → Plan → Executor.run(plan): one check, an immutable plan, typed outputs."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

import tinynodes
from loom import Executor, NodeError, Plan, Registry, Settings, ValidationError, compile_workflow, node, validate
from loom.links import check_value
from loom.types import VAE, Generator, Image, Latent, Mask


def L(n: str, out: str = "int") -> dict[str, str]:
    return {"node": n, "output": out}


def chain() -> dict[str, Any]:
    return {"nodes": {"c": {"type": "t_const", "inputs": {"value": 3}},
                      "a": {"type": "t_add", "inputs": {"a": L("c"), "b": 4}},
                      "out": {"type": "t_sink", "inputs": {"value": L("a")}}}}


def test_compile_gives_an_immutable_plan_with_converted_values_and_static_keys(registry, settings):
    plan = compile_workflow(chain(), registry, settings)
    assert isinstance(plan, Plan)
    assert plan.order == ("c", "a", "out") and plan.outputs == ("out",)
    step = plan.steps["a"]
    assert dict(step.values) == {"b": 4} and [(lk.input, lk.node, lk.output) for lk in step.links] == [
        ("a", "c", "int")]
    assert all(s.key for s in plan.steps.values())  # pure nodes: every key known before running
    with pytest.raises(TypeError):
        plan.steps["x"] = step  # type: ignore[index]
    with pytest.raises(TypeError):
        step.values["b"] = 5  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.key = "other"  # type: ignore[misc]


def test_validate_is_compiles_problems(registry, settings):
    wf = chain()
    wf["nodes"]["a"]["inputs"]["b"] = "x"
    wf["nodes"]["out"]["inputs"]["nope"] = 1
    problems = compile_workflow(wf, registry, settings)
    assert isinstance(problems, list)
    assert [(p.node, p.input, p.code) for p in problems] == [
        (p.node, p.input, p.code) for p in validate(wf, registry, settings)]
    assert {p.code for p in problems} == {"bad_value", "unknown_input"}
    assert validate(chain(), registry, settings) == []


def test_a_plan_runs_as_is_and_again_from_the_cache(executor, registry, settings):
    plan = executor.compile(chain())
    first = executor.run(plan)
    assert first.ui["out"]["values"] == {"v": 7} and first.executed == ["c", "a", "out"]
    again = executor.run(plan)
    assert again.executed == [] and again.cached == ["out"]
    assert tinynodes.CALLS["t_add"] == 1


def test_running_a_plan_checks_nothing_again(executor, monkeypatch):
    plan = executor.compile(chain())
    import loom.plan
    calls = []
    monkeypatch.setattr(loom.plan, "check_node", lambda *a: calls.append(a) or [])
    assert executor.run(plan).ui["out"]["values"] == {"v": 7}
    assert calls == []


def test_a_plan_compiled_without_settings_is_for_checking_only(registry):
    plan = compile_workflow(chain(), registry)
    assert isinstance(plan, Plan)
    with pytest.raises(ValueError, match="without settings"):
        Executor(registry, settings=Settings()).run(plan)


def test_targets_run_a_node_that_is_not_an_output(executor):
    plan = executor.compile(chain(), targets=["a"])
    assert plan.order == ("c", "a")
    assert executor.run(plan).outputs["a"]["int"] == 7


# --- outputs are checked against their declared types, at one boundary -------------------------
@node(id="plan_bad_image", category="test")
def plan_bad_image() -> Image:
    """Returns a 3-D tensor where an image is declared."""
    return torch.zeros(3, 8, 8)


@node(id="plan_bad_generator", category="test")
def plan_bad_generator() -> Generator:
    """Returns something that is not a Generator."""
    return object()  # type: ignore[return-value]


@node(id="plan_bad_int", category="test")
def plan_bad_int() -> int:
    """Returns text where an int is declared."""
    return "seven"  # type: ignore[return-value]


@node(id="plan_take", category="test", output=True)
def plan_take(value: Any) -> None:
    """Takes anything."""


@pytest.mark.parametrize("bad,output,words", [
    ("plan_bad_image", "image", "float tensor B×C×H×W"),
    ("plan_bad_generator", "generator", "expected Generator, got a object"),
    ("plan_bad_int", "int", "expected an int, got a str"),
])
def test_a_node_returning_the_wrong_type_fails_naming_node_and_output(tmp_path, bad, output, words):
    reg = Registry()
    reg.add(plan_bad_image, plan_bad_generator, plan_bad_int, plan_take)
    wf = {"nodes": {"bad": {"type": bad, "inputs": {}},
                    "take": {"type": "plan_take", "inputs": {"value": L("bad", output)}}}}
    with pytest.raises(NodeError) as err:
        Executor(reg, settings=Settings(home=tmp_path)).run(wf)
    assert err.value.node == "bad" and f"output {output!r}" in err.value.message
    assert words in err.value.message


def test_runtime_checks_of_the_built_in_socket_types():
    assert check_value(Image, torch.rand(1, 3, 4, 4)) is None
    assert "empty" in check_value(Image, torch.rand(0, 3, 4, 4))
    assert check_value(Image, torch.rand(1, 2, 4, 4)) is not None
    assert check_value(Mask, torch.rand(1, 1, 4, 4)) is None
    assert check_value(Mask, torch.rand(1, 3, 4, 4)) is not None
    assert check_value(Latent, Latent(torch.zeros(1, 4, 2, 2))) is None
    assert check_value(Latent, torch.zeros(1, 4, 2, 2)) is not None
    assert check_value(VAE, object()) is not None
    assert check_value(float, 3) is None and check_value(float, True) is not None
    assert check_value(int, 3.0) is not None


# --- the link rule: bool feeds int (COERCIONS) and the value arrives as an int -------------------
@node(id="plan_flag", category="test")
def plan_flag(on: bool = True) -> bool:
    """A flag."""
    return on


@node(id="plan_count", category="test", output=True)
def plan_count(ctx: Any, count: int = 0) -> int:
    """Shows the count it got."""
    return count


def test_a_bool_output_feeds_an_int_widget_and_arrives_as_an_int(tmp_path):
    reg = Registry()
    reg.add(plan_flag, plan_count)
    wf = {"nodes": {"f": {"type": "plan_flag", "inputs": {"on": True}},
                    "n": {"type": "plan_count", "inputs": {"count": L("f", "bool")}}}}
    assert validate(wf, reg) == []
    value = Executor(reg, settings=Settings(home=tmp_path)).run(wf).outputs["n"]["int"]
    assert value == 1 and type(value) is int


def test_an_invalid_workflow_raises_validation_error_with_every_problem(executor):
    wf = chain()
    wf["nodes"]["a"]["inputs"]["b"] = 5000
    wf["nodes"]["c"]["inputs"]["value"] = "no"
    with pytest.raises(ValidationError) as err:
        executor.run(wf)
    assert {p.node for p in err.value.problems} == {"a", "c"}
