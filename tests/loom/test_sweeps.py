"""Sweeps: parsing, product/zip expansion, ranges, limits, validation first, cache reuse, CLI."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from typing import NamedTuple

import pytest
import torch
from PIL import Image as PILImage

from loom import Context, Executor, Input, Interrupted, Registry, RecordingObserver, Settings, node
from loom.settings import SHIPPED_WORKFLOWS
from loom.sweeps import (MAX_CELLS, Axis, SweepError, SweepValidationError, combine, expand,
                         make_sweep, parse_cli_sweep, parse_sweeps, range_values, run_sweep)
from loom.types import Image, Seed
from loom.workflow import png_info

CALLS: Counter[str] = Counter()


@node(category="test")
def sw_noise(seed: Seed = 1) -> int:
    """A number from a seed."""
    CALLS["sw_noise"] += 1
    return seed * 10


@node(category="test")
def sw_sample(x: int, cfg: float = Input(5.0, ge=0.0, le=30.0)) -> float:
    """x scaled by cfg."""
    CALLS["sw_sample"] += 1
    return x * cfg


@node(category="test")
def sw_decode(v: float) -> Image:
    """A 2-image 4×4 batch whose brightness is v % 1."""
    CALLS["sw_decode"] += 1
    return torch.full((2, 3, 4, 4), (v % 100) / 100.0)


@node(category="test", output=True)
def sw_save(ctx: Context, images: Image, prefix: str = "sw") -> None:
    """Save the batch as PNGs carrying the run's seeds."""
    CALLS["sw_save"] += 1
    saved = []
    for i in range(images.shape[0]):
        name = f"{prefix}_{ctx.run_id}_{i}.png"
        arr = (images[i].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        PILImage.fromarray(arr).save(ctx.output_dir / name,
                                     pnginfo=png_info(None, {"seeds": ctx.run_info.get("seeds", {})}))
        saved.append({"kind": "output", "path": name})
    ctx.show(images=saved)


class Score(NamedTuple):
    score: float
    ok: bool


@node(category="metrics", output=True)
def sw_metric(v: float) -> Score:
    """A metric: the value and whether it is above 20."""
    CALLS["sw_metric"] += 1
    return Score(v, v > 20)


def _wf(**extra):
    link = lambda n, o: {"node": n, "output": o}  # noqa: E731
    return {"format": "loom.workflow", "version": 1, "nodes": {
        "noise": {"type": "sw_noise", "inputs": {"seed": 1}},
        "sample": {"type": "sw_sample", "inputs": {"x": link("noise", "int"), "cfg": 5.0}},
        "decode": {"type": "sw_decode", "inputs": {"v": link("sample", "float")}},
        "save": {"type": "sw_save", "inputs": {"images": link("decode", "image")}},
        "metric": {"type": "sw_metric", "inputs": {"v": link("sample", "float")}}}, **extra}


@pytest.fixture
def sw_executor(tmp_path):
    reg = Registry()
    reg.add(sw_noise, sw_sample, sw_decode, sw_save, sw_metric)
    CALLS.clear()
    return Executor(reg, settings=Settings(home=tmp_path))


def test_ranges_include_stop_when_a_step_lands_on_it():
    assert range_values({"start": 1, "stop": 4}) == (1, 2, 3, 4)
    assert range_values({"start": 1, "stop": 10, "step": 2}) == (1, 3, 5, 7, 9)
    assert range_values({"start": 0.1, "stop": 0.3, "step": 0.1}) == (0.1, 0.2, 0.3)
    assert range_values({"start": 0.5, "stop": 2, "step": 0.5}) == (0.5, 1.0, 1.5, 2.0)
    assert range_values({"start": 5, "stop": 1, "step": -2}) == (5, 3, 1)
    assert all(isinstance(v, float) for v in range_values({"start": 1, "stop": 2, "step": 0.5}))
    for bad, words in [({"start": 1, "stop": 4, "step": 0}, "must not be 0"),
                       ({"start": 4, "stop": 1}, "never gets from 4 to 1"),
                       ({"start": "a", "stop": 1}, "start must be a finite number"),
                       ({"start": 0, "stop": 10**6}, "at most 1000"),
                       ({"start": 0, "stop": 1, "by": 1}, "unknown key 'by'")]:
        with pytest.raises(SweepError, match=words):
            range_values(bad)


def test_product_and_zip_expansion():
    s = parse_sweeps(_wf(sweeps=[{"node": "sample", "input": "cfg", "values": [3, 5]},
                                 {"node": "noise", "input": "seed", "values": {"start": 1, "stop": 3}}]))
    assert s.mode == "product" and len(s) == 6
    assert [dict(c.values) for c in s.cells()][:4] == [
        {"sample.cfg": 3, "noise.seed": 1}, {"sample.cfg": 3, "noise.seed": 2},
        {"sample.cfg": 3, "noise.seed": 3}, {"sample.cfg": 5, "noise.seed": 1}]
    z = parse_sweeps(_wf(sweeps={"mode": "zip", "axes": [
        {"node": "sample", "input": "cfg", "values": [3, 5, 7]},
        {"node": "noise", "input": "seed", "values": [7, 8, 9]}]}))
    assert z.mode == "zip" and [c.values["noise.seed"] for c in z.cells()] == [7, 8, 9]
    assert parse_sweeps(_wf(sweeps=[{"node": "sample", "input": "cfg", "values": [1, 2]},
                                    {"node": "noise", "input": "seed", "values": [1, 2]}],
                            sweep_mode="zip")).mode == "zip"
    cells = expand(_wf(sweeps=[{"node": "sample", "input": "cfg", "values": [3, 5]}], sweep_mode="product"),
                   s)
    assert len(cells) == 6
    cell, doc = cells[4]
    assert "sweeps" not in doc and "sweep_mode" not in doc
    assert doc["nodes"]["sample"]["inputs"]["cfg"] == 5 and doc["nodes"]["noise"]["inputs"]["seed"] == 2
    assert doc["nodes"]["sample"]["inputs"]["x"] == {"node": "noise", "output": "int"}


def test_malformed_sweeps_and_limits():
    cases = [({"sweeps": [{"node": "a", "input": "b", "values": []}]}, "no values"),
             ({"sweeps": [{"node": "a", "values": [1]}]}, "\"input\" must be a non-empty string"),
             ({"sweeps": [{"node": "a", "input": "b", "values": 3}]}, "must be a list or a range"),
             ({"sweeps": "x"}, "must be a list of axes"),
             ({"sweeps": [{"node": "a", "input": "b", "values": [1]}], "sweep_mode": "grid"},
              "'grid' is not one of product, zip"),
             ({"sweeps": {"mode": "zip", "axes": [{"node": "a", "input": "b", "values": [1, 2]},
                                                  {"node": "a", "input": "c", "values": [1]}]}},
              r"same number of values on every axis \(a.b: 2, a.c: 1\)"),
             ({"sweeps": [{"node": "a", "input": "b", "values": [1]},
                          {"node": "a", "input": "b", "values": [2]}]}, "a.b is swept twice"),
             ({"sweeps": [{"node": "a", "input": "b", "values": list(range(40))},
                          {"node": "a", "input": "c", "values": list(range(40))}]},
              f"1600 cells; at most {MAX_CELLS} runs")]
    for data, words in cases:
        with pytest.raises(SweepError, match=words):
            parse_sweeps(data)
    with pytest.raises(SweepError, match="no node 'nope'"):
        expand(_wf(), make_sweep([Axis("nope", "x", (1,))]))


def test_cli_sweep_syntax():
    assert parse_cli_sweep("sample.cfg=3,5,7") == Axis("sample", "cfg", (3, 5, 7))
    assert parse_cli_sweep("sample.seed=1..4").values == (1, 2, 3, 4)
    assert parse_cli_sweep("sample.seed=1..10:2").values == (1, 3, 5, 7, 9)
    assert parse_cli_sweep("sample.cfg=0.5..1.5:0.25").values == (0.5, 0.75, 1.0, 1.25, 1.5)
    assert parse_cli_sweep("pos.text=a red circle,a blue square").values == ("a red circle", "a blue square")
    assert parse_cli_sweep('pos.text=["a, b", "c"]').values == ("a, b", "c")
    assert parse_cli_sweep("k.sampler=euler,ddim,true").values == ("euler", "ddim", True)
    assert parse_cli_sweep("my.node.x=1,2").node == "my.node"
    for bad, words in [("cfg=1,2", "write node.input="), ("a.b=", "write node.input="),
                       ("a.b=1..x", "'x' is not a number"), ("a.b=1..5:0", "must not be 0"),
                       ("a.b=[]", "must not be empty")]:
        with pytest.raises(SweepError, match=words):
            parse_cli_sweep(bad)
    base = parse_sweeps(_wf(sweeps=[{"node": "sample", "input": "cfg", "values": [1, 2]}]))
    both = combine(base, [parse_cli_sweep("noise.seed=1,2")], "zip")
    assert both.mode == "zip" and [a.key for a in both.axes] == ["sample.cfg", "noise.seed"]
    with pytest.raises(SweepError, match="same number"):
        combine(base, [parse_cli_sweep("noise.seed=1,2,3")], "zip")
    merged = combine(base, [parse_cli_sweep("sample.cfg=9,8")])
    assert [a.values for a in merged.axes] == [(9, 8)]


def test_every_value_of_every_cell_is_checked_before_anything_runs(sw_executor):
    wf = _wf(sweeps=[{"node": "sample", "input": "cfg", "values": [3, 50, 7, -1]},
                     {"node": "noise", "input": "seed", "values": [1, "two"]}])
    with pytest.raises(SweepValidationError) as err:
        run_sweep(sw_executor, wf)
    assert sum(CALLS.values()) == 0  # nothing ran
    probs = {(p.node, p.input, p.value): p for p in err.value.problems}
    assert set(probs) == {("sample", "cfg", 50), ("sample", "cfg", -1), ("noise", "seed", "two")}
    p = probs[("sample", "cfg", 50)]
    assert p.cell == 2 and dict(p.values) == {"sample.cfg": 50, "noise.seed": 1}
    assert "cell 2 (sample.cfg=50, noise.seed=1): sample.cfg:" in str(p) and "50" in str(p)
    assert probs[("noise", "seed", "two")].cells == 4  # the same problem in every cfg column
    with pytest.raises(SweepValidationError, match="no input 'cgf'|cgf"):
        run_sweep(sw_executor, _wf(sweeps=[{"node": "sample", "input": "cgf", "values": [1]}]))


def test_cache_is_shared_so_a_cfg_sweep_reruns_only_what_follows_sample(sw_executor):
    wf = _wf(sweeps=[{"node": "sample", "input": "cfg", "values": [3.0, 5.0, 7.0]}])
    obs = RecordingObserver()
    results = run_sweep(sw_executor, wf, observer=obs)
    started: dict[str, list[str]] = {}
    for name, args in obs.events:
        if name == "node_started":
            started.setdefault(args[0], []).append(args[1])
    runs = [r.run_id for r in results]
    assert sorted(started[runs[0]]) == ["decode", "metric", "noise", "sample", "save"]
    for rid in runs[1:]:
        assert sorted(started[rid]) == ["decode", "metric", "sample", "save"]  # noise came from cache
    assert CALLS["sw_noise"] == 1 and CALLS["sw_sample"] == 3
    r = results[1]
    assert r.status == "finished" and r.cell.values == {"sample.cfg": 5.0}
    assert r.scalars == {"metric.score": 50.0, "metric.ok": 1.0}
    assert len(r.images) == 2 and r.images[0].size == (4, 4) and r.images[0].getpixel((0, 0))[0] == 128
    assert r.seeds == {"noise.seed": 1} and r.seconds > 0


def _gated_sweep(executor, node_id: str, exc: BaseException) -> dict:
    """A cfg sweep over 1, 1.5, 2 whose metric is fed through a node raising ``exc`` at 15."""
    @node(category="test", id=node_id)
    def gate(v: float) -> float:
        """Raises at 15."""
        if v == 15:
            raise exc
        return v
    executor.registry.add(gate)
    wf = _wf(sweeps=[{"node": "sample", "input": "cfg", "values": [1.0, 1.5, 2.0]}])
    wf["nodes"]["metric"]["inputs"]["v"] = {"node": "p", "output": "float"}
    wf["nodes"]["p"] = {"type": node_id, "inputs": {"v": {"node": "sample", "output": "float"}}}
    return wf


def test_a_failing_cell_does_not_stop_the_others(sw_executor):
    wf = _gated_sweep(sw_executor, "sw_picky", ValueError("fifteen"))
    results = run_sweep(sw_executor, wf)
    assert [r.status for r in results] == ["finished", "failed", "finished"]
    assert "fifteen" in results[1].error and results[1].error.startswith("p:")


def test_an_interrupt_stops_the_sweep(sw_executor):
    wf = _gated_sweep(sw_executor, "sw_stop", Interrupted("stop here"))
    seen = []
    results = run_sweep(sw_executor, wf, on_cell=lambda r: seen.append(r.cell.index))
    assert [r.status for r in results] == ["finished", "interrupted", "interrupted"]
    assert results[2].error.startswith("not run") and seen == [0, 1, 2]
    assert CALLS["sw_sample"] == 2  # the third cell never ran


def test_cli_runs_a_sweep_and_writes_its_table(tmp_path):
    r = subprocess.run([sys.executable, "-m", "loom", "run", str(SHIPPED_WORKFLOWS / "image_basics.json"),
                        "--sweep", "crop.x=0,48", "--sweep", "small.width=256..352:96",
                        "--set", "save.prefix=sw/cell"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("cell 1/4 [crop.x=0, small.width=256]: finished")
    assert sum(l.startswith("cell ") and "/4 [" in l for l in lines) == 4
    table = next((tmp_path / "output" / "sweeps").iterdir()) / "table.csv"
    rows = list(csv.DictReader(table.open()))
    assert [(row["crop.x"], row["small.width"]) for row in rows] == [
        ("0", "256"), ("0", "352"), ("48", "256"), ("48", "352")]
    assert all(row["status"] == "finished" for row in rows)
    with PILImage.open(table.parent / "grid.png") as grid:  # labelled images; carries the sweep
        carried = json.loads(grid.text["loom.workflow"])
    assert grid.size[0] > 320 and len(parse_sweeps(carried)) == 4 and "nodes" in carried
    bad = subprocess.run([sys.executable, "-m", "loom", "run", str(SHIPPED_WORKFLOWS / "image_basics.json"),
                          "--sweep", "crop.x=0,-5"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "cell 1 (crop.x=-5): crop.x:" in bad.stderr
    assert not list((tmp_path / "output").glob("image_basics_*"))  # nothing ran


def test_a_workflow_with_sweeps_runs_as_a_sweep_without_flags(tmp_path):
    wf = json.loads((SHIPPED_WORKFLOWS / "image_basics.json").read_text())
    wf["sweeps"] = [{"node": "crop", "input": "y", "values": [0, 8]}]
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    r = subprocess.run([sys.executable, "-m", "loom", "run", str(path)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sum(l.startswith("cell ") and "/2 [" in l for l in r.stdout.splitlines()) == 2
    r = subprocess.run([sys.executable, "-m", "loom", "validate", str(path)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "2 sweep cells" in r.stdout, r.stdout + r.stderr
    wf["sweeps"][0]["values"] = [0, -3]
    path.write_text(json.dumps(wf))
    r = subprocess.run([sys.executable, "-m", "loom", "validate", str(path)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout.startswith("cell 1 (crop.y=-3): crop.y:"), r.stdout + r.stderr
