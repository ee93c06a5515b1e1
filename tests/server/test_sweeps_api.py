"""Sweeps over HTTP: one run per cell, all validated first, grouped under a sweep id; the
sweep's cells, table (JSON/CSV), grid and plot."""
from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

from loom.sweeps import parse_sweeps
from srv_helpers import add_show
from sweep_support import queue_sweep, sweep_registry, sweep_workflow


@pytest.fixture
async def sclient(make_client):
    return await make_client(registry=sweep_registry())


async def test_a_sweep_queues_one_run_per_cell_grouped_in_history(sclient):
    body = await queue_sweep(sclient, sweep_workflow())
    assert body["count"] == 4 and len(body["runs"]) == 4 and body["id"] == body["runs"][0]
    history = (await (await sclient.get("/api/runs")).json())["runs"]
    mine = {r["id"]: r["sweep"] for r in history}
    assert mine[body["runs"][3]] == {"id": body["sweep"], "cell": 3, "values": {"add.a": 2, "add.b": 20}}
    one = await (await sclient.get(f"/api/runs/{body['runs'][1]}")).json()
    assert one["sweep"]["cell"] == 1 and "sweeps" not in one["workflow"]
    assert one["workflow"]["nodes"]["add"]["inputs"] == {"a": 1, "b": 20}
    data = await (await sclient.get(f"/api/sweeps/{body['sweep']}")).json()
    assert data["mode"] == "product" and data["count"] == 4 and data["counts"] == {"finished": 4}
    assert [a["values"] for a in data["axes"]] == [[1, 2], [10, 20]]
    assert [(c["cell"], c["run"], c["status"]) for c in data["cells"]] == [
        (i, r, "finished") for i, r in enumerate(body["runs"])]
    assert data["cells"][2]["values"] == {"add.a": 2, "add.b": 10}
    assert data["cells"][2]["images"][0]["kind"] == "output"
    plain = await sclient.post("/api/runs", json=add_show())
    assert (await plain.json())["count"] == 1


async def test_zip_mode_and_the_wrapped_form(sclient):
    doc = sweep_workflow()
    sweeps = doc.pop("sweeps")
    body = await queue_sweep(sclient, {"workflow": doc, "sweeps": sweeps, "sweep_mode": "zip"})
    assert body["count"] == 2
    data = await (await sclient.get(f"/api/sweeps/{body['sweep']}")).json()
    assert data["mode"] == "zip" and [c["values"] for c in data["cells"]] == [
        {"add.a": 1, "add.b": 10}, {"add.a": 2, "add.b": 20}]


async def test_every_cell_is_checked_first_and_a_bad_one_queues_nothing(sclient):
    resp = await sclient.post("/api/runs", json=sweep_workflow(a=(1, "two", 3), b=(5, 6)))
    body = await resp.json()
    assert resp.status == 422, body
    (p,) = body["problems"]
    assert (p["cell"], p["node"], p["input"], p["value"], p["cells"]) == (2, "add", "a", "two", 2)
    assert p["values"] == {"add.a": "two", "add.b": 5}
    assert "cell 2 (add.a='two', add.b=5): add.a:" in body["error"]
    runs = (await (await sclient.get("/api/runs")).json())["runs"]
    assert runs == []  # nothing was queued
    bad = await sclient.post("/api/runs", json=sweep_workflow(sweep_mode="diagonal"))
    assert bad.status == 400 and "'diagonal' is not one of product, zip" in (await bad.json())["error"]
    bad = await sclient.post("/api/runs", json=sweep_workflow(a=list(range(100)), b=list(range(100))))
    assert bad.status == 400 and "10000 cells" in (await bad.json())["error"]
    missing = sweep_workflow()
    missing["sweeps"][0]["node"] = "nope"
    bad = await sclient.post("/api/runs", json=missing)
    assert bad.status == 400 and "no node 'nope'" in (await bad.json())["error"]


