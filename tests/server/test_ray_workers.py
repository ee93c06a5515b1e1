"""The Ray actor worker on a private local Ray cluster (127.0.0.1, one cluster for the module):
work shared by two actors, model affinity, an actor killed mid-run, interrupt and cancel, a
failing node, a run that keeps killing its worker, a custom_nodes/ plugin, files travelling."""
from __future__ import annotations

import importlib.util
import os
import signal
import time
from collections import Counter

import pytest

from srv_helpers import TERMINAL, counter, events_until_end, link, next_event, queue, wait_status, wf

from ray_nodes.ray_test_nodes import LOAD_LOG
from ray_support import local_cluster, model_run, ray_app, ray_home, wait_workers

# not imported here: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when first imported, and
# local_cluster sets it (loopback only) before that
pytestmark = [pytest.mark.ray, pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install -e '.[ray]')")]


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(num_cpus=2) as info:
        yield info


@pytest.fixture
async def ray_client(cluster, aiohttp_client, tmp_path):
    """A server with two CPU actors, both idle."""
    async def make(workers: int = 2, **options):
        settings = ray_home(tmp_path)
        client = await aiohttp_client(ray_app(settings, workers, **options))
        await wait_workers(client, workers)
        return client, settings
    return make


def test_ray_listens_on_loopback_only(cluster):
    wide = [(addr, proc) for addr, proc in cluster["new_listeners"]
            if not addr.startswith(("127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:"))]
    assert cluster["new_listeners"]  # it did listen (on loopback)
    assert not wide, wide


async def test_two_actors_share_eight_runs_with_events_and_files(ray_client):
    client, settings = await ray_client()
    ws = await client.ws_connect("/api/events")
    ids = []
    for i in range(8):
        ids.append(await queue(client, wf(
            count={"type": "srv_count", "inputs": {"start": i, "steps": 4, "delay": 0.05}},
            ten={"type": "plugin_times_ten", "inputs": {"value": link("count", "int")}},
            show={"type": "srv_show", "inputs": {"value": link("ten", "int")}},
            save={"type": "srv_save", "inputs": {"value": link("count", "int")}})))
    by_run: dict[str, list[dict]] = {r: [] for r in ids}
    while any(not evs or evs[-1]["type"] not in TERMINAL for evs in by_run.values()):
        ev = await next_event(ws, 60)
        if ev.get("run") in by_run and ev["type"] != "run.queued":
            by_run[ev["run"]].append(ev)
    workers = set()
    for i, run_id in enumerate(ids):
        evs = by_run[run_id]
        assert [e["type"] for e in evs][0] == "run.started" and evs[-1]["type"] == "run.finished"
        assert len({e["worker"] for e in evs}) == 1, evs  # every event names its one worker
        assert any(e["type"] == "node.progress" for e in evs)
        workers.add(evs[-1]["worker"])
        run = await wait_status(client, run_id, ("finished",))
        assert run["result"]["ui"]["show"]["values"] == {"value": (i + 4) * 10}
        image = run["result"]["ui"]["save"]["images"][0]
        assert (settings.outputs / image["path"]).is_file()  # written where the server serves it
        assert (await client.get(f"/api/files/output/{image['path']}")).status == 200
    assert workers == {"cpu-0", "cpu-1"}
    system = await (await client.get("/api/system")).json()
    assert system["worker_kind"] == "ray"
    assert sorted(w["id"] for w in system["workers"]) == ["cpu-0", "cpu-1"]
    assert all(w["device"] == "cpu" and w["pid"] and w["threads"] == 1 for w in system["workers"])
    assert len({w["pid"] for w in system["workers"]} | {os.getpid()}) == 3
    await ws.close()


