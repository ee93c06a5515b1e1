"""Canvas benchmark: load a 300-node workflow and pan it, in headless Chromium via Playwright.

Prints a table: time to load the workflow onto the canvas (build nodes + links + first
full draw) and the frame time while panning (the cost of litegraph's draw() per frame,
and the interval between animation frames), at the zoom that fits everything and at 100 %.

    python bench/canvas.py [--nodes 300] [--repeat 5] [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def big_workflow(n: int, per_row: int = 30) -> dict[str, Any]:
    """Rows of sample_image → resize → invert … → save_image, n nodes in all."""
    nodes: dict[str, Any] = {}
    rows = max(1, round(n / per_row))
    count = 0
    for r in range(rows):
        left = n - count
        length = min(per_row, left if r == rows - 1 else per_row)
        prev = None
        for c in range(length):
            nid = f"r{r}c{c}"
            pos = [c * 300, r * 260]
            if c == 0:
                entry = {"type": "sample_image", "inputs": {"name": "astronaut"}}
            elif c == length - 1:
                entry = {"type": "save_image", "inputs": {"images": {"node": prev, "output": "image"},
                                                          "prefix": f"bench/row{r}"}}
            elif c % 3 == 1:
                entry = {"type": "resize_image", "inputs": {"image": {"node": prev, "output": "image"},
                                                            "width": 64, "height": 64, "method": "area"}}
            else:
                entry = {"type": "invert_image", "inputs": {"image": {"node": prev, "output": "image"}}}
            entry["ui"] = {"pos": pos, "size": [260, 200 if c == length - 1 else 120]}
            nodes[nid] = entry
            prev = nid
            count += 1
    return {"format": "loom.workflow", "version": 1, "nodes": nodes,
            "meta": {"title": f"Benchmark: {count} nodes"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "loom_server", "--home", str(home), "--port", str(port)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/nodes", timeout=5):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start within 120 s")


LOAD_JS = """(wf) => {
  const t0 = performance.now();
  window.loom.load(wf);
  window.loom.canvas.draw(true, true);
  return performance.now() - t0;
}"""

INSTRUMENT_JS = """() => {
  const c = window.loom.canvas;
  if (!c.__timed) {
    const draw = c.draw.bind(c);
    c.__times = [];
    c.draw = (a, b) => { const t = performance.now(); draw(a, b); c.__times.push(performance.now() - t); };
    c.__timed = true;
  }
  c.__times.length = 0;
  window.__frames = [];
  const tick = (t) => { window.__frames.push(t); if (window.__recording) requestAnimationFrame(tick); };
  window.__recording = true;
  requestAnimationFrame(tick);
}"""

STOP_JS = """() => {
  window.__recording = false;
  const f = window.__frames;
  const gaps = f.slice(1).map((t, i) => t - f[i]);
  return { draws: window.loom.canvas.__times.slice(), gaps };
}"""


def pct(values: list[float], q: float) -> float:
    """The q-quantile of values (nearest rank)."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def pan(page: Any, steps: int = 120) -> dict[str, list[float]]:
    """Drag the empty canvas background in a loop with the real mouse; returns draw times and frame gaps."""
    box = page.evaluate("(() => { const r = window.loom.canvas.canvas.getBoundingClientRect(); "
                        "return [r.left, r.top, r.width, r.height]; })()")
    x0, y0 = box[0] + 8, box[1] + box[3] - 8  # a corner: empty at the start of the drag
    before = page.evaluate("window.loom.canvas.ds.offset.slice()")
    page.evaluate(INSTRUMENT_JS)
    page.keyboard.down(" ")  # space + drag pans even over nodes
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(steps):
        dx = 300 * ((i % 40) / 40.0)
        page.mouse.move(x0 + dx, y0 - dx * 0.5)
    page.mouse.up()
    page.keyboard.up(" ")
    page.wait_for_timeout(100)
    out = page.evaluate(STOP_JS)
    after = page.evaluate("window.loom.canvas.ds.offset.slice()")
    if abs(after[0] - before[0]) + abs(after[1] - before[1]) < 1:
        raise SystemExit("panning did not move the view: the measurement would be meaningless")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    wf = big_workflow(args.nodes)
    links = sum(1 for n in wf["nodes"].values() for v in n["inputs"].values() if isinstance(v, dict))
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        server = start_server(Path(home), port)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"http://127.0.0.1:{port}/?fresh")
                page.wait_for_selector("body[data-ready='1']")
                loads = [page.evaluate(LOAD_JS, wf) for _ in range(args.repeat)]
                page.wait_for_timeout(300)
                page.evaluate("window.loom.fitView()")  # opening keeps text readable; fit shows all
                page.wait_for_timeout(100)
                scale_fit = page.evaluate("window.loom.canvas.ds.scale")
                fit = pan(page)
                zoomed = {}
                for scale in (0.5, 1.0):
                    page.evaluate("(s) => { const ds = window.loom.canvas.ds; ds.scale = s; ds.offset = [0, 0]; "
                                  "window.loom.canvas.setDirty(true, true); }", scale)
                    page.wait_for_timeout(200)
                    zoomed[scale] = pan(page)
                nodes_shown = page.evaluate("window.loom.graph.nodes.length")
                browser.close()
        finally:
            server.terminate()
            server.wait(20)
    print(f"Canvas benchmark: {nodes_shown} nodes, {links} links, 1280x800, headless Chromium "
          f"(software rendering, --disable-gpu)")
    print()
    print("| measure | median | p95 | n |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| load workflow (build + first draw), ms | {statistics.median(loads):.1f} | "
          f"{pct(loads, 0.95):.1f} | {len(loads)} |")
    for label, data in ((f"pan, fit zoom {scale_fit:.2f} (all nodes visible)", fit),
                        ("pan, zoom 0.50", zoomed[0.5]), ("pan, zoom 1.00", zoomed[1.0])):
        print(f"| {label}: draw() per frame, ms | {statistics.median(data['draws']):.2f} | "
              f"{pct(data['draws'], 0.95):.2f} | {len(data['draws'])} |")
        print(f"| {label}: frame interval, ms | {statistics.median(data['gaps']):.2f} | "
              f"{pct(data['gaps'], 0.95):.2f} | {len(data['gaps'])} |")
    print()
    print(json.dumps({"nodes": nodes_shown, "load_ms": loads,
                      "pan_fit_draw_ms_median": statistics.median(fit["draws"]),
                      "pan_50_draw_ms_median": statistics.median(zoomed[0.5]["draws"]),
                      "pan_100_draw_ms_median": statistics.median(zoomed[1.0]["draws"])}))


if __name__ == "__main__":
    main()
