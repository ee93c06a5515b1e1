"""Hostile input against the server on loopback: a 4xx that names what was wrong, never a 500;
a node that kills its thread fails only its run; a large POST does not stall other requests."""
from __future__ import annotations

import importlib
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData

from loom import Registry
from loom.plugins import load_folder
from loom.workflow import MAX_JSON_DEPTH
from loom_server.state import WORKER
from srv_helpers import NODES_DIR, add_show, events_until_end, link, queue, wait_status, wf
from test_server_restart import _call, _free_port, _start

HOSTILE_DIR = Path(__file__).parent / "hostile_nodes"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def hard_registry() -> Registry:
    """The tiny server nodes, the hostile ones, and the built-in image input/output nodes."""
    reg = Registry()
    load_folder(reg, NODES_DIR)
    load_folder(reg, HOSTILE_DIR)
    reg.add_module(importlib.import_module("loom_nodes.image_io").__name__)
    assert not reg.plugin_errors, reg.plugin_errors
    return reg


@pytest.fixture
async def hclient(make_client, hard_registry):
    return await make_client(registry=hard_registry)


async def _still_serving(client) -> None:
    run_id = await queue(client, add_show(2, 3))
    run = await wait_status(client, run_id, ("finished", "failed"), timeout=15)
    assert run["status"] == "finished", run


async def _expect(resp, status: int, *words: str) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    for word in words:
        assert word in body["error"], (word, body)
    return body


# --- save_image ----------------------------------------------------------------------
async def test_save_image_prefix_never_leaves_the_output_folder(hclient, settings):
    def saving(prefix: str) -> dict[str, Any]:
        return wf(img={"type": "srv_tiny_image"},
                  save={"type": "save_image", "inputs": {"images": link("img", "image"),
                                                         "prefix": prefix}})
    for prefix in (".", "./.", "sub/./..", "./", "../x"):
        run_id = await queue(hclient, saving(prefix))
        run = await wait_status(hclient, run_id, ("failed", "finished"))
        assert run["status"] == "failed", (prefix, run)
        error = run["error"]
        assert error["node"] == "save" and "'prefix'" in error["message"], error
        assert repr(prefix) in error["message"], error
    run = await wait_status(hclient, await queue(hclient, saving("a/.")), ("failed", "finished"))
    assert run["status"] == "finished", run
    written = sorted(p.relative_to(settings.home).as_posix() for p in settings.home.rglob("*.png"))
    assert written == ["output/a_00001.png"]


# --- a node that raises SystemExit / KeyboardInterrupt ---------------------------------------
@pytest.mark.parametrize("kind, error_type", [("exit", "SystemExit"),
                                              ("interrupt", "KeyboardInterrupt")])
async def test_a_node_that_ends_its_thread_fails_only_its_run(hclient, kind, error_type):
    ws = await hclient.ws_connect("/api/events")
    show = {"type": "srv_show", "inputs": {"value": link("boom", "int")}}
    bad = await queue(hclient, wf(boom={"type": "srv_raise", "inputs": {"kind": kind}}, show=show))
    good = await queue(hclient, add_show(2, 3))
    events = await events_until_end(ws, bad, timeout=10)
    assert events[-1]["type"] == "run.failed" and events[-1]["node"] == "boom", events[-1]
    run = await wait_status(hclient, bad, ("failed",), timeout=5)
    assert run["error"]["node"] == "boom" and run["error"]["error_type"] == error_type, run
    done = await wait_status(hclient, good, ("finished",), timeout=10)
    assert done["result"]["ui"]["show"]["values"] == {"value": 5}
    await ws.close()


class _DyingExecutor:
    """An executor that lets a BaseException escape after starting a node (as a bug could);
    it compiles like the real one (the POST handler compiles with the worker's executor)."""

    def __init__(self, real: Any) -> None:
        self.compile = real.compile

    def run(self, workflow: Any, observer: Any, run_id: str) -> Any:
        observer.run_started(run_id, ["add", "show"], [])
        observer.node_started(run_id, "add")
        raise SystemExit(7)

    def interrupt(self) -> None:
        """Nothing to interrupt."""


async def test_the_worker_survives_a_base_exception_from_the_executor(hclient):
    worker = hclient.app[WORKER]
    assert await worker.wait_ready()
    real = worker.executor
    worker.executor = _DyingExecutor(real)
    try:
        run = await wait_status(hclient, await queue(hclient, add_show()), ("failed",), timeout=10)
    finally:
        worker.executor = real
    error = run["error"]
    assert (error["node"], error["node_type"]) == ("add", "srv_add"), error
    assert error["error_type"] == "SystemExit" and error["message"] == "raised SystemExit: 7", error
    await _still_serving(hclient)


# --- a large POST ----------------------------------------------------------------------------
def test_a_large_post_does_not_stall_other_requests(tmp_path):
    nodes: dict[str, Any] = {f"n{i}": {"type": "srv_add", "inputs": {"a": i, "b": 1}}
                             for i in range(100_000)}
    nodes["show"] = {"type": "srv_show", "inputs": {"value": link("n0", "int")}}
    port = _free_port()
    proc = _start(tmp_path, port)
    latencies: list[float] = []
    statuses: set[int] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            statuses.add(_call(port, "GET", "/api/runs?limit=1")[0])
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.01)

    try:
        poller = threading.Thread(target=poll)
        poller.start()
        try:
            time.sleep(0.2)
            t0 = time.perf_counter()
            status, body = _call(port, "POST", "/api/runs", wf(**nodes))
            post_s = time.perf_counter() - t0
        finally:
            done.set()
            poller.join()
    finally:
        proc.terminate()
        proc.wait(30)
    assert status == 201, body
    assert statuses == {200} and len(latencies) >= 5, (statuses, latencies)
    worst = max(latencies)
    assert worst < 1.0, f"a GET took {worst * 1000:.0f} ms during a {post_s:.2f} s POST"