async def test_affinity_loads_each_model_once(ray_client):
    client, settings = await ray_client()
    names = ["alpha.safetensors", "beta.safetensors"] * 4
    ids = [await queue(client, model_run(name, i)) for i, name in enumerate(names)]
    runs = [await wait_status(client, r, ("finished", "failed"), 60) for r in ids]
    assert [r["status"] for r in runs] == ["finished"] * 8, [r["error"] for r in runs]
    assert [r["result"]["ui"]["show"]["values"]["value"] for r in runs] == [
        i + len(n) for i, n in enumerate(names)]
    loads = (settings.home / LOAD_LOG).read_text().split("\n")[:-1]
    assert Counter(line.split()[1] for line in loads) == {"alpha.safetensors": 1,
                                                          "beta.safetensors": 1}, loads
    assert len({line.split()[0] for line in loads}) == 2  # one model on each actor
    system = await (await client.get("/api/system")).json()
    assert sorted(m for w in system["workers"] for m in w["models_loaded"]) == names[:2]


async def test_killed_actor_mid_run_run_completes_on_the_other(ray_client):
    client, _ = await ray_client()
    ws = await client.ws_connect("/api/events")
    run_id = await queue(client, counter(steps=60, delay=0.05))
    first = None
    while first is None:
        ev = await next_event(ws, 30)
        if ev.get("run") == run_id and ev["type"] == "node.progress":
            first = ev["worker"]
    workers = {w["id"]: w for w in (await (await client.get("/api/system")).json())["workers"]}
    os.kill(workers[first]["pid"], signal.SIGKILL)
    rest = await events_until_end(ws, run_id, 60)
    types = [e["type"] for e in rest]
    assert "run.requeued" in types and types[-1] == "run.finished", types
    after = rest[types.index("run.requeued") + 1:]
    assert after[0]["type"] == "run.started" and {e["worker"] for e in after} != {first}
    assert [e["value"] for e in after if e["type"] == "node.progress"] == list(range(1, 61))
    run = await wait_status(client, run_id, ("finished",))
    assert run["attempts"] == 2 and run["result"]["ui"]["show"]["values"] == {"value": 60}
    listing = await (await client.get("/api/runs")).json()
    assert [r["id"] for r in listing["runs"]] == [run_id]  # one history entry, not two
    back = await wait_workers(client, 2, 60)  # Ray restarted the killed actor
    revived = next(w for w in back if w["id"] == first)
    assert revived["pid"] != workers[first]["pid"] and revived["restarts"] == 1
    await ws.close()


async def test_interrupt_and_cancel_reach_the_right_actor(ray_client):
    client, _ = await ray_client()
    ws = await client.ws_connect("/api/events")
    long = counter(steps=2000, delay=0.01)
    a = await queue(client, long)
    b = await queue(client, {**long, "meta": {"title": "b"}})
    c = await queue(client, {**long, "meta": {"title": "c"}})
    started: dict[str, str] = {}
    while len(started) < 2:
        ev = await next_event(ws, 30)
        if ev["type"] == "node.progress" and ev["run"] in (a, b):
            started.setdefault(ev["run"], ev["worker"])
    assert set(started.values()) == {"cpu-0", "cpu-1"}
    resp = await client.delete(f"/api/runs/{c}")  # queued: cancelled, never reaches an actor
    assert (await resp.json())["status"] == "cancelled"
    t0 = time.monotonic()
    resp = await client.delete(f"/api/runs/{a}")
    assert resp.status == 202
    ev = next(e for e in await events_until_end(ws, a, 10) if e["type"] in TERMINAL)
    assert ev["type"] == "run.interrupted" and ev["worker"] == started[a]
    assert time.monotonic() - t0 < 1.0
    t0 = time.monotonic()
    assert (await (await client.post("/api/interrupt")).json()) == {"interrupted": b}
    ev = (await events_until_end(ws, b, 10))[-1]
    assert ev["type"] == "run.interrupted" and ev["worker"] == started[b]
    assert time.monotonic() - t0 < 1.0
    assert [(await wait_status(client, r, TERMINAL_STATUSES))["status"] for r in (a, b, c)] == [
        "interrupted", "interrupted", "cancelled"]
    assert (await (await client.post("/api/interrupt")).json()) == {"interrupted": None}
    await ws.close()


TERMINAL_STATUSES = ("finished", "failed", "interrupted", "cancelled")


