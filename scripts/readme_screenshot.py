"""Write docs/screenshot.png: the canvas showing the default workflow after a run.

Starts `python -m loom_server` on a free port with a fresh home folder, opens the page in
headless Chromium at 1440x900, presses Queue, waits until the run has finished and its
images are drawn on the output nodes, and saves the screenshot. The README shows it.

    python scripts/readme_screenshot.py [--workflow NAME] [--out docs/screenshot.png]
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

OUTPUTS_DRAWN = """() => {
  const outs = window.loom.graph.nodes.filter((n) => n.loom?.schema?.output_node);
  const withImages = outs.filter((n) => n.loom.images.length);
  return withImages.length > 0 && withImages.every((n) => n.loom.images.every((i) => i.complete))
    && withImages.every((n) => n.loom.imageRects.length > 0);
}"""


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(port: int, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    """Poll /api/nodes until the registry is ready."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/nodes", timeout=10):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def canvas_page(chromium: str) -> Iterator[tuple[Any, int, list[str]]]:
    """A fresh server on a free port and the canvas open in headless Chromium at 1440x900.

    Yields (page, port, page errors); closes the browser and stops the server afterwards.
    """
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "loom_server", "--home", home, "--port", str(port)],
                                  cwd=REPO)
        try:
            wait_for_server(port, server)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"http://127.0.0.1:{port}/?fresh")
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                try:
                    yield page, port, errors
                finally:
                    browser.close()
        finally:
            server.terminate()
            server.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser(description="Write the README screenshot of the canvas.")
    ap.add_argument("--workflow", default=None, help="a name from /api/workflows (default: the page's default)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    with canvas_page(args.chromium) as (page, _port, errors):
        if args.workflow:
            page.evaluate("async (name) => window.loom.load(await (await fetch("
                          "`/api/workflows/${encodeURIComponent(name)}`)).json())", args.workflow)
        title = page.text_content("#wf-title")
        print(f"workflow: {title}")
        t0 = time.time()
        page.click("#btn-queue")
        page.wait_for_selector("#run-list li.finished, #run-list li.failed, #problem-list li",
                               timeout=args.timeout * 1000)
        if page.locator("#problem-list li").count() or page.locator("#run-list li.failed").count():
            text = page.inner_text("#problem-list") or page.inner_text("#run-list li.failed")
            raise SystemExit(f"the run did not finish:\n{text}")
        page.wait_for_function(OUTPUTS_DRAWN, timeout=60_000)
        print(f"run finished in {time.time() - t0:.1f} s")
        page.click("#btn-fit")
        page.click(".tabs button[data-tab='gallery']")
        page.wait_for_timeout(500)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        if errors:
            raise SystemExit("page errors:\n" + "\n".join(errors))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
