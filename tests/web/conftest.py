"""Fixtures for the browser tests: one Loom server per session and a Chromium page per test."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from web_helpers import CHROMIUM, CHROMIUM_ARGS, LITEGRAPH, PLUGIN_DIR, ServerThread



def _skip_without_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    if not LITEGRAPH.exists():
        pytest.skip("web/node_modules is missing: run `npm ci --omit=dev` in web/ "
                    "(pip install -e . does it when npm is installed)")


@pytest.fixture(scope="session")
def loom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """The real app (built-in nodes + the tiny test plugin) on a free loopback port."""
    _skip_without_browser()
    from loom import Settings
    home = tmp_path_factory.mktemp("loom_home")
    settings = Settings(home=home, custom_nodes_dirs=[PLUGIN_DIR], device="cpu")
    server = ServerThread(settings).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium with the flags this machine needs (never `playwright install`)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS,
            "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """A laptop-sized window: the page must work at 1280×800."""
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


class ConsoleLog:
    """Console errors, warnings and uncaught page errors seen during a test."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.allowed: list[str] = []

    def allow(self, text: str) -> None:
        """Expect console errors containing ``text`` (e.g. a 400 the test provokes)."""
        self.allowed.append(text)

    def on_console(self, msg: Any) -> None:
        if msg.type == "error":
            if not any(a in msg.text for a in self.allowed):
                self.errors.append(msg.text)
        elif msg.type == "warning":
            self.warnings.append(msg.text)

    def on_page_error(self, err: Any) -> None:
        self.errors.append(f"uncaught: {err}")


@pytest.fixture
def console() -> ConsoleLog:
    """What the page printed; the `canvas` fixture fails the test on any error."""
    return ConsoleLog()


@pytest.fixture
def canvas(loom_server: ServerThread, page: Any, console: ConsoleLog) -> Iterator[Any]:
    """A page showing the canvas (fresh local storage), ready to use."""
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    page.set_default_timeout(float(os.environ.get("LOOM_WEB_TIMEOUT_MS", "15000")))
    # settings kept on the server (GET/PUT /api/settings) would leak from one test into the next
    (loom_server.settings.user / "settings.json").unlink(missing_ok=True)
    page.goto(loom_server.url + "/")
    page.wait_for_selector("body[data-ready='1']")
    yield page
    if os.environ.get("LOOM_WEB_SHOW_WARNINGS"):
        print("console warnings:", console.warnings)
    assert not console.errors, "console errors:\n" + "\n".join(console.errors)
