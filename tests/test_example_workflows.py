"""Every file in workflows/ validates, and runs end to end on the CPU.

A workflow may carry ``meta.test_set`` ({"node.input": value}) to make the test run
cheaper (fewer steps), and ``meta.requires_user_models`` when it is a template for
the user's own checkpoints: then validation must name exactly the missing model files.
"""
from __future__ import annotations

import pytest

from loom import Executor, Registry, Settings, Workflow, validate
from loom.settings import SHIPPED_WORKFLOWS

FILES = sorted(SHIPPED_WORKFLOWS.glob("*.json"))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    registry = Registry.default(settings)
    return settings, registry, Executor(registry, settings=settings)


def test_there_are_examples():
    assert len(FILES) >= 2


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_validates_and_runs(path, env):
    settings, registry, executor = env
    wf = Workflow.load(path)
    assert wf.meta.get("title"), f"{path.name} needs meta.title"
    problems = validate(wf, registry, settings)
    if wf.meta.get("requires_user_models"):
        assert problems and all(p.code == "missing_model" for p in problems), problems
        assert all("put it at" in p.message for p in problems)
        return
    assert problems == [], problems
    for target, value in wf.meta.get("test_set", {}).items():
        node, _, name = target.rpartition(".")
        wf.set_input(node, name, value)
    result = executor.run(wf)
    assert result.outputs or result.ui
    for ui in result.ui.values():
        for img in ui.get("images", []):
            root = settings.outputs if img["kind"] == "output" else settings.previews
            assert (root / img["path"]).is_file()