# --- JSON the parser must refuse ----------------------------------------------------------
def _with_value(text: str) -> str:
    return ('{"format": "loom.workflow", "version": 1, "nodes": {"a": {"type": "srv_add", '
            f'"inputs": {{"a": {text}}}}}}}}}')


@pytest.mark.parametrize("text, words", [
    ("[" * 900 + "]" * 900, ("nested", str(MAX_JSON_DEPTH))),
    ("[" * 100_000 + "]" * 100_000, ("nested", str(MAX_JSON_DEPTH))),
    ('{"x": ' * 900 + "1" + "}" * 900, ("nested",)),
    ("1" * 5000, ("digits",)),
])
async def test_hostile_json_bodies_get_400(hclient, text, words):
    body = _with_value(text)
    await _expect(await hclient.post("/api/runs", data=body, headers=JSON), 400, *words)
    await _expect(await hclient.put("/api/workflows/hostile", data=body, headers=JSON), 400, *words)
    await _still_serving(hclient)


# --- names with NUL bytes, dots, newlines --------------------------------------------------
@pytest.mark.parametrize("node, name", [
    ("srv_use_model", "a\x00b.safetensors"), ("srv_use_model", "."), ("srv_use_model", "./"),
    ("srv_use_model", "./."), ("srv_use_model", "embedded/."), ("srv_use_image", "x\x00.png"),
    ("srv_use_image", "."),
])
async def test_bad_file_names_in_a_workflow_are_problems(hclient, node, name):
    field = "model" if node == "srv_use_model" else "image"
    body = await _expect(await hclient.post("/api/runs", json=wf(n={"type": node,
                                                                    "inputs": {field: name}})), 400)
    [problem] = body["problems"]
    assert (problem["node"], problem["input"]) == ("n", field), problem
    assert repr(name) in problem["message"], problem
    await _still_serving(hclient)


async def test_names_in_urls_with_nul_or_newline_get_400(hclient, settings):
    for method, url in [("GET", "/api/files/output/a%00b.png"), ("GET", "/api/workflows/a%00b"),
                        ("PUT", "/api/workflows/a%00b"), ("PUT", "/api/workflows/abc%0A"),
                        ("GET", "/api/workflows/abc%0A"), ("DELETE", "/api/workflows/abc%0A")]:
        resp = await hclient.request(method, url, json=add_show())
        assert resp.status == 400, (method, url, await resp.text())
        assert "error" in await resp.json()
    saved = settings.user / "workflows"
    assert not saved.exists() or list(saved.iterdir()) == []


# --- headers -------------------------------------------------------------------------------
@pytest.mark.parametrize("origin", ["http://127.0.0.1:8320.evil.com", "http://[::1",
                                    "http://127.0.0.1:99999", "http://localhost:-1"])
async def test_malformed_origins_are_refused_not_crashed(hclient, origin):
    await _expect(await hclient.post("/api/runs", json=add_show(), headers={"Origin": origin}),
                  403, repr(origin))
    await _still_serving(hclient)


# --- uploads -------------------------------------------------------------------------------
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [9000, 30000])
async def test_images_over_the_pixel_limit_get_413(hclient, side):
    form = FormData()
    form.add_field("image", _png_header_only(side, side), filename="big.png",
                   content_type="image/png")
    await _expect(await hclient.post("/api/uploads", data=form), 413, "pixel limit")


async def test_malformed_multipart_bodies_get_400(hclient, settings):
    head = (b'--XB\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")
    cases = [
        ("multipart/form-data; boundary=XB", head + b"\x89PNG\r\n", "multipart"),
        ("multipart/form-data", head + b"\x89PNG\r\n--XB--\r\n", "boundary"),
        ("multipart/form-data; boundary=XB",
         head.replace(b'filename="a.png"', b"filename*=UTF-8''a%00b.png") + b"xx\r\n--XB--\r\n",
         "file name"),
        ("multipart/form-data; boundary=XB",
         head.replace(b'filename="a.png"', b'filename="a%00b.png"') + b"xx\r\n--XB--\r\n",
         "file name"),
    ]
    for content_type, data, word in cases:
        resp = await hclient.post("/api/uploads", data=data, headers={"Content-Type": content_type})
        await _expect(resp, 400, word)
    assert not settings.inputs.exists() or list(settings.inputs.iterdir()) == []
    await _still_serving(hclient)


async def test_a_damaged_saved_workflow_is_a_422_naming_it(client, settings):
    folder = settings.user / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.json").write_text('{"nodes": {"a": ')
    resp = await client.get("/api/workflows/broken")
    assert resp.status == 422
    assert "broken" in (await resp.json())["error"] and "damaged" in (await resp.json())["error"]
    assert (await client.get("/api/workflows")).status == 200  # the list still answers
