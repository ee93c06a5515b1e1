"""Queueing runs and following them: events, cache, failures, cancel, interrupt, priority."""
from __future__ import annotations

import asyncio

from srv_helpers import (add_show, counter, events_until_end, link, next_event, queue,
                         wait_status, wf)


async def test_event_sequence_of_a_run(client):
    ws = await client.ws_connect("/api/events")
    hello = await ws.receive_json()
    assert hello["type"] == "hello"
    run_id = await queue(client, add_show(2, 3))
    events = await events_until_end(ws, run_id)
    assert [e["type"] for e in events] == [
        "run.queued", "run.started", "node.started", "node.finished", "node.started",
        "node.finished", "run.finished"]
    assert events[1]["to_execute"] == ["add", "show"]
    assert [e["node"] for e in events if e["type"] == "node.finished"] == ["add", "show"]
    assert events[-2]["ui"]["values"] == {"value": 5}
    assert events[-1]["counts"] == {"executed": 2, "cached": 0}
    assert "executed" not in events[-1]  # the lists are in the run's history entry, not the event
    run = await (await client.get(f"/api/runs/{run_id}")).json()
    assert run["result"]["executed"] == ["add", "show"]
    assert run["status"] == "finished"  # stored before run.finished was sent
    assert run["result"]["ui"]["show"]["values"] == {"value": 5}
    assert run["workflow"]["nodes"]["add"]["inputs"] == {"a": 2, "b": 3}
    await ws.close()


async def test_rerun_reports_cached_nodes(client):
    ws = await client.ws_connect("/api/events")
    await events_until_end(ws, await queue(client, add_show(4, 4)))
    run_id = await queue(client, add_show(4, 4))
    events = await events_until_end(ws, run_id)
    types = [e["type"] for e in events]
    # the output node is cached, so its input is not even needed
    assert types == ["run.queued", "run.started", "node.cached", "run.finished"]
    assert events[1]["cached"] == ["show"] and events[1]["to_execute"] == []
    assert events[2]["node"] == "show"
    assert events[2]["ui"]["values"] == {"value": 8}  # a cached output node still shows its ui
    # change one widget: only that node and its descendants run again
    changed = add_show(4, 4)
    changed["nodes"]["extra"] = {"type": "srv_add", "inputs": {"a": 1, "b": link("add", "int")}}
    changed["nodes"]["show2"] = {"type": "srv_show", "inputs": {"value": link("extra", "int")}}
    events = await events_until_end(ws, await queue(client, changed))
    assert sorted(events[1]["to_execute"]) == ["extra", "show2"]
    await ws.close()


async def test_failing_node_fails_its_run_and_the_next_run_proceeds(client):
    ws = await client.ws_connect("/api/events")
    bad = wf(f={"type": "srv_fail", "inputs": {"value": 7}},
             show={"type": "srv_show", "inputs": {"value": link("f", "int")}})
    bad_id = await queue(client, bad)
    good_id = await queue(client, add_show(1, 1))
    events = await events_until_end(ws, bad_id)
    assert [e["type"] for e in events][-2:] == ["node.failed", "run.failed"]
    assert events[-1]["node"] == "f" and "value=7" in events[-1]["message"]
    assert events[-1]["error_type"] == "ValueError"
    run = await (await client.get(f"/api/runs/{bad_id}")).json()
    assert run["status"] == "failed"
    assert run["error"]["node"] == "f" and "srv_fail always fails" in run["error"]["message"]
    assert "Traceback" in run["error"]["traceback"]
    assert (await events_until_end(ws, good_id))[-1]["type"] == "run.finished"
    await ws.close()


async def test_validation_errors_list_every_problem(client):
    broken = wf(a={"type": "srv_add", "inputs": {"a": "x", "nope": 1}},
                b={"type": "no_such_node"},
                show={"type": "srv_show", "inputs": {"value": link("a", "missing")}})
    resp = await client.post("/api/runs", json=broken)
    assert resp.status == 400
    body = await resp.json()
    codes = {(p["node"], p["code"]) for p in body["problems"]}
    assert {("a", "bad_value"), ("a", "unknown_input"), ("b", "unknown_type"),
            ("show", "missing_output")} <= codes
    assert "problem" in body["error"]
    runs = await (await client.get("/api/runs")).json()
    assert runs["runs"] == []  # nothing was queued


