"""Start `python -m loom_server` for a benchmark: a free loopback port, wait until it is ready."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int) -> tuple[subprocess.Popen[bytes], float, float]:
    """Spawn the server; returns (process, s to first HTTP answer, s until nodes are ready)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "loom_server", "--home", str(home), "--port", str(port),
                             "--device", "cpu"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=open(home / "server.log", "wb"))
    first = ready = None
    while ready is None:
        if proc.poll() is not None:
            raise SystemExit((home / "server.log").read_text())
        try:
            path = "/api/openapi.json" if first is None else "/api/nodes"
            with opener.open(f"http://127.0.0.1:{port}{path}", timeout=60) as resp:
                resp.read()
            if first is None:
                first = time.perf_counter() - t0
            else:
                ready = time.perf_counter() - t0
        except OSError:
            time.sleep(0.01)
        if time.perf_counter() - t0 > 120:
            proc.kill()
            raise SystemExit("the server did not start within 120 s")
    return proc, first or 0.0, ready
