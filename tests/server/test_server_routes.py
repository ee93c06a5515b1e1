"""Every read-only route, saved workflows, static files, and the OpenAPI document."""
from __future__ import annotations

import json
import re

from loom import Registry
from loom.plugins import load_folder
from loom.settings import SHIPPED_WORKFLOWS
from loom_server import ServerConfig
from loom_server.routes_files import web_root
from srv_helpers import NODES_DIR, add_show


async def test_nodes_lists_every_schema(client, test_registry):
    resp = await client.get("/api/nodes")
    schemas = await resp.json()
    assert resp.status == 200
    assert {s["id"] for s in schemas} == {s.id for s in test_registry}
    count = next(s for s in schemas if s["id"] == "srv_count")
    steps = next(i for i in count["inputs"] if i["name"] == "steps")
    assert steps == {**steps, "kind": "widget", "default": 3, "min": 0, "max": 100000}
    assert next(s for s in schemas if s["id"] == "srv_show")["output_node"] is True


async def test_system_reports_versions_device_and_plugin_errors(make_client, tmp_path):
    broken = tmp_path / "broken_nodes"
    broken.mkdir()
    (broken / "bad_plugin.py").write_text("raise RuntimeError('this plugin is broken')\n")
    reg = Registry()
    load_folder(reg, NODES_DIR)
    load_folder(reg, broken)
    client = await make_client(registry=reg)
    body = await (await client.get("/api/system")).json()
    assert body["versions"]["torch"] and body["versions"]["python"]
    assert body["device"] == "cpu" and body["dtype"] == "float32"
    assert body["models_loaded"] == []
    assert body["memory"]["process_rss"] > 0
    assert body["cache"]["ram_budget_bytes"] > 0 and body["cache"]["entries"] >= 0
    assert body["nodes"] == len(reg)
    [err] = body["plugin_errors"]
    assert "bad_plugin.py" in err["plugin"] and "this plugin is broken" in err["error"]
    assert (await (await client.get("/api/nodes")).json())  # the others still load


async def test_models_lists_files_per_kind(client, settings):
    folder = settings.home / "models" / "vae"
    folder.mkdir(parents=True)
    (folder / "tiny.safetensors").write_bytes(b"\0" * 100)
    body = await (await client.get("/api/models?kind=vae,gan")).json()
    assert set(body["kinds"]) == {"vae", "gan"}
    [entry] = body["kinds"]["vae"]
    assert entry["name"] == "tiny.safetensors" and entry["size"] == 100 and len(entry["hash"]) == 12
    resp = await client.get("/api/models?kind=bogus")
    assert resp.status == 400 and "bogus" in (await resp.json())["error"]
    assert "checkpoints" in (await (await client.get("/api/models")).json())["kinds"]


async def test_workflows_examples_and_saved(client, settings):
    listing = (await (await client.get("/api/workflows")).json())["workflows"]
    examples = {p.stem for p in SHIPPED_WORKFLOWS.glob("*.json")}
    assert {w["name"] for w in listing if w["source"] == "example"} == examples
    wf = {**add_show(), "meta": {"title": "Adds"}}
    resp = await client.put("/api/workflows/my flow-1", json=wf)
    assert resp.status == 201 and (await resp.json())["name"] == "my flow-1"
    assert (await client.put("/api/workflows/my flow-1.json", json=wf)).status == 200  # replaced
    assert (settings.user / "workflows" / "my flow-1.json").is_file()
    listing = (await (await client.get("/api/workflows")).json())["workflows"]
    assert {"name": "my flow-1", "source": "saved", "title": "Adds"}.items() <= listing[0].items()
    got = await (await client.get("/api/workflows/my flow-1")).json()
    assert got["nodes"] == wf["nodes"] and got["meta"]["title"] == "Adds"
    if examples:
        name = sorted(examples)[0]
        example = await (await client.get(f"/api/workflows/{name}?source=example")).json()
        assert example == json.loads((SHIPPED_WORKFLOWS / f"{name}.json").read_text())
    for bad in ["..", ".hidden", "a%2Fb", "a\\b", "x" * 101]:
        resp = await client.put(f"/api/workflows/{bad}", json=wf)
        assert resp.status in (400, 404), bad
    resp = await client.put("/api/workflows/notwf", json={"nodes": []})
    assert resp.status == 400 and "workflow" in (await resp.json())["error"]
    assert (await client.get("/api/workflows/nope")).status == 404
    assert (await client.get("/api/workflows/x?source=weird")).status == 400
    assert (await client.delete("/api/workflows/my flow-1")).status == 200
    assert (await client.delete("/api/workflows/my flow-1")).status == 404


async def test_web_folder_and_litegraph_are_served(client):
    root = web_root_of(client)
    if (root / "index.html").is_file():
        resp = await client.get("/")
        assert resp.status == 200 and "html" in resp.content_type
    lg = root / "node_modules" / "@comfyorg" / "litegraph" / "dist" / "litegraph.es.js"
    if lg.is_file():
        resp = await client.get("/vendor/litegraph/litegraph.es.js")
        assert resp.status == 200 and "javascript" in resp.content_type
    for url in ["/node_modules/@comfyorg/litegraph/package.json", "/.npmrc",
                "/vendor/litegraph/..%2F..%2F..%2F..%2Fpackage.json", "/nope.js"]:
        assert (await client.get(url)).status in (400, 404), url


async def test_index_falls_back_to_a_node_list(make_client, tmp_path):
    empty = tmp_path / "web"
    (empty / "js").mkdir(parents=True)
    (empty / "js" / "app.js").write_text("export const x = 1;\n")
    client = await make_client(ServerConfig(web_dir=empty))
    resp = await client.get("/")
    text = await resp.text()
    assert resp.status == 200 and "srv_count" in text and "<table>" in text
    resp = await client.get("/js/app.js")
    assert resp.status == 200 and "javascript" in resp.content_type


def web_root_of(client) -> "object":
    from pathlib import Path

    class _Req:
        app = client.app
    return Path(web_root(_Req()))  # type: ignore[arg-type]


def _router_api_routes(app) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if not path.startswith("/api/") or route.method == "HEAD":
            continue
        found.add((route.method.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
    return found


async def test_openapi_matches_the_routes(client):
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == _router_api_routes(client.app)
    for path, ops in doc["paths"].items():
        params = set(re.findall(r"\{(\w+)\}", path))
        for method, op in ops.items():
            assert op["summary"] and op["responses"], (method, path)
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == params, (method, path)
            text = json.dumps(op)
            for ref in re.findall(r'"#/components/schemas/(\w+)"', text):
                assert ref in doc["components"]["schemas"], ref
