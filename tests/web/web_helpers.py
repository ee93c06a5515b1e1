"""Helpers for the browser tests: a server thread, Chromium flags, and canvas geometry."""
from __future__ import annotations

import asyncio
import json
import shutil
import threading
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

HERE = Path(__file__).resolve().parent
PLUGIN_DIR = HERE / "plugin"
REPO = HERE.parent.parent
WEB = REPO / "web"
LITEGRAPH = WEB / "node_modules" / "@comfyorg" / "litegraph" / "dist" / "litegraph.es.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class ServerThread:
    """The Loom app on a free loopback port, served by its own event loop in a thread."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._main, name="loom-test-server", daemon=True)

    def _main(self) -> None:
        from loom_server import ServerConfig, create_app
        asyncio.set_event_loop(self.loop)
        try:
            app = create_app(self.settings, ServerConfig(port=0))
            self._runner = web.AppRunner(app, handle_signals=False)
            self.loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:41234."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "ServerThread":
        """Start and wait until the node registry answers."""
        self._thread.start()
        self._ready.wait(timeout)
        if self.error is not None:
            raise RuntimeError(f"the test server did not start: {self.error}") from self.error
        self.get_json("/api/nodes", timeout=timeout)
        return self

    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        """GET a JSON document from the server."""
        with urllib.request.urlopen(self.url + path, timeout=timeout) as res:
            return json.loads(res.read())

    def get_bytes(self, path: str) -> bytes:
        """GET raw bytes from the server."""
        with urllib.request.urlopen(self.url + path, timeout=30) as res:
            return res.read()

    def stop(self) -> None:
        """Shut the app down (the worker stops) and end the thread."""
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop)
            fut.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


def tiny_workflow(**over: Any) -> dict[str, Any]:
    """solid → invert → save: the tiny workflow most tests queue."""
    wf: dict[str, Any] = {
        "format": "loom.workflow", "version": 1,
        "nodes": {
            "solid": {"type": "t_solid", "version": 1,
                      "inputs": {"color": "red", "width": 64, "height": 48},
                      "ui": {"pos": [60, 120], "size": [240, 110]}},
            "invert": {"type": "t_invert", "version": 1,
                       "inputs": {"image": {"node": "solid", "output": "image"}},
                       "ui": {"pos": [360, 120], "size": [200, 60]}},
            "save": {"type": "t_save", "version": 1,
                     "inputs": {"image": {"node": "invert", "output": "image"}, "prefix": "web"},
                     "ui": {"pos": [620, 120], "size": [260, 300], "title": "Result"}},
        },
        "groups": [{"title": "Make", "bounding": [40, 60, 540, 200]}],
        "meta": {"title": "Web test: solid, invert, save"},
    }
    for key, value in over.items():
        node, _, inp = key.partition("__")
        wf["nodes"][node]["inputs"][inp] = value
    return wf


# --- canvas geometry (all in CSS pixels of the page) -----------------------------------
SLOT_XY_JS = """([id, io, index]) => {
  const node = window.loom.nodeById(id);
  const p = io === 'in' ? node.getInputPos(index) : node.getOutputPos(index);
  const c = window.loom.canvas.ds.convertOffsetToCanvas(p);
  const r = window.loom.canvas.canvas.getBoundingClientRect();
  return [r.left + c[0], r.top + c[1]];
}"""

GRAPH_XY_JS = """([x, y]) => {
  const c = window.loom.canvas.ds.convertOffsetToCanvas([x, y]);
  const r = window.loom.canvas.canvas.getBoundingClientRect();
  return [r.left + c[0], r.top + c[1]];
}"""

WIDGET_XY_JS = """([id, name, fx]) => {
  const node = window.loom.nodeById(id);
  const w = node.widgets.find((w) => w.name === name);
  const g = [node.pos[0] + node.size[0] * fx, node.pos[1] + w.y + 10];
  const c = window.loom.canvas.ds.convertOffsetToCanvas(g);
  const r = window.loom.canvas.canvas.getBoundingClientRect();
  return [r.left + c[0], r.top + c[1]];
}"""

TITLE_XY_JS = """(id) => {
  const node = window.loom.nodeById(id);
  const g = [node.pos[0] + 40, node.pos[1] - 15];
  const c = window.loom.canvas.ds.convertOffsetToCanvas(g);
  const r = window.loom.canvas.canvas.getBoundingClientRect();
  return [r.left + c[0], r.top + c[1]];
}"""


# --- driving the page ------------------------------------------------------------------
def open_workflow(page: Any, wf: dict[str, Any], folder: Path, name: str = "wf.json") -> None:
    """Open a workflow the way a user does: Load, then pick the file."""
    path = folder / name
    path.write_text(json.dumps(wf), encoding="utf-8")
    page.evaluate("() => { window.__nodesBeforeLoad = new Set(window.loom.graph.nodes); }")
    with page.expect_file_chooser() as fc:
        page.click("#btn-load")
    fc.value.set_files(str(path))
    # loaded: every node of the file is there, as a new node (ids alone may match the old graph's)
    page.wait_for_function("""(ids) => ids.every((id) => {
        const n = window.loom.nodeById(id);
        return n && !window.__nodesBeforeLoad.has(n);
    })""", arg=list(wf["nodes"]))
    settle(page)


def settle(page: Any) -> None:
    """Wait for two drawn frames, so node layout (widget rows, slots) is up to date."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")