async def test_bad_requests_get_4xx_with_a_message(client):
    cases = [
        (client.post("/api/runs", data=b"{not json", headers={"Content-Type": "application/json"}),
         400, "not valid JSON"),
        (client.post("/api/runs", json=[1, 2]), 400, "JSON object"),
        (client.post("/api/runs", json={"nodes": 3}), 400, "nodes"),
        (client.post("/api/runs", json={**add_show(), "front": "yes"}), 400, "front"),
        (client.post("/api/runs", data=b""), 400, "empty"),
        (client.get("/api/runs/nope"), 404, "nope"),
        (client.delete("/api/runs/nope"), 404, "nope"),
        (client.get("/api/runs?limit=0"), 400, "limit"),
        (client.get("/api/runs?limit=abc"), 400, "integer"),
        (client.get("/api/runs?status=bogus"), 400, "bogus"),
        (client.get("/api/runs?before=nope"), 400, "nope"),
        (client.delete("/api/runs?status=queued"), 400, "queued"),
        (client.patch("/api/runs"), 405, "PATCH"),
        (client.put("/api/nodes"), 405, "allowed"),
        (client.get("/api/no/such/route"), 404, "/api/no/such/route"),
        (client.get("/api/events"), 400, "WebSocket"),
    ]
    for request, status, words in cases:
        resp = await request
        body = await resp.json()
        assert resp.status == status, (status, body)
        assert words in body["error"], body
    assert (await client.get("/api/system")).status == 200  # still serving


async def test_cancel_a_queued_run(client):
    ws = await client.ws_connect("/api/events")
    slow = await queue(client, counter(steps=100000, delay=0.001))
    await wait_status(client, slow, ("running",))
    waiting = await queue(client, add_show(9, 9))
    resp = await client.delete(f"/api/runs/{waiting}")
    assert resp.status == 200 and (await resp.json())["status"] == "cancelled"
    assert (await (await client.post("/api/interrupt")).json()) == {"interrupted": slow}
    events = await events_until_end(ws, waiting)
    assert [e["type"] for e in events] == ["run.queued", "run.cancelled"]
    assert (await wait_status(client, slow, ("interrupted",)))["status"] == "interrupted"
    assert (await wait_status(client, waiting, ("cancelled",)))["started"] is None
    await ws.close()


async def test_interrupt_the_running_run_by_delete(client):
    ws = await client.ws_connect("/api/events")
    run_id = await queue(client, counter(steps=100000, delay=0.001))
    while (await next_event(ws))["type"] != "node.progress":
        pass
    resp = await client.delete(f"/api/runs/{run_id}")
    assert resp.status == 202 and (await resp.json())["status"] == "interrupting"
    events = await events_until_end(ws, run_id)
    assert events[-1] == {**events[-1], "type": "run.interrupted", "node": "count"}
    run = await wait_status(client, run_id, ("interrupted",))
    assert run["error"]["node"] == "count"
    # the worker goes on with the next run
    assert (await events_until_end(ws, await queue(client, add_show())))[-1]["type"] == "run.finished"
    await ws.close()


async def test_post_interrupt_stops_whatever_runs(client):
    assert (await (await client.post("/api/interrupt")).json()) == {"interrupted": None}
    run_id = await queue(client, counter(steps=100000, delay=0.001))
    await wait_status(client, run_id, ("running",))
    body = await (await client.post("/api/interrupt", json={})).json()
    assert body == {"interrupted": run_id}
    await wait_status(client, run_id, ("interrupted",))


async def test_front_runs_first(client):
    ws = await client.ws_connect("/api/events")
    blocker = await queue(client, counter(steps=100000, delay=0.001))
    await wait_status(client, blocker, ("running",))
    r1 = await queue(client, add_show(1, 0))
    r2 = await queue(client, add_show(2, 0))
    resp = await client.post("/api/runs", json={**add_show(3, 0), "front": True})
    body = await resp.json()
    assert body["position"] == 0
    r3 = body["id"]
    listing = await (await client.get("/api/runs?status=queued")).json()
    assert {r["id"]: r["position"] for r in listing["runs"]} == {r3: 0, r1: 1, r2: 2}
    await client.delete(f"/api/runs/{blocker}")
    started = []
    while len(started) < 4:
        ev = await next_event(ws)
        if ev["type"] == "run.started":
            started.append(ev["run"])
    assert started == [blocker, r3, r1, r2]
    await ws.close()


