"""The settings panel: theme, default zoom and minimap, kept in the browser and in the
server's user/settings.json; the newer copy wins when the page loads."""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from web_helpers import open_workflow, tiny_workflow


def server_settings(loom_server: Any) -> dict[str, Any]:
    path = loom_server.settings.user / "settings.json"
    return json.loads(path.read_text()) if path.exists() else {}


def put_settings(loom_server: Any, doc: dict[str, Any]) -> None:
    req = urllib.request.Request(loom_server.url + "/api/settings", data=json.dumps(doc).encode(),
                                 method="PUT", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        assert res.status == 200


def test_settings_survive_a_reload_and_reach_the_server_file(canvas: Any, loom_server: Any) -> None:
    canvas.keyboard.press("Control+,")
    canvas.wait_for_selector("#settings:not([hidden])")
    assert canvas.evaluate("document.documentElement.dataset.theme") == "dark"
    dark_bg = canvas.evaluate("getComputedStyle(document.body).backgroundColor")
    canvas.select_option("#set-theme", "light")
    assert canvas.evaluate("document.documentElement.dataset.theme") == "light"
    assert canvas.evaluate("getComputedStyle(document.body).backgroundColor") != dark_bg
    assert canvas.evaluate("window.loom.canvas.clear_background_color") == "#e6e9ed"
    canvas.select_option("#set-default-zoom", "1.5")
    canvas.uncheck("#set-minimap")
    canvas.wait_for_selector("#minimap", state="hidden")
    deadline = time.time() + 10
    while server_settings(loom_server).get("settings", {}).get("minimap") is not False:
        assert time.time() < deadline, server_settings(loom_server)
        time.sleep(0.1)
    stored = server_settings(loom_server)
    assert stored["settings"]["theme"] == "light" and stored["settings"]["defaultZoom"] == 1.5
    assert stored["updated"] > time.time() - 60

    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    canvas.evaluate("window.loom.settingsSync")
    assert canvas.evaluate("document.documentElement.dataset.theme") == "light"
    assert canvas.is_hidden("#minimap")
    canvas.keyboard.press("Control+,")
    assert canvas.input_value("#set-default-zoom") == "1.5"
    assert canvas.input_value("#set-theme") == "light"


def test_a_newer_server_copy_wins_at_load_and_an_older_one_is_replaced(canvas: Any, loom_server: Any) -> None:
    put_settings(loom_server, {"settings": {"theme": "light", "minimap": False, "linkStyle": "straight"},
                               "updated": time.time() + 5})
    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    canvas.evaluate("window.loom.settingsSync")
    assert canvas.evaluate("document.documentElement.dataset.theme") == "light"
    assert canvas.evaluate("window.loom.canvas.links_render_mode") == 0  # straight
    assert canvas.is_hidden("#minimap")
    # this browser's copy now has that stamp; a server copy older than it is replaced by it
    put_settings(loom_server, {"settings": {"theme": "dark"}, "updated": 1000})
    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    canvas.evaluate("window.loom.settingsSync")
    assert canvas.evaluate("document.documentElement.dataset.theme") == "light"
    assert server_settings(loom_server)["settings"]["theme"] == "light"


def test_default_zoom_is_used_when_a_workflow_is_opened(canvas: Any, tmp_path: Path) -> None:
    canvas.keyboard.press("Control+,")
    canvas.select_option("#set-default-zoom", "0.5")
    canvas.keyboard.press("Escape")
    open_workflow(canvas, tiny_workflow(), tmp_path)
    assert canvas.evaluate("window.loom.canvas.ds.scale") == 0.5
    canvas.keyboard.press("Control+,")
    canvas.select_option("#set-default-zoom", "0")  # automatic: fit, never below the readable zoom
    canvas.keyboard.press("Escape")
    open_workflow(canvas, tiny_workflow(), tmp_path, "again.json")
    assert canvas.evaluate("window.loom.canvas.ds.scale") > 0.9