async def test_failing_node_fails_the_run(ray_client):
    client, _ = await ray_client()
    ws = await client.ws_connect("/api/events")
    run_id = await queue(client, wf(bad={"type": "srv_fail", "inputs": {"value": 3}},
                                    show={"type": "srv_show", "inputs": {"value": link("bad", "int")}}))
    evs = await events_until_end(ws, run_id)
    assert [e["type"] for e in evs][-2:] == ["node.failed", "run.failed"]
    assert evs[-1]["node"] == "bad" and evs[-1]["error_type"] == "ValueError"
    run = await wait_status(client, run_id, ("failed",))
    assert run["error"]["node_type"] == "srv_fail" and "srv_fail always fails" in run["error"]["traceback"]
    await ws.close()


async def test_run_that_kills_its_worker_three_times_fails_as_crashed(ray_client):
    client, _ = await ray_client()
    ws = await client.ws_connect("/api/events")
    run_id = await queue(client, wf(die={"type": "ray_die", "inputs": {"value": 1}},
                                    show={"type": "srv_show", "inputs": {"value": link("die", "int")}}))
    evs = await events_until_end(ws, run_id, 120)
    assert [e["type"] for e in evs].count("run.requeued") == 2
    assert evs[-1]["type"] == "run.failed" and evs[-1]["error_type"] == "Crashed"
    run = await wait_status(client, run_id, ("failed",))
    assert run["attempts"] == 3 and run["error"]["error_type"] == "Crashed"
    await wait_workers(client, 2, 90)  # both actors were restarted and take work again
    ok = await queue(client, counter(steps=2))
    assert (await wait_status(client, ok, ("finished",), 30))["result"]["ui"]["show"]["values"] == {
        "value": 2}
    await ws.close()


async def test_uploads_and_outputs_travel_to_an_actor_with_another_home(ray_client, tmp_path):
    client, settings = await ray_client(workers=1, actor_home=tmp_path / "elsewhere")
    settings.inputs.mkdir(parents=True, exist_ok=True)
    (settings.inputs / "blob.png").write_bytes(b"x" * 1234)
    run_id = await queue(client, wf(
        size={"type": "ray_file_size", "inputs": {"image": "blob.png"}},
        save={"type": "srv_save", "inputs": {"value": link("size", "int")}},
        show={"type": "srv_show", "inputs": {"value": link("size", "int")}}))
    run = await wait_status(client, run_id, ("finished", "failed"), 30)
    assert run["status"] == "finished", run["error"]
    assert run["result"]["ui"]["show"]["values"] == {"value": 1234}
    image = run["result"]["ui"]["save"]["images"][0]["path"]
    assert (settings.outputs / image).is_file()  # sent back to the server's output folder
    assert (tmp_path / "elsewhere" / "input" / "blob.png").read_bytes() == b"x" * 1234
    system = await (await client.get("/api/system")).json()
    assert system["workers"][0]["shares_folders"] is False


async def test_a_sweep_runs_on_ray_actors(ray_client):
    client, _ = await ray_client()
    doc = wf(count={"type": "srv_count", "inputs": {"start": 0, "steps": 2, "delay": 0.05}},
             ten={"type": "plugin_times_ten", "inputs": {"value": link("count", "int")}},
             show={"type": "srv_show", "inputs": {"value": link("ten", "int")}})
    doc["sweeps"] = [{"node": "count", "input": "start", "values": {"start": 0, "stop": 3}}]
    resp = await client.post("/api/runs", json=doc)
    body = await resp.json()
    assert resp.status == 201 and body["count"] == 4, body
    runs = [await wait_status(client, r, ("finished",), timeout=120) for r in body["runs"]]
    assert [r["result"]["ui"]["show"]["values"]["value"] for r in runs] == [20, 30, 40, 50]
    data = await (await client.get(f"/api/sweeps/{body['sweep']}")).json()
    assert data["counts"] == {"finished": 4} and [c["values"]["count.start"] for c in data["cells"]] == [0, 1, 2, 3]
    table = await (await client.get(f"/api/sweeps/{body['sweep']}/table")).json()
    assert [r["status"] for r in table["rows"]] == ["finished"] * 4
