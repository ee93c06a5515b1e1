"""The OpenAPI 3.1 document of /api (a test checks it against the router)."""
from __future__ import annotations

from typing import Any

from .events import EVENT_TYPES
from .queue_store import STATUSES

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ERROR, description)


def _param(name: str, where: str, description: str, schema: dict[str, Any] | None = None,
           required: bool | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "description": description,
            "required": where == "path" if required is None else required,
            "schema": schema or {"type": "string"}}


def _op(summary: str, responses: dict[str, Any], params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, tag: str = "api") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


_RUN_ID = _param("id", "path", "run id")
_WF_NAME = _param("name", "path", "workflow name (letters, digits, space, _ - .)")
_ANY_OBJ = {"type": "object"}
_WORKFLOW_BODY = {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Workflow"}}}}


def _paths() -> dict[str, Any]:
    status_q = _param("status", "query", "comma-separated statuses", required=False)
    return {
        "/api/nodes": {"get": _op("Every node schema", {
            "200": _json({"type": "array", "items": {"$ref": "#/components/schemas/NodeSchema"}}),
            "503": _err("the registry failed to load")}, tag="nodes")},
        "/api/runs": {
            "post": _op("Validate and queue a workflow (top-level \"front\": true queues it first); "
                        "a workflow with \"sweeps\" queues one run per cell", {
                "201": _json({"type": "object", "properties": {
                    "id": {"type": "string", "description": "the (first) run"},
                    "position": {"type": "integer"},
                    "count": {"type": "integer", "description": "runs queued (cells of a sweep)"},
                    "sweep": {"type": "string", "description": "sweeps only: the sweep id"},
                    "runs": {"type": "array", "items": {"type": "string"},
                             "description": "sweeps only: run ids in cell order"}}}, "queued"),
                "400": _json({"$ref": "#/components/schemas/ValidationFailure"}, "invalid"),
                "422": _json({"$ref": "#/components/schemas/ValidationFailure"},
                             "a sweep cell is invalid (problems name cell, values, node, input, value); "
                             "nothing queued"),
                "413": _err("body too large")}, body=_WORKFLOW_BODY, tag="runs"),
            "get": _op("Queue and history, newest first, paged", {
                "200": _json({"$ref": "#/components/schemas/RunPage"}),
                "400": _err("bad query")}, params=[
                status_q,
                _param("limit", "query", "page size (1-500, default 50)", {"type": "integer"},
                       required=False),
                _param("before", "query", "the \"next\" value of the previous page",
                       required=False)], tag="runs"),
            "delete": _op("Delete history entries (final statuses only)", {
                "200": _json({"type": "object", "properties": {"deleted": {"type": "integer"}}}),
                "400": _err("bad status")}, params=[status_q], tag="runs")},
        "/api/runs/{id}": {
            "get": _op("One run: status, workflow, error, result", {
                "200": _json({"$ref": "#/components/schemas/Run"}), "404": _err("unknown run")},
                params=[_RUN_ID], tag="runs"),
            "delete": _op("Cancel a queued run, interrupt the running one, or delete a finished one", {
                "200": _json(_ANY_OBJ, "cancelled or deleted"),
                "202": _json(_ANY_OBJ, "interrupt requested"),
                "404": _err("unknown run")}, params=[_RUN_ID], tag="runs")},
        "/api/interrupt": {"post": _op("Interrupt whatever runs now", {
            "200": _json({"type": "object", "properties": {
                "interrupted": {"type": ["string", "null"]}}})}, tag="runs")},
        "/api/files/{kind}/{path}": {"get": _op("An output, upload or preview file", {
            "200": {"description": "the file", "content": {"image/*": {}}},
            "400": _err("bad path"), "403": _err("outside its folder"),
            "404": _err("no such file")}, params=[
            _param("kind", "path", "file kind", {"type": "string", "enum": ["output", "upload",
                                                                            "preview"]}),
            _param("path", "path", "relative path inside that folder")], tag="files")},
        "/api/uploads": {"post": _op("Upload an image (multipart field \"image\")", {
            "201": _json({"type": "object", "properties": {
                "name": {"type": "string"}, "width": {"type": "integer"},
                "height": {"type": "integer"}, "format": {"type": "string"}}}, "stored"),
            "400": _err("no file"), "413": _err("too large"), "415": _err("not an image")},
            body={"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "overwrite": {"type": "boolean"}}}}}}, tag="files")},
        "/api/workflows": {"get": _op("Saved workflows and examples", {
            "200": _json({"type": "object", "properties": {"workflows": {"type": "array", "items": {
                "type": "object", "properties": {
                    "name": {"type": "string"}, "source": {"enum": ["saved", "example"]},
                    "title": {"type": ["string", "null"]}, "modified": {"type": "number"},
                    "subgraph": {"type": "boolean"}}}}}})},
            tag="workflows")},
        "/api/workflows/{name}": {
            "get": _op("One workflow (saved wins over example; ?source= picks)", {
                "200": _json({"$ref": "#/components/schemas/Workflow"}),
                "404": _err("unknown workflow")}, params=[
                _WF_NAME, _param("source", "query", "saved or example", required=False)],
                tag="workflows"),
            "put": _op("Save a workflow in the user folder", {
                "200": _json(_ANY_OBJ, "replaced"), "201": _json(_ANY_OBJ, "created"),
                "400": _err("bad name or not a workflow")}, params=[_WF_NAME],
                body=_WORKFLOW_BODY, tag="workflows"),
            "delete": _op("Delete a saved workflow", {
                "200": _json(_ANY_OBJ), "404": _err("no such saved workflow")},
                params=[_WF_NAME], tag="workflows")},
        "/api/settings": {
            "get": _op("The canvas settings kept in <home>/user/settings.json", {
                "200": _json({"$ref": "#/components/schemas/Settings"})}, tag="settings"),
            "put": _op("Replace the canvas settings (known keys and value types only)", {
                "200": _json({"$ref": "#/components/schemas/Settings"}),
                "400": _err("unknown key or wrong value type"), "413": _err("body too large")},
                body={"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Settings"}}}}, tag="settings")},
        "/api/models": {"get": _op("Model files per kind with sizes and short hashes", {
            "200": _json(_ANY_OBJ), "400": _err("unknown kind")},
            params=[_param("kind", "query", "comma-separated kinds", required=False)],
            tag="system")},
        "/api/system": {"get": _op("Versions, device, memory, loaded models, plugin errors", {
            "200": _json(_ANY_OBJ)}, tag="system")},
        "/api/convert": {"post": _op(
            "Convert another program's workflow (ComfyUI JSON or PNG) into a Loom workflow", {
                "200": _json({"type": "object", "properties": {
                    "workflow": {"$ref": "#/components/schemas/Workflow"},
                    "report": _ANY_OBJ}}, "converted, with the importer's report"),
                "400": _err("unreadable, or no importer recognises it (also carries a report)"),
                "413": _err("body too large")},
            body={"required": True, "content": {
                "application/json": {"schema": _ANY_OBJ},
                "image/png": {"schema": {"type": "string", "format": "binary"}}}},
            tag="workflows")},
        "/api/openapi.json": {"get": _op("This document", {"200": _json(_ANY_OBJ)}, tag="system")},
        "/api/events": {"get": _op(
            "WebSocket of run events (JSON text frames, see components.schemas.Event)", {
                "101": {"description": "switching to WebSocket"},
                "400": _err("not a WebSocket request")}, tag="runs")},
    }


def _eval_paths() -> dict[str, Any]:
    """Sweeps and human ratings."""
    sid = _param("id", "path", "sweep id")
    png = {"description": "PNG image", "content": {"image/png": {}}}
    csv = {"description": "CSV text", "content": {"text/csv": {}}}
    axis = lambda n, d: _param(n, "query", d, required=False)  # noqa: E731
    filters = [axis("run", "only this run"), axis("sweep", "only this sweep"), axis("rater", "only this rater")]
    return {
        "/api/sweeps/{id}": {"get": _op("A sweep: mode, axes, and per cell its values, run, status, images", {
            "200": _json(_ANY_OBJ), "404": _err("unknown sweep")}, params=[sid], tag="sweeps")},
        "/api/sweeps/{id}/table": {"get": _op(
            "Per cell: values, status, time, seeds, metrics, human means; rank correlations", {
                "200": _json(_ANY_OBJ), "404": _err("unknown sweep")}, params=[sid], tag="sweeps")},
        "/api/sweeps/{id}/table.csv": {"get": _op("The sweep table as CSV", {
            "200": csv, "404": _err("unknown sweep")}, params=[sid], tag="sweeps")},
        "/api/sweeps/{id}/grid.png": {"get": _op("The cells' images as one labelled grid", {
            "200": png, "400": _err("not a swept input or no such page"), "404": _err("unknown sweep")},
            params=[sid, axis("x", "axis key across"), axis("y", "axis key down"),
                    axis("page", "axis key of pages"), axis("n", "page number from 0")], tag="sweeps")},
        "/api/sweeps/{id}/plot.png": {"get": _op("A metric against a swept value, a line per series", {
            "200": png, "400": _err("not a swept input or metric"), "404": _err("unknown sweep")},
            params=[sid, axis("x", "axis key"), axis("metric", "table column"),
                    axis("series", "axis key: one line per value")], tag="sweeps")},
        "/api/ratings": {
            "post": _op("Store a 1-5 score or an A/B choice (committed before the answer)", {
                "201": _json(_ANY_OBJ, "stored"), "400": _err("a bad field (named in \"field\")"),
                "404": _err("unknown run")}, body={"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Rating"}}}}, tag="ratings"),
            "get": _op("Scores and A/B choices (?format=csv&kind=scores|choices)", {
                "200": _json({"type": "object", "properties": {
                    "ratings": {"type": "array"}, "choices": {"type": "array"}}}),
                "400": _err("bad format or kind")},
                params=[*filters, axis("format", "json or csv"), axis("kind", "csv: scores or choices")],
                tag="ratings")},
        "/api/ratings/summary": {"get": _op(
            "Mean score with a 95 % interval per cell (or run) and criterion; Bradley-Terry ranking", {
                "200": _json(_ANY_OBJ), "404": _err("unknown sweep")},
            params=[axis("sweep", "group by this sweep's cells"), axis("rater", "only this rater")],
            tag="ratings")},
    }