async def test_table_csv_grid_and_plot(sclient):
    body = await queue_sweep(sclient, sweep_workflow())
    sid = body["sweep"]
    for i, run in enumerate(body["runs"]):  # human realism scores rank the cells like the metric
        for score in (i + 1, i + 2):
            r = await sclient.post("/api/ratings", json={"run": run, "node": "save", "criterion": "realism",
                                                          "score": min(score, 5), "rater": "ann"})
            assert r.status == 201, await r.json()
    table = await (await sclient.get(f"/api/sweeps/{sid}/table")).json()
    assert table["metrics"] == ["m.float"]
    rows = table["rows"]
    assert [(r["add.a"], r["add.b"], r["m.float"]) for r in rows] == [
        (1, 10, 11.0), (1, 20, 21.0), (2, 10, 12.0), (2, 20, 22.0)]
    assert rows[0]["human.realism"] == 1.5 and rows[0]["human.realism.n"] == 2
    assert rows[0]["status"] == "finished" and rows[0]["seconds"] >= 0
    # human means 1.5, 2.5, 3.5, 4.5 by cell; the metric ranks cells 1, 3, 2, 4: rho = 0.8
    assert table["correlations"]["realism"]["m.float"] == pytest.approx(0.8)
    resp = await sclient.get(f"/api/sweeps/{sid}/table.csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    parsed = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [row["m.float"] for row in parsed] == ["11.0", "21.0", "12.0", "22.0"]
    resp = await sclient.get(f"/api/sweeps/{sid}/grid.png?x=add.b&y=add.a")
    assert resp.status == 200 and resp.content_type == "image/png"
    grid = Image.open(io.BytesIO(await resp.read()))
    assert grid.size[0] > 8 and json.loads(grid.text["loom.sweep"])["id"] == sid
    carried = json.loads(grid.text["loom.workflow"])  # the workflow with its sweep: it runs again
    assert "nodes" in carried and len(parse_sweeps(carried)) == 4
    pages = await sclient.get(f"/api/sweeps/{sid}/grid.png?x=add.b&page=add.a&n=1")
    assert pages.status == 200
    for query, words in [("x=add.c", "'add.c' is not a swept input"), ("n=5", "the grid has 1 page"),
                         ("n=-1", "must be a page number")]:
        resp = await sclient.get(f"/api/sweeps/{sid}/grid.png?{query}")
        assert resp.status == 400 and words in (await resp.json())["error"], query
    resp = await sclient.get(f"/api/sweeps/{sid}/plot.png?x=add.a&metric=m.float&series=add.b")
    assert resp.status == 200
    assert Image.open(io.BytesIO(await resp.read())).format == "PNG"
    resp = await sclient.get(f"/api/sweeps/{sid}/plot.png?metric=nope")
    assert resp.status == 400 and "'nope' is not a column" in (await resp.json())["error"]
    for path in ("", "/table", "/table.csv", "/grid.png", "/plot.png"):
        assert (await sclient.get(f"/api/sweeps/unknown{path}")).status == 404, path


def test_a_queue_database_from_before_sweeps_gains_the_new_columns(tmp_path):
    import sqlite3

    from loom_server.queue_store import QueueStore
    path = tmp_path / "queue.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE runs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
        status TEXT NOT NULL, ord INTEGER NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
        attempts INTEGER NOT NULL DEFAULT 0, title TEXT, workflow TEXT NOT NULL, result TEXT, error TEXT);
        INSERT INTO runs (id, status, ord, created, workflow) VALUES ('old', 'queued', 1, 0, '{"nodes": {}}');
        PRAGMA user_version=1;""")
    db.close()
    store = QueueStore(path)
    try:
        runs, _ = store.list()
        assert [(r["id"], r["status"], "sweep" in r) for r in runs] == [("old", "queued", False)]
        store.add_sweep("s1", {"mode": "zip", "axes": []}, {"nodes": {}}, [(0, {"a.b": 1}, {"nodes": {}})])
        assert store.get_sweep("s1")["runs"][0]["sweep"] == {"id": "s1", "cell": 0, "values": {"a.b": 1}}
        assert store.claim_next().id == "old"
    finally:
        store.close()
