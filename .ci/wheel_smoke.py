"""CI job 2: an installed wheel runs the default workflow and serves the canvas.

Run with the wheel venv's Python from a folder outside the repo:
``python wheel_smoke.py PATH/TO/loom``. Exits non-zero with a message on any failure.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def fail(msg: str) -> None:
    sys.exit(f"wheel smoke: {msg}")


def main() -> None:
    loom = sys.argv[1]
    import loom as loom_pkg
    from loom.settings import REPO_ROOT, SHIPPED_WORKFLOWS
    if "site-packages" not in str(Path(loom_pkg.__file__)):
        fail(f"loom was imported from {loom_pkg.__file__}, not from the installed wheel")
    if not str(SHIPPED_WORKFLOWS).startswith(str(Path(loom_pkg.__file__).parent)):
        fail(f"the example workflows are not inside the package: {SHIPPED_WORKFLOWS} ({REPO_ROOT})")
    home = Path(tempfile.mkdtemp(prefix="loom-home-"))
    run = subprocess.run([loom, "run", str(SHIPPED_WORKFLOWS / "text_to_image.json"), "--home", str(home)],
                         capture_output=True, text=True, timeout=900)
    print(run.stdout, run.stderr, sep="\n")
    pngs = list((home / "output").rglob("*.png"))
    if run.returncode != 0 or not pngs:
        fail(f"loom run text_to_image.json exited {run.returncode} and wrote {len(pngs)} images")
    for example in ("gan.json", "evaluation.json", "image_to_image.json"):
        v = subprocess.run([loom, "validate", str(SHIPPED_WORKFLOWS / example), "--home", str(home)],
                           capture_output=True, text=True, timeout=300)
        if v.returncode != 0:
            fail(f"loom validate {example}: {v.stdout} {v.stderr}")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([loom, "serve", "--home", str(home), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        base = f"http://127.0.0.1:{port}"
        page = ""
        for _ in range(240):
            try:
                page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
                break
            except OSError:
                if server.poll() is not None:
                    fail("loom serve exited: " + server.stdout.read().decode()[-2000:])  # type: ignore[union-attr]
                time.sleep(0.5)
        if 'id="topbar"' not in page:
            fail("GET / did not return the canvas:\n" + page[:500])
        lib = urllib.request.urlopen(base + "/vendor/litegraph/litegraph.es.js", timeout=10)
        if lib.status != 200:
            fail(f"litegraph is not served: {lib.status}")
        examples = json.load(urllib.request.urlopen(base + "/api/workflows", timeout=10))
        if not any("text_to_image" in json.dumps(e) for e in examples.get("workflows", examples)):
            fail(f"/api/workflows lists no examples: {examples}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("wheel smoke: the installed wheel runs text_to_image.json and serves the canvas")


if __name__ == "__main__":
    main()