def _components() -> dict[str, Any]:
    problem = {"type": "object", "properties": {
        "node": {"type": ["string", "null"]}, "input": {"type": ["string", "null"]},
        "code": {"type": "string"}, "message": {"type": "string"}}}
    run = {"type": "object", "properties": {
        "id": {"type": "string"}, "status": {"enum": list(STATUSES)},
        "created": {"type": "number"}, "started": {"type": ["number", "null"]},
        "finished": {"type": ["number", "null"]}, "attempts": {"type": "integer"},
        "title": {"type": ["string", "null"]}, "position": {"type": "integer"},
        "error": {"type": "object"}, "workflow": {"$ref": "#/components/schemas/Workflow"},
        "result": {"type": ["object", "null"]}}}
    return {"schemas": {
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}}},
        "Problem": problem,
        "ValidationFailure": {"type": "object", "properties": {
            "error": {"type": "string"},
            "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}}}},
        "Workflow": {"type": "object", "required": ["nodes"], "properties": {
            "format": {"const": "loom.workflow"}, "version": {"type": "integer"},
            "nodes": {"type": "object"}, "groups": {"type": "array"}, "meta": {"type": "object"},
            "front": {"type": "boolean", "description": "POST /api/runs only: queue first"}}},
        "NodeSchema": {"type": "object", "properties": {
            "id": {"type": "string"}, "title": {"type": "string"}, "category": {"type": "string"},
            "version": {"type": "integer"}, "description": {"type": "string"},
            "output_node": {"type": "boolean"}, "inputs": {"type": "array"},
            "outputs": {"type": "array"}}},
        "Run": run,
        "Rating": {"type": "object", "required": ["criterion", "rater"], "properties": {
            "run": {"type": "string"}, "node": {"type": "string"}, "image_index": {"type": "integer"},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "criterion": {"enum": ["realism", "alignment", "aesthetic"]},
            "rater": {"type": "string", "maxLength": 40},
            "a": {"type": "object"}, "b": {"type": "object"}, "winner": {"enum": ["a", "b"]}}},
        "Settings": {"type": "object", "required": ["settings", "updated"], "properties": {
            "settings": {"type": "object", "additionalProperties": False, "properties": {
                "linkStyle": {"enum": ["spline", "linear", "straight"]},
                "snapToGrid": {"type": "boolean"}, "confirmDelete": {"type": "boolean"},
                "theme": {"enum": ["dark", "light"]}, "minimap": {"type": "boolean"},
                "defaultZoom": {"type": "number", "description": "0 = automatic, else 0.1-4"}}},
            "updated": {"type": ["number", "null"], "description": "seconds since 1970"}}},
        "RunPage": {"type": "object", "properties": {
            "runs": {"type": "array", "items": run}, "next": {"type": ["string", "null"]},
            "queue": {"type": "object"}}},
        "Event": {"type": "object", "required": ["type"], "properties": {
            "type": {"enum": ["hello", "pong", *EVENT_TYPES]}, "run": {"type": "string"},
            "node": {"type": ["string", "null"]}}},
    }, "securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "needed only when the server was started with a token"},
        "cookie": {"type": "apiKey", "in": "cookie", "name": "loom_token"}}}


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    return {"openapi": "3.1.0",
            "info": {"title": "Loom API", "version": "1",
                     "description": "Queue workflows, follow them live, fetch results."},
            "paths": {**_paths(), **_eval_paths()}, "components": _components(),
            "security": [{}, {"bearer": []}, {"cookie": []}]}