def widget_xy(page: Any, node: str, name: str, fx: float = 0.5) -> list[float]:
    """Page coordinates of a point on a widget row (fx: 0 = left edge, 1 = right edge)."""
    settle(page)
    return page.evaluate(WIDGET_XY_JS, [node, name, fx])


def drag(page: Any, start: list[float], end: list[float], steps: int = 12) -> None:
    """Press at start, move to end, release (real mouse events)."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def slot_xy(page: Any, node: str, io: str, index: int) -> list[float]:
    """Page coordinates of a node's input ('in') or output ('out') slot."""
    settle(page)
    return page.evaluate(SLOT_XY_JS, [node, io, index])


def exported(page: Any) -> dict[str, Any]:
    """The workflow JSON the canvas would save."""
    return page.evaluate("window.loom.exportWorkflow()")


def double_click(page: Any, x: float, y: float) -> None:
    """Two clicks 40 ms apart (litegraph ignores a double click within the same millisecond)."""
    page.mouse.click(x, y)
    page.wait_for_timeout(40)
    page.mouse.click(x, y)


def add_from_palette(page: Any, x: float, y: float, query: str) -> str:
    """Double-click the canvas at (x, y), type the query, press Enter; returns the new node id."""
    before = set(page.evaluate("window.loom.graph.nodes.map((n) => String(n.id))"))
    double_click(page, x, y)
    page.wait_for_selector("#palette:not([hidden])")
    page.keyboard.type(query)
    page.keyboard.press("Enter")
    page.wait_for_function("(n) => window.loom.graph.nodes.length > n", arg=len(before))
    after = page.evaluate("window.loom.graph.nodes.map((n) => String(n.id))")
    (new,) = [n for n in after if n not in before]
    return new


RUN_IDS_JS = "[...document.querySelectorAll('#run-list li[data-run]')].map((li) => li.dataset.run)"
NEW_FINAL_RUN_JS = """(before) => {
  const done = [...document.querySelectorAll('#run-list li[data-run]')]
    .filter((li) => !before.includes(li.dataset.run)
      && ['finished', 'failed', 'interrupted'].some((c) => li.classList.contains(c)));
  return done.length ? [done[0].dataset.run, done[0].className] : null;
}"""


def queue_and_wait(page: Any, button: str = "#btn-queue") -> tuple[str, str]:
    """Press Queue and wait until the new run ends; returns (run id, final status)."""
    before = page.evaluate(RUN_IDS_JS)
    page.click(button)
    handle = page.wait_for_function(NEW_FINAL_RUN_JS, arg=before)
    run_id, status = handle.json_value()
    return run_id, status


DROP_JS = """async ([data, isUrl, name, type, x, y]) => {
  const body = isUrl ? await (await fetch(data)).blob() : data;
  const dt = new DataTransfer();
  dt.items.add(new File([body], name, { type }));
  const el = document.querySelector('#graph-canvas');
  for (const t of ['dragenter', 'dragover', 'drop']) {
    const init = { bubbles: true, cancelable: true, dataTransfer: dt, clientX: x, clientY: y };
    el.dispatchEvent(new DragEvent(t, init));
  }
}"""


def drop_file(page: Any, data: str, name: str, kind: str, at: tuple[float, float] = (400, 300),
              is_url: bool = False) -> None:
    """Drop a file on the canvas (text, or the bytes behind a URL) as a user dragging it in."""
    page.evaluate(DROP_JS, [data, is_url, name, kind, at[0], at[1]])
