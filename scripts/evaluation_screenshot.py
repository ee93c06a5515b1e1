"""Write docs/evaluation.png: the evaluation studio showing a sweep's grid and table.

Starts `python -m loom_server` on a free port with a fresh home folder, opens the example
`ablation_schedulers` in headless Chromium at 1440x900 (by default trimmed to 3 schedulers ×
2 step counts and 4 images per cell, so it takes a minute or two on a CPU; `--full` keeps
the whole 6 × 3 sweep), queues it, opens the sweep in the Sweeps tab, waits until every cell
has finished, rates a few images so the table shows human means, and saves the screenshot.
docs/evaluation.md shows it.

    python scripts/evaluation_screenshot.py [--full] [--out docs/evaluation.png]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_screenshot import REPO, canvas_page  # noqa: E402

ALL_DONE = """(n) => {
  const figs = document.querySelectorAll('.sweep-grid figure[data-run] img');
  return figs.length >= n && [...figs].every((i) => i.complete);
}"""


def example(port: int, full: bool) -> dict:
    """The ablation example, trimmed unless `full`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/workflows/ablation_schedulers", timeout=30) as res:
        wf = json.loads(res.read())
    wf = wf.get("workflow", wf) if "nodes" not in wf else wf
    if not full:
        wf["sweeps"] = [{"node": "sched", "input": "name", "values": ["euler", "heun", "dpmpp_2m"]},
                        {"node": "sample", "input": "steps", "values": [4, 8]}]
        wf["nodes"]["latent"]["inputs"]["batch"] = 4
    return wf


def main() -> int:
    ap = argparse.ArgumentParser(description="Write the screenshot of the evaluation studio.")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "evaluation.png")
    ap.add_argument("--full", action="store_true", help="run the example's whole 6 × 3 sweep")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the sweep")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    with canvas_page(args.chromium) as (page, port, errors):
        wf = example(port, args.full)
        page.evaluate("(wf) => window.loom.load(wf)", wf)
        cells = page.evaluate("() => window.loom.sweeps.sweepCount(window.loom.graph.loomSweeps)")
        print(f"queueing {cells} cells")
        started = time.time()
        page.click("#btn-queue")
        page.click("#side .tabs button[data-tab='sweeps']")
        page.click("#sweep-list li[data-sweep] button:has-text('Open')")
        page.wait_for_function("(n) => document.querySelectorAll('.sweep-cell.finished').length >= n",
                               arg=cells, timeout=args.timeout * 1000, polling=1000)
        print(f"sweep finished in {time.time() - started:.0f} s")
        page.evaluate("() => localStorage.setItem('loom.rater', 'screenshot')")
        page.click(".sweep-studio .rate-toggle")
        for key in ("4", "ArrowRight", "3", "ArrowRight", "5", "ArrowRight", "2"):
            page.keyboard.press(key)
            page.wait_for_timeout(150)
        page.wait_for_timeout(500)
        page.locator(".sweep-studio .close").focus()  # reload the table with the ratings
        page.evaluate("() => window.loom.grid.reload()")
        page.wait_for_function(ALL_DONE, arg=cells, timeout=60_000)
        page.wait_for_function("() => [...document.querySelectorAll('.studio-plot img')].every((i) => i.complete)")
        page.wait_for_timeout(500)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        if errors:
            print("page errors:", *errors, sep="\n  ")
            return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
