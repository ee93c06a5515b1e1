"""A real `python -m loom_server` killed with SIGKILL loses nothing: queued and running runs complete."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from srv_helpers import NODES_DIR, add_show, counter

REPO = Path(__file__).resolve().parents[2]
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "loom_server", "--home", str(home), "--port", str(port),
         "--custom-nodes", str(NODES_DIR), "--device", "cpu"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(home / f"server-{port}.log", "ab"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (home / f"server-{port}.log").read_text()
        try:
            if _call(port, "GET", "/api/nodes")[0] == 200:
                return proc
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server did not come up within 60 s")


def _wait(port: int, run_id: str, statuses: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, run = _call(port, "GET", f"/api/runs/{run_id}")
        assert status == 200, run
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_sigkill_while_running_loses_nothing(tmp_path):
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        status, body = _call(port, "POST", "/api/runs", counter(steps=250, delay=0.02))
        assert status == 201, body
        running = body["id"]
        _wait(port, running, ("running",))
        queued = [_call(port, "POST", "/api/runs", add_show(i, 10))[1]["id"] for i in range(3)]
        front = _call(port, "POST", "/api/runs", {**add_show(7, 7), "front": True})[1]["id"]
        time.sleep(0.3)  # well inside the 5 s run
        assert _call(port, "GET", f"/api/runs/{running}")[1]["status"] == "running"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    proc = _start(tmp_path, port)
    try:
        status, listing = _call(port, "GET", "/api/runs?limit=10")
        assert status == 200 and len(listing["runs"]) == 5
        first = _wait(port, running, ("finished",))
        assert first["attempts"] == 2 and first["result"]["ui"]["show"]["values"] == {"value": 250}
        done = [_wait(port, r, ("finished",)) for r in [front, *queued]]
        assert [d["result"]["ui"]["show"]["values"]["value"] for d in done] == [14, 10, 11, 12]
        started = [first["started"]] + [d["started"] for d in done]
        assert started == sorted(started)  # the cut-off run first, then the front one, then FIFO
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0, (tmp_path / f"server-{port}.log").read_text()[-2000:]
