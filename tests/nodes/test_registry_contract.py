"""One contract test over the whole default registry (like diffusers' SchedulerCommonTest)."""
from __future__ import annotations

import json

import pytest

from loom import Registry, Settings, validate
from loom.nodeapi import check_widget_value

SETTINGS = Settings()
REGISTRY = Registry.default(SETTINGS)


def test_builtin_plugins_load_without_errors():
    assert REGISTRY.plugin_errors == [], [e.to_dict() for e in REGISTRY.plugin_errors]
    assert len(REGISTRY) >= 13


@pytest.mark.parametrize("spec", list(REGISTRY), ids=lambda s: s.id)
def test_node_contract(spec):
    schema = REGISTRY.schema(spec, SETTINGS)
    json.dumps(schema)
    assert spec.description, f"{spec.id} needs a one-line docstring"
    assert spec.category and spec.title
    for inp in spec.inputs:
        if inp.kind == "widget" and inp.default is not None and inp.widget not in ("model_file", "image_file"):
            assert check_widget_value(spec.id, inp, inp.default) is None
    for out in spec.outputs:
        assert out.type is not None and out.name
    assert spec.outputs or spec.output, f"{spec.id} has no outputs and is not an output node"


@pytest.mark.parametrize("spec", [s for s in REGISTRY if s.output], ids=lambda s: s.id)
def test_output_node_with_defaults_only_reports_just_its_missing_links(spec):
    """Defaults are valid: the only problems of a lone node are its unconnected required inputs."""
    wf = {"nodes": {"n": {"type": spec.id, "inputs": {}}}}
    problems = validate(wf, REGISTRY, SETTINGS)
    for p in problems:
        assert p.code in ("missing_input", "missing_model", "missing_file"), p
