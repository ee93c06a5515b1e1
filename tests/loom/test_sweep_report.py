"""The sweep report (grid, table, CSV, plot) and the rating statistics (intervals, Bradley–Terry, ρ)."""
from __future__ import annotations

import csv
import io
import itertools
import json
import math

import numpy as np
import pytest
from PIL import Image

from loom import Workflow
from loom import rating_stats as rs
from loom import sweep_report as sr
from loom.sweeps import Axis, Cell, CellResult
from loom.workflow import read_png_text

AXES = (Axis("sched", "name", ("euler", "ddim", "heun")), Axis("sample", "steps", (4, 8)))
FAILED = 3  # ddim, 8 steps


def _colour(i: int) -> tuple[int, int, int]:
    return (30 + 35 * i, 200 - 25 * i, 90 + 20 * i)


def _results(images_per_cell: int = 1) -> list[CellResult]:
    out = []
    for i, values in enumerate(itertools.product(*(a.values for a in AXES))):
        cell = Cell(i, dict(zip((a.key for a in AXES), values)))
        if i == FAILED:
            out.append(CellResult(cell, "failed", [], {}, 0.5, {"sample.seed": 7}, error="sample: out of memory"))
            continue
        ims = [Image.new("RGB", (32, 32), _colour(i)) for _ in range(images_per_cell)]
        out.append(CellResult(cell, "finished", ims, {"fid.fid": 10.0 + i, "judge.overall": 1.0 - 0.1 * i},
                              1.25 + i, {"sample.seed": 7}, run_id=f"r{i}"))
    return out


