"""Safe by default: tokens, Host/Origin checks, paths that stay in their folder, size limits."""
from __future__ import annotations

import io
import os

import pytest
from aiohttp import FormData, WSServerHandshakeError
from PIL import Image

from loom_server import ServerConfig, create_app
from srv_helpers import add_show


def png_bytes(w: int = 8, h: int = 8, color: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="PNG")
    return buf.getvalue()


def upload_form(data: bytes, filename: str = "pic.png", overwrite: bool = False) -> FormData:
    form = FormData()
    form.add_field("image", data, filename=filename, content_type="application/octet-stream")
    if overwrite:
        form.add_field("overwrite", "true")
    return form


def test_non_loopback_without_token_is_refused(settings):
    with pytest.raises(ValueError, match="requires an access token"):
        create_app(settings, ServerConfig(host="0.0.0.0"))
    create_app(settings, ServerConfig(host="0.0.0.0", token="s3cret"))  # fine with a token


async def test_token_is_required_when_configured(make_client):
    client = await make_client(ServerConfig(token="s3cret"))
    resp = await client.get("/api/runs")
    assert resp.status == 401 and "no access token" in (await resp.json())["error"]
    assert (await client.get("/api/runs", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get("/api/runs", headers={"Authorization": "Bearer s3cret"})).status == 200
    assert (await client.get("/api/runs", headers={"X-Loom-Token": "s3cret"})).status == 200
    assert (await client.get("/", allow_redirects=False)).status == 401
    # ?token= once sets an HttpOnly cookie; later requests (and the WebSocket) use it
    resp = await client.get("/api/openapi.json?token=s3cret")
    assert resp.status == 200 and "loom_token" in resp.cookies
    assert (await client.get("/api/runs")).status == 200
    ws = await client.ws_connect("/api/events")
    assert (await ws.receive_json())["type"] == "hello"
    await ws.close()


async def test_token_server_answers_any_host_name(make_client):
    client = await make_client(ServerConfig(token="t"))
    resp = await client.get("/api/runs", headers={"Host": "loom.example:8188",
                                                  "Authorization": "Bearer t"})
    assert resp.status == 200


async def test_foreign_host_header_is_refused_without_token(client):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must get nothing."""
    resp = await client.get("/api/runs", headers={"Host": "evil.example:8188"})
    assert resp.status == 403 and "evil.example" in (await resp.json())["error"]
    for host in ("localhost:8188", "127.0.0.1", "[::1]:8188"):
        assert (await client.get("/api/runs", headers={"Host": host})).status == 200


async def test_state_changes_from_a_foreign_origin_are_refused(client):
    evil = {"Origin": "http://evil.example"}
    for method, path, kwargs in [("POST", "/api/runs", {"json": add_show()}),
                                 ("POST", "/api/interrupt", {}),
                                 ("DELETE", "/api/runs", {}),
                                 ("PUT", "/api/workflows/x", {"json": add_show()}),
                                 ("POST", "/api/uploads", {"data": upload_form(png_bytes())})]:
        resp = await client.request(method, path, headers=evil, **kwargs)
        assert resp.status == 403, (method, path)
        assert "foreign Origin" in (await resp.json())["error"]
    resp = await client.post("/api/runs", json=add_show(), headers={"Origin": "null"})
    assert resp.status == 403
    resp = await client.post("/api/runs", json=add_show(), headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status == 403
    with pytest.raises(WSServerHandshakeError) as info:
        await client.ws_connect("/api/events", headers=evil)
    assert info.value.status == 403
    # reading is allowed from anywhere the Host check lets through; nothing was queued
    assert (await (await client.get("/api/runs", headers=evil)).json())["runs"] == []
    own = {"Origin": f"http://127.0.0.1:{client.port}"}
    assert (await client.post("/api/runs", json=add_show(), headers=own)).status == 201


async def test_allowed_origin_may_change_state(make_client):
    client = await make_client(ServerConfig(allowed_origins=["http://localhost:5173"]))
    resp = await client.post("/api/runs", json=add_show(), headers={"Origin": "http://localhost:5173"})
    assert resp.status == 201
    assert resp.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    pre = await client.options("/api/runs", headers={"Origin": "http://localhost:5173",
                                                     "Access-Control-Request-Method": "POST"})
    assert pre.status == 204 and "POST" in pre.headers["Access-Control-Allow-Methods"]
    other = await client.get("/api/runs", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_file_paths_never_leave_their_folder(client, settings, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.png").write_bytes(png_bytes())
    settings.outputs.mkdir(parents=True, exist_ok=True)
    (settings.outputs / "ok.png").write_bytes(png_bytes())
    (settings.outputs / "sub").mkdir()
    (settings.outputs / "sub" / "deep.png").write_bytes(png_bytes())
    os.symlink(outside / "secret.png", settings.outputs / "link.png")
    os.symlink(outside, settings.outputs / "linkdir")
    (settings.home / "queue_secret.txt").write_text("secret")
    assert (await client.get("/api/files/output/ok.png")).status == 200
    assert (await client.get("/api/files/output/sub/deep.png")).status == 200
    resp = await client.get("/api/files/output/ok.png")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    bad = ["/api/files/output/../queue_secret.txt",
           "/api/files/output/%2e%2e/queue_secret.txt",
           "/api/files/output/..%2Fqueue_secret.txt",
           "/api/files/output/sub%2F..%2F..%2Fqueue_secret.txt",
           "/api/files/output/%2Fetc%2Fpasswd",
           "/api/files/output//etc/passwd",
           "/api/files/output/..%5Cqueue_secret.txt",
           "/api/files/output/link.png",
           "/api/files/output/linkdir/secret.png",
           "/api/files/upload/../user/queue.sqlite3",
           "/api/files/output/missing.png",
           "/api/files/bogus/ok.png"]
    for url in bad:
        resp = await client.get(url)
        assert 400 <= resp.status < 500, url
        assert resp.content_type == "application/json", url


async def test_uploads_are_checked_and_served(client, settings):
    resp = await client.post("/api/uploads", data=upload_form(png_bytes(), "My Pic!.png"))
    body = await resp.json()
    assert resp.status == 201 and body["name"] == "My Pic_.png" and body["width"] == 8
    again = await (await client.post("/api/uploads", data=upload_form(png_bytes(), "My Pic!.png"))).json()
    assert again["name"] == "My Pic_.png"  # same bytes: the same file
    other = await (await client.post("/api/uploads",
                                     data=upload_form(png_bytes(color=(0, 0, 9)), "My Pic!.png"))).json()
    assert other["name"] == "My Pic__1.png"
    served = await client.get(f"/api/files/upload/{body['name']}")
    assert served.status == 200 and await served.read() == png_bytes()
    # a JPEG named .png is stored under its real extension; paths in names are dropped
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="JPEG")
    renamed = await (await client.post("/api/uploads", data=upload_form(buf.getvalue(),
                                                                        "../../evil.png"))).json()
    assert renamed["name"] == "evil.jpg" and (settings.inputs / "evil.jpg").is_file()
    nodes_listing = sorted(p.name for p in settings.inputs.iterdir())
    assert nodes_listing == ["My Pic_.png", "My Pic__1.png", "evil.jpg"]


async def test_bad_uploads_are_refused(make_client, settings):
    client = await make_client(ServerConfig(max_upload_mb=0.05, max_image_pixels=100 * 100))
    cases = [
        (upload_form(b"this is not an image", "x.png"), 415, "not an image"),
        (upload_form(png_bytes()[:40], "cut.png"), 415, "decode"),
        (upload_form(png_bytes(101, 100), "big.png"), 413, "pixels"),
        (upload_form(os.urandom(80_000), "huge.png"), 413, "limit"),
    ]
    for form, status, words in cases:
        resp = await client.post("/api/uploads", data=form)
        body = await resp.json()
        assert resp.status == status, body
        assert words in body["error"], body
    resp = await client.post("/api/uploads", json={"image": "x"})
    assert resp.status == 415
    form = FormData(default_to_multipart=True)
    form.add_field("note", "no file here")
    resp = await client.post("/api/uploads", data=form)
    assert resp.status == 400 and "no file" in (await resp.json())["error"]
    assert not settings.inputs.exists() or list(settings.inputs.iterdir()) == []


async def test_json_bodies_are_capped(make_client):
    client = await make_client(ServerConfig(max_body_mb=0.01))
    big = add_show()
    big["meta"] = {"notes": "x" * 20_000}
    resp = await client.post("/api/runs", json=big)
    assert resp.status == 413 and "limit" in (await resp.json())["error"]
    resp = await client.put("/api/workflows/big", json=big)
    assert resp.status == 413
    assert (await client.post("/api/runs", json=add_show())).status == 201  # still serving
