"""workflows/ablation_schedulers.json runs as a sweep (its meta.test_set and meta.test_sweeps) and
gives a grid, a table with every metric per cell, and a plot."""
from __future__ import annotations

import csv
import io

import pytest

from loom import Executor, Registry, Settings, Workflow
from loom.settings import SHIPPED_WORKFLOWS
from loom.sweep_cli import write_outputs
from loom.sweeps import base_document, parse_sweeps, run_sweep
from loom.workflow import read_png_text

PATH = SHIPPED_WORKFLOWS / "ablation_schedulers.json"
METRICS = ("fid.fid", "kid.kid", "kid.std", "judge.overall", "judge.colour", "judge.shape", "judge.size",
           "judge.position")


def test_the_full_sweep_is_six_schedulers_by_three_step_counts() -> None:
    sweep = parse_sweeps(Workflow.load(PATH).extra)
    assert sweep is not None and len(sweep) == 18
    assert [a.key for a in sweep.axes] == ["sched.name", "sample.steps"] and len(sweep.axes[0].values) == 6


def test_the_test_sweep_runs_and_reports_every_metric(tmp_path) -> None:
    wf = Workflow.load(PATH)
    for target, value in wf.meta["test_set"].items():
        node, _, name = target.rpartition(".")
        wf.set_input(node, name, value)
    sweep = parse_sweeps({"sweeps": wf.meta["test_sweeps"]})  # 2 schedulers × 2 step counts
    assert sweep is not None and len(sweep) == 4
    settings = Settings(home=tmp_path)
    executor = Executor(Registry.default(settings), settings=settings)
    results = run_sweep(executor, wf, sweep)
    assert [r.status for r in results] == ["finished"] * 4, [r.error for r in results]
    for r in results:
        assert set(METRICS) <= set(r.scalars), r.scalars
        assert len(r.images) == wf.meta["test_set"]["latent.batch"]
        assert 0.0 <= r.scalars["judge.overall"] <= 1.0 and r.scalars["fid.fid"] >= 0.0
    files = write_outputs(tmp_path / "sweep", results, sweep, base_document(wf))
    names = {p.name for p in files}
    assert {"table.csv", "grid.png", "plot.png"} <= names
    rows = list(csv.DictReader(io.StringIO((tmp_path / "sweep" / "table.csv").read_text())))
    assert [(r["sched.name"], r["sample.steps"]) for r in rows] == [("euler", "2"), ("euler", "3"),
                                                                     ("ddim", "2"), ("ddim", "3")]
    assert all(r["kid.kid"] and r["judge.overall"] for r in rows)
    assert "loom.sweep" in read_png_text((tmp_path / "sweep" / "grid.png").read_bytes())


@pytest.mark.parametrize("key", ["test_set", "test_sweeps", "title"])
def test_the_example_carries_its_test_settings(key: str) -> None:
    assert Workflow.load(PATH).meta.get(key)