def _box(img: Image.Image, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the pixels of one exact colour."""
    a = np.asarray(img)
    ys, xs = np.nonzero((a == np.array(colour, dtype=np.uint8)).all(axis=2))
    assert len(xs), f"colour {colour} not in the grid"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _dark(img: Image.Image, box: tuple[int, int, int, int]) -> int:
    a = np.asarray(img.crop(box).convert("L"))
    return int((a < 100).sum())


def test_grid_places_cells_by_value_and_labels_rows_and_columns() -> None:
    (grid,) = sr.grid_images(_results(), AXES, x="sched.name", y="sample.steps")
    boxes = {i: _box(grid, _colour(i)) for i in range(6) if i != FAILED}
    # x = scheduler: euler (cells 0, 1) left of ddim (2) left of heun (4, 5); y = steps 4 above 8
    assert boxes[0][0] < boxes[2][0] < boxes[4][0] and boxes[0][0] == boxes[1][0]
    assert boxes[0][1] < boxes[1][1] and boxes[0][1] == boxes[2][1] == boxes[4][1]
    cell_w = boxes[0][2] - boxes[0][0]
    assert cell_w >= 64  # 32 px images are enlarged so labels fit
    top = boxes[0][1]
    for i in (0, 2, 4):  # a value label above every column, inside its width
        x0, _, x1, _ = boxes[i]
        assert _dark(grid, (x0, top - 16, x1, top)) > 10, f"no label above column of cell {i}"
    for i in (0, 1):  # a value label left of every row
        _, y0, _, y1 = boxes[i]
        assert _dark(grid, (0, y0, boxes[i][0], y1)) > 10
    assert _dark(grid, (boxes[4][2] + 2, top, grid.width, grid.height)) == 0  # nothing right of the grid
    # the failed cell: a grey box with white text where ddim × 8 belongs
    fx, fy = boxes[2][0] + 2, boxes[1][1] + 2
    assert grid.getpixel((fx + cell_w - 6, fy + cell_w - 6)) == sr.FAILED_FILL
    region = np.asarray(grid.crop((boxes[2][0], boxes[1][1], boxes[2][2], boxes[1][3])))
    assert (region == 255).all(axis=2).sum() > 20, "the failed box should say why"


def test_grid_labels_differ_with_the_values() -> None:
    short = sr.grid_images(_results(), AXES, x="sched.name", y="sample.steps")[0]
    axes = (Axis("sched", "name", ("a-much-longer-name", "ddim", "heun")), AXES[1])
    res = _results()
    for r in res:
        if r.cell.values["sched.name"] == "euler":
            r.cell = Cell(r.cell.index, {**r.cell.values, "sched.name": "a-much-longer-name"})
    long = sr.grid_images(res, axes, x="sched.name", y="sample.steps")[0]
    b0, b1 = _box(short, _colour(0)), _box(long, _colour(0))
    assert _dark(long, (b1[0], b1[1] - 16, b1[2], b1[1])) > _dark(short, (b0[0], b0[1] - 16, b0[2], b0[1]))


def test_a_cell_of_a_batch_is_tiled_and_pages_split_the_third_axis() -> None:
    (grid,) = sr.grid_images(_results(images_per_cell=4), AXES, x="sched.name", y="sample.steps")
    x0, y0, x1, y1 = _box(grid, _colour(0))
    assert (x1 - x0, y1 - y0) == (128, 128)  # 2 × 2 tiles of 64 px
    pages = sr.grid_images(_results(), AXES, x="sched.name", page="sample.steps")
    assert len(pages) == 2
    assert _box(pages[0], _colour(0)) and _box(pages[1], _colour(1))
    linked = (Axis("sample", "positive", ({"node": "a", "output": "conditioning"},
                                          {"node": "b", "output": "conditioning"})),)
    res = [CellResult(Cell(i, {"sample.positive": v}), "finished", [Image.new("RGB", (8, 8), _colour(i))], {},
                      0.1, {}) for i, v in enumerate(linked[0].values)]
    assert len(sr.grid_images(res, linked, x="sample.positive")) == 1  # link values label their column
    assert len(sr.grid_images(res + res, AXES + linked, x="sched.name", page="sample.positive")) == 2
    with pytest.raises(ValueError, match="'sample.cfg' is not swept"):
        sr.grid_images(_results(), AXES, x="sample.cfg")


def test_grid_png_carries_the_workflow_and_the_sweep(tmp_path) -> None:
    wf = {"format": "loom.workflow", "version": 1, "nodes": {"n": {"type": "int_value", "inputs": {"value": 1}}}}
    sweep = {"mode": "product", "axes": [a.to_dict() for a in AXES]}
    (grid,) = sr.grid_images(_results(), AXES, x="sched.name", y="sample.steps", workflow=wf, sweep=sweep)
    path = tmp_path / "grid.png"
    sr.save_grid_png(grid, path, wf, sweep)
    text = read_png_text(path.read_bytes())
    assert json.loads(text[sr.PNG_SWEEP_KEY]) == sweep
    assert Workflow.load(path).nodes == wf["nodes"]
    other = tmp_path / "from_info.png"
    sr.save_grid_png(grid, other)  # the workflow and sweep the grid was made with
    assert json.loads(read_png_text(other.read_bytes())[sr.PNG_SWEEP_KEY]) == sweep


def test_table_rows_and_csv() -> None:
    human = {0: {"realism": rs.mean_interval([4, 5, 4])}, 2: {"realism": rs.mean_interval([2])}}
    rows = sr.table_rows(_results(), AXES, human=human)
    assert [r["cell"] for r in rows] == list(range(6))
    assert rows[0]["sched.name"] == "euler" and rows[0]["sample.steps"] == 4 and rows[0]["fid.fid"] == 10.0
    assert rows[FAILED]["status"] == "failed" and rows[FAILED]["fid.fid"] is None
    assert rows[FAILED]["error"] == "sample: out of memory" and rows[0]["seeds"] == {"sample.seed": 7}
    assert rows[0]["human.realism"] == pytest.approx(13 / 3) and rows[0]["human.realism.n"] == 3
    assert rows[0]["human.realism.low"] < 13 / 3 < rows[0]["human.realism.high"]
    assert rows[2]["human.realism.low"] is None and rows[1]["human.realism"] is None
    parsed = list(csv.DictReader(io.StringIO(sr.to_csv(rows))))
    assert parsed[0]["fid.fid"] == "10.0" and parsed[FAILED]["fid.fid"] == ""
    assert json.loads(parsed[0]["seeds"]) == {"sample.seed": 7} and parsed[1]["seconds"] == "2.25"
    assert list(parsed[0])[:4] == ["cell", "sched.name", "sample.steps", "status"]
    assert math.isnan(sr.correlations(rows)[("human.realism", "fid.fid")])  # two cells: too few
    rho = sr.correlations(rows, min_cells=2)
    # two rated cells: realism 13/3 vs 2, judge 1.0 vs 0.8, FID 10 vs 12
    assert rho[("human.realism", "judge.overall")] == pytest.approx(1.0)
    assert rho[("human.realism", "fid.fid")] == pytest.approx(-1.0)


def test_plot_draws_one_line_per_series() -> None:
    rows = sr.table_rows(_results(), AXES)
    img = sr.plot_image(rows, "sample.steps", "fid.fid", series="sched.name")
    a = np.asarray(img)
    for colour in sr.PALETTE[:3]:  # euler, ddim, heun
        assert (a == np.array(colour, dtype=np.uint8)).all(axis=2).sum() > 30, colour
    assert not (a == np.array(sr.PALETTE[3], dtype=np.uint8)).all(axis=2).any()
    single = np.asarray(sr.plot_image(rows, "sched.name", "judge.overall"))
    assert (single == np.array(sr.PALETTE[0], dtype=np.uint8)).all(axis=2).sum() > 30
    assert not (single == np.array(sr.PALETTE[1], dtype=np.uint8)).all(axis=2).any()
    with pytest.raises(ValueError, match="no finished cell has a value for 'lpips'"):
        sr.plot_image(rows, "sample.steps", "lpips")
    assert sr.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


# --- rating statistics ----------------------------------------------------------------------
def test_mean_interval_uses_the_t_distribution() -> None:
    iv = rs.mean_interval([1, 2, 3, 4, 5])
    # mean 3, s = √2.5, t(0.975, 4) = 2.776445
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert (iv.mean, iv.n) == (3.0, 5)
    assert iv.low == pytest.approx(3 - half, rel=1e-9) and iv.high == pytest.approx(3 + half, rel=1e-9)
    one = rs.mean_interval([4])
    assert one.mean == 4 and math.isnan(one.low) and one.to_dict() == {"mean": 4.0, "low": None,
                                                                       "high": None, "n": 1}
    same = rs.mean_interval([3, 3, 3])
    assert same.low == same.high == 3
    with pytest.raises(ValueError):
        rs.mean_interval([])
    with pytest.raises(ValueError):
        rs.mean_interval([1, float("nan")])


def test_bradley_terry_recovers_a_known_ordering() -> None:
    pairs = [("A", "B")] * 8 + [("B", "A")] * 2 + [("B", "C")] * 8 + [("C", "B")] * 2 \
        + [("A", "C")] * 9 + [("C", "A")] * 1
    s = rs.bradley_terry(pairs)
    assert s["A"] > s["B"] > s["C"] and sum(s.values()) == pytest.approx(1.0)
    mle = rs.bradley_terry([("A", "B")] * 3 + [("B", "A")], prior=0)
    assert mle["A"] / mle["B"] == pytest.approx(3.0, rel=1e-6)  # the closed-form MLE of two items


def test_bradley_terry_ties_and_unconnected_items() -> None:
    tied = rs.bradley_terry([("A", "B", 0.5)] * 4)
    assert tied["A"] == pytest.approx(tied["B"])
    s = rs.bradley_terry([("A", "B")] * 3 + [("C", "D")] * 3)  # two groups never compared
    assert s["A"] == pytest.approx(s["C"]) and s["B"] == pytest.approx(s["D"]) and s["A"] > s["B"] > 0
    unbeaten = rs.bradley_terry([("A", "B")] * 5)
    assert math.isfinite(unbeaten["A"]) and unbeaten["A"] > unbeaten["B"] > 0
    with pytest.raises(ValueError, match="never won"):
        rs.bradley_terry([("A", "B")], prior=0)
    with pytest.raises(ValueError, match="1, 0.5"):
        rs.bradley_terry([("A", "B", 2)])
    assert rs.bradley_terry([]) == {}


def test_spearman_with_ties() -> None:
    assert rs.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rs.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks with ties: a → 1, 2.5, 2.5, 4, 5; b → 2, 1, 3, 4.5, 4.5; Pearson of the ranks
    a, b = [1, 2, 2, 3, 4], [5, 1, 6, 8, 8]
    ra, rb = np.array([1, 2.5, 2.5, 4, 5]), np.array([2, 1, 3, 4.5, 4.5])
    assert rs.ranks(a) == list(ra) and rs.ranks(b) == list(rb)
    assert rs.spearman(a, b) == pytest.approx(float(np.corrcoef(ra, rb)[0, 1]))
    assert math.isnan(rs.spearman([1, 1, 1], [1, 2, 3])) and math.isnan(rs.spearman([1], [2]))
    assert rs.spearman([1, 2, None, 3], [1, 2, 5, 3]) == pytest.approx(1.0)