async def test_history_is_paged_newest_first_and_can_be_deleted(client):
    ids = []
    for i in range(5):
        ids.append(await queue(client, add_show(i, 100)))
    await wait_status(client, ids[-1], ("finished",))
    page1 = await (await client.get("/api/runs?limit=2")).json()
    assert [r["id"] for r in page1["runs"]] == [ids[4], ids[3]]
    page2 = await (await client.get(f"/api/runs?limit=2&before={page1['next']}")).json()
    assert [r["id"] for r in page2["runs"]] == [ids[2], ids[1]]
    page3 = await (await client.get(f"/api/runs?limit=2&before={page2['next']}")).json()
    assert [r["id"] for r in page3["runs"]] == [ids[0]] and page3["next"] is None
    resp = await client.delete(f"/api/runs/{ids[0]}")
    assert (await resp.json()) == {"id": ids[0], "deleted": True}
    assert (await client.get(f"/api/runs/{ids[0]}")).status == 404
    assert (await (await client.delete("/api/runs?status=finished")).json())["deleted"] == 4
    assert (await (await client.get("/api/runs")).json())["runs"] == []


async def test_progress_events_carry_throttled_previews(client):
    ws = await client.ws_connect("/api/events")
    run_id = await queue(client, counter(steps=40, delay=0.0, preview=True))
    events = await events_until_end(ws, run_id)
    progress = [e for e in events if e["type"] == "node.progress"]
    assert progress[-1]["value"] == 40 and progress[-1]["total"] == 40
    previews = [e["preview"] for e in progress if "preview" in e]
    assert previews and all(p.startswith("data:image/jpeg;base64,") for p in previews)
    assert len(progress) < 40  # at most one per 50 ms (and the last one) reaches clients
    assert len(previews) <= len(progress)
    await ws.close()


async def test_output_images_are_served(client):
    ws = await client.ws_connect("/api/events")
    run_id = await queue(client, wf(save={"type": "srv_save", "inputs": {"value": 200}}))
    events = await events_until_end(ws, run_id)
    image = events[-1]["ui"]["save"]["images"][0]
    assert image["kind"] == "output"
    resp = await client.get(f"/api/files/output/{image['path']}")
    assert resp.status == 200 and resp.content_type == "image/png"
    assert (await resp.read()).startswith(b"\x89PNG")
    await ws.close()


async def test_many_runs_queued_at_once_all_finish(client):
    ids = await asyncio.gather(*(queue(client, add_show(i, 1000)) for i in range(20)))
    for run_id in ids:
        await wait_status(client, run_id, ("finished",))
    listing = await (await client.get("/api/runs?limit=100")).json()
    assert len(listing["runs"]) == 20 and listing["queue"] == {"queued": 0, "running": None}


def test_a_run_that_keeps_crashing_the_server_fails_after_three_tries(tmp_path):
    from loom_server.queue_store import MAX_ATTEMPTS, QueueStore
    store = QueueStore(tmp_path / "q.sqlite3")
    run_id, _ = store.add(add_show())
    for attempt in range(1, MAX_ATTEMPTS + 1):
        claimed = store.claim_next()
        assert claimed is not None and claimed.id == run_id and claimed.attempts == attempt
        recovered = store.recover()  # as after a crash
        assert recovered == ([run_id] if attempt < MAX_ATTEMPTS else [])
    run = store.get(run_id)
    assert run is not None and run["status"] == "failed" and run["error"]["error_type"] == "Crashed"
    assert store.claim_next() is None
    store.close()


async def test_a_run_cut_off_by_shutdown_is_queued_again(client, settings):
    run_id = await queue(client, counter(steps=100000, delay=0.001))
    later = await queue(client, add_show())
    await wait_status(client, run_id, ("running",))
    await client.close()  # graceful shutdown: interrupts the run, keeps it
    from loom_server.queue_store import QueueStore
    store = QueueStore(settings.user / "queue.sqlite3")
    runs = {r["id"]: r for r in store.list()[0]}
    assert runs[run_id]["status"] == "queued" and runs[run_id]["position"] == 0
    assert runs[later]["status"] == "queued" and runs[later]["position"] == 1
    store.close()
