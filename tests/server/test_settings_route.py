"""GET/PUT /api/settings: the canvas settings in <home>/user/settings.json."""
from __future__ import annotations

import json

import pytest

from loom_server.routes_settings import BODY_LIMIT

GOOD = {"linkStyle": "linear", "snapToGrid": True, "confirmDelete": False, "theme": "light",
        "defaultZoom": 1.25, "minimap": False}


async def test_settings_start_empty_then_round_trip_to_the_user_file(client, settings):
    got = await (await client.get("/api/settings")).json()
    assert got == {"settings": {}, "updated": None}
    resp = await client.put("/api/settings", json={"settings": GOOD, "updated": 1700000000.5})
    assert resp.status == 200, await resp.text()
    path = settings.user / "settings.json"
    assert json.loads(path.read_text()) == {"settings": GOOD, "updated": 1700000000.5}
    assert not [p for p in settings.user.iterdir() if p.name.endswith(".tmp")]  # renamed into place
    got = await (await client.get("/api/settings")).json()
    assert got == {"settings": GOOD, "updated": 1700000000.5}
    # a later PUT replaces the whole document (a subset of the keys is fine)
    resp = await client.put("/api/settings", json={"settings": {"theme": "dark"}, "updated": 1700000001})
    assert resp.status == 200
    assert (await (await client.get("/api/settings")).json())["settings"] == {"theme": "dark"}


@pytest.mark.parametrize(("body", "words"), [
    ({"settings": {"fontSize": 3}, "updated": 1}, ["unknown setting 'fontSize'"]),
    ({"settings": {"theme": "blue"}, "updated": 1}, ["theme", "'dark' or 'light'", '"blue"']),
    ({"settings": {"snapToGrid": "yes"}, "updated": 1}, ["snapToGrid", "true or false"]),
    ({"settings": {"minimap": 1}, "updated": 1}, ["minimap", "true or false"]),
    ({"settings": {"defaultZoom": 9}, "updated": 1}, ["defaultZoom", "0.1 to 4"]),
    ({"settings": {"defaultZoom": True}, "updated": 1}, ["defaultZoom"]),
    ({"settings": {"linkStyle": ["spline"]}, "updated": 1}, ["linkStyle"]),
    ({"settings": {}, "updated": "now"}, ["'updated'"]),
    ({"settings": {}}, ["'updated'"]),
    ({"settings": [], "updated": 1}, ["'settings' must be an object"]),
    ({"settings": {}, "updated": 1, "extra": 1}, ["unknown top-level key", "'extra'"]),
    ([1, 2], ["JSON object"]),
])
async def test_bad_settings_are_refused_with_the_key_and_nothing_is_written(client, settings, body, words):
    resp = await client.put("/api/settings", json=body)
    assert resp.status == 400
    message = (await resp.json())["error"]
    for word in words:
        assert word in message, message
    assert not (settings.user / "settings.json").exists()


async def test_settings_body_is_size_limited(client, settings):
    huge = json.dumps({"settings": {"theme": "dark"}, "updated": 1, "pad": "x" * BODY_LIMIT})
    resp = await client.put("/api/settings", data=huge, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert not (settings.user / "settings.json").exists()


async def test_a_damaged_settings_file_reads_as_none(client, settings):
    settings.user.mkdir(parents=True, exist_ok=True)
    (settings.user / "settings.json").write_text('{"settings": {"theme": 5}, "updated": 1}')
    got = await (await client.get("/api/settings")).json()
    assert got["settings"] == {} and got["updated"] is None and got["damaged"] is True
