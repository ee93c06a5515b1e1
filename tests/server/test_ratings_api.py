"""Human ratings over HTTP: scores and A/B choices, bad values, concurrent raters, a restart,
CSV export and the per-cell summary with Bradley–Terry ranking."""
from __future__ import annotations

import asyncio
import csv
import io

import pytest

from srv_helpers import link, queue, wait_status, wf
from sweep_support import queue_sweep, sweep_registry, sweep_workflow


@pytest.fixture
def registry():
    return sweep_registry()


async def _finished_run(client) -> str:
    doc = sweep_workflow()
    doc.pop("sweeps")
    run = await queue(client, doc)
    await wait_status(client, run, ("finished",))
    return run


def _score(run_id: str, **over):
    return {"run": run_id, "node": "save", "image_index": 0, "criterion": "aesthetic", "score": 4,
            "rater": "Ann B.", **over}


async def test_a_score_is_stored_with_its_context(make_client, registry):
    client = await make_client(registry=registry)
    body = await queue_sweep(client, sweep_workflow())
    resp = await client.post("/api/ratings", json=_score(body["runs"][2]))
    row = await resp.json()
    assert resp.status == 201, row
    assert row["kind"] == "score" and row["run"] == body["runs"][2] and row["score"] == 4
    assert (row["sweep"], row["cell"], row["node"], row["image_index"]) == (body["sweep"], 2, "save", 0)
    assert len(row["workflow_hash"]) == 16 and row["rater"] == "Ann B." and row["seeds"] == {}
    listed = await (await client.get(f"/api/ratings?sweep={body['sweep']}")).json()
    assert [r["id"] for r in listed["ratings"]] == [row["id"]] and listed["choices"] == []
    assert (await (await client.get("/api/ratings?rater=nobody")).json())["ratings"] == []


async def test_bad_values_are_refused_naming_the_field_and_value(make_client, registry):
    client = await make_client(registry=registry)
    run = await _finished_run(client)
    cases = [({"score": 6}, "score", "6"), ({"score": "5"}, "score", '"5"'), ({"score": True}, "score", "true"),
             ({"criterion": "beauty"}, "criterion", '"beauty"'), ({"rater": ""}, "rater", '""'),
             ({"rater": "x" * 41}, "rater", "xxxx"), ({"rater": "<script>"}, "rater", "<script>"),
             ({"image_index": -1}, "image_index", "-1"), ({"image_index": 1}, "image_index", "past the 1 image"),
             ({"node": "nope"}, "node", '"nope"'), ({"run": 5}, "run", "5")]
    for over, field, shown in cases:
        resp = await client.post("/api/ratings", json=_score(run, **over))
        body = await resp.json()
        assert resp.status == 400, (over, body)
        assert body["field"] == field and f'"{field}"' in body["error"] and shown in body["error"], body
    failed = await queue(client, wf(f={"type": "srv_fail"}, save={"type": "srv_save", "inputs": {
        "value": link("f", "int")}}))
    await wait_status(client, failed, ("failed",))
    resp = await client.post("/api/ratings", json=_score(failed))
    assert resp.status == 400 and "is failed; only the images of finished runs" in (await resp.json())["error"]
    resp = await client.post("/api/ratings", json=_score("0123456789abcdef"))
    assert resp.status == 404 and "no run with id '0123456789abcdef'" in (await resp.json())["error"]
    ab = {"a": {"run": run, "node": "save"}, "b": {"run": run, "node": "save"}, "winner": "a",
          "criterion": "realism", "rater": "bo"}
    resp = await client.post("/api/ratings", json={**ab, "winner": "c"})
    assert resp.status == 400 and (await resp.json())["field"] == "winner"
    resp = await client.post("/api/ratings", json=ab)
    assert resp.status == 400 and "different image" in (await resp.json())["error"]
    resp = await client.post("/api/ratings", json=[1, 2])
    assert resp.status == 400
    assert (await (await client.get("/api/ratings")).json()) == {"ratings": [], "choices": []}


async def test_concurrent_raters_lose_nothing_and_ratings_survive_a_restart(make_client, registry):
    client = await make_client(registry=registry)
    run = await _finished_run(client)
    posts = [client.post("/api/ratings", json=_score(run, rater=f"rater {i}", score=1 + i % 5,
                                                       criterion=("realism", "alignment", "aesthetic")[i % 3]))
             for i in range(20)]
    answers = await asyncio.gather(*posts)
    assert [r.status for r in answers] == [201] * 20
    ids = {(await r.json())["id"] for r in answers}
    assert len(ids) == 20
    await client.close()  # the server stops; a new one opens the same home folder
    client = await make_client(registry=registry)
    listed = (await (await client.get(f"/api/ratings?run={run}")).json())["ratings"]
    assert {r["id"] for r in listed} == ids
    assert sorted(r["rater"] for r in listed) == sorted(f"rater {i}" for i in range(20))
    resp = await client.get("/api/ratings?format=csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(rows) == 20 and {"run", "node", "image_index", "criterion", "score", "rater",
                                "workflow_hash", "seeds", "sweep", "cell"} <= set(rows[0])


async def test_summary_per_cell_and_bradley_terry(make_client, registry):
    client = await make_client(registry=registry)
    body = await queue_sweep(client, sweep_workflow())
    runs, sid = body["runs"], body["sweep"]
    for score in (2, 4, 3):
        assert (await client.post("/api/ratings", json=_score(runs[0], score=score))).status == 201
    assert (await client.post("/api/ratings", json=_score(runs[1], score=5))).status == 201
    # A/B: cell 3 beats everything, cell 0 loses to everything
    for w, l in [(3, 0), (3, 1), (3, 2), (1, 0), (2, 0), (1, 2), (3, 1)]:
        resp = await client.post("/api/ratings", json={
            "a": {"run": runs[l], "node": "save"}, "b": {"run": runs[w], "node": "save"}, "winner": "b",
            "criterion": "realism", "rater": "cy"})
        assert resp.status == 201, await resp.json()
    summary = await (await client.get(f"/api/ratings/summary?sweep={sid}")).json()
    assert summary["by"] == "cell"
    g0, g1 = summary["groups"]
    assert g0["cell"] == 0 and g0["values"] == {"add.a": 1, "add.b": 10} and g0["run"] == runs[0]
    iv = g0["criteria"]["aesthetic"]
    assert iv["mean"] == pytest.approx(3.0) and iv["n"] == 3
    assert iv["low"] == pytest.approx(3 - 4.302653 * 1 / 3 ** 0.5, abs=1e-4)  # t(0.975, 2) · s/√n
    assert g1["criteria"]["aesthetic"] == {"mean": 5.0, "low": None, "high": None, "n": 1}
    bt = summary["bradley_terry"]["realism"]
    assert bt["choices"] == 7
    assert [c["cell"] for c in bt["cells"]][0] == 3 and bt["cells"][-1]["cell"] == 0
    assert bt["images"][0]["run"] == runs[3] and bt["images"][0]["rank"] == 1
    assert sum(i["strength"] for i in bt["images"]) == pytest.approx(1.0)
    choices_csv = await (await client.get("/api/ratings?format=csv&kind=choices")).text()
    assert choices_csv.splitlines()[0].startswith("id,a_run,a_node,a_image_index,a_cell,b_run")
    assert len(choices_csv.splitlines()) == 8
    assert (await client.get("/api/ratings/summary?sweep=nope")).status == 404
    by_run = await (await client.get("/api/ratings/summary")).json()
    assert by_run["by"] == "run" and {g["run"] for g in by_run["groups"]} == {runs[0], runs[1]}
