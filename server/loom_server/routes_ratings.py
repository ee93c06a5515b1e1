"""Human ratings: 1–5 scores on realism, prompt alignment and aesthetics, and blind A/B
choices; listed as JSON or CSV and summarised per sweep cell (mean with a 95 % interval)
and as a Bradley–Terry ranking of the A/B choices."""
from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
from collections import defaultdict
from typing import Any, Callable

from aiohttp import web

from .ratings_store import CRITERIA
from .security import ApiError, parse_json_body, read_body
from .state import CONFIG, STORE, WORKER

routes = web.RouteTableDef()
RATER = re.compile(r"[\w][\w .@'+-]{0,39}")  # letters/digits first, 1–40 characters
MAX_IMAGE_INDEX = 4095
BODY_LIMIT = 64 * 1024


def _bad(field: str, value: Any, wanted: str) -> ApiError:
    shown = json.dumps(value, default=str)
    return ApiError(400, f"\"{field}\" {wanted}, got {shown[:80]}", field=field)


def _rater(body: dict[str, Any]) -> str:
    value = body.get("rater")
    if not isinstance(value, str) or not RATER.fullmatch(value.strip()):
        raise _bad("rater", value, "must be a name of 1–40 letters, digits, spaces or . @ ' + - _ "
                                   "(starting with a letter or digit)")
    return value.strip()


def _criterion(body: dict[str, Any]) -> str:
    value = body.get("criterion")
    if value not in CRITERIA:
        raise _bad("criterion", value, f"must be one of {', '.join(CRITERIA)}")
    return value  # type: ignore[no-any-return]


def _workflow_hash(workflow: dict[str, Any]) -> str:
    """What the graph computes (types, versions, inputs), not where its nodes sit on the canvas."""
    nodes = workflow.get("nodes") or {}
    core = {nid: {k: e.get(k) for k in ("type", "version", "inputs")}
            for nid, e in nodes.items() if isinstance(e, dict)}
    text = json.dumps(core, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _image_ref(request: web.Request, ref: Any, prefix: str) -> dict[str, Any]:
    """Check one image reference {run, node, image_index} against the stored run."""
    if not isinstance(ref, dict):
        raise _bad(prefix or "body", ref, "must be an object {run, node, image_index}")
    name = (prefix + ".") if prefix else ""
    run_id = ref.get("run", ref.get("run_id"))
    if not isinstance(run_id, str) or not run_id:
        raise _bad(f"{name}run", run_id, "must be a run id")
    run = request.app[STORE].get(run_id)
    if run is None:
        raise ApiError(404, f"no run with id {run_id!r}", field=f"{name}run")
    if run["status"] != "finished":
        raise _bad(f"{name}run", run_id, f"is {run['status']}; only the images of finished runs can be rated")
    node = ref.get("node")
    nodes = run["workflow"].get("nodes") or {}
    if not isinstance(node, str) or node not in nodes:
        raise _bad(f"{name}node", node, f"must be a node of run {run_id}")
    index = ref.get("image_index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_IMAGE_INDEX:
        raise _bad(f"{name}image_index", index, f"must be an integer from 0 to {MAX_IMAGE_INDEX}")
    shown = (((run.get("result") or {}).get("ui") or {}).get(node) or {}).get("images")
    if isinstance(shown, list) and shown and index >= len(shown):
        raise _bad(f"{name}image_index", index, f"is past the {len(shown)} image(s) node {node!r} made")
    sweep = run.get("sweep") or {}
    return {"run_id": run_id, "node": node, "image_index": index, "run": run,
            "sweep_id": sweep.get("id"), "cell": sweep.get("cell")}


def _add(request: web.Request, data: bytes) -> dict[str, Any]:
    body = parse_json_body(data)
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(body).__name__}")
    rater, criterion = _rater(body), _criterion(body)
    store = request.app[STORE]
    if "a" in body or "b" in body or "winner" in body:  # an A/B choice
        winner = body.get("winner")
        if winner not in ("a", "b"):
            raise _bad("winner", winner, "must be \"a\" or \"b\"")
        a, b = _image_ref(request, body.get("a"), "a"), _image_ref(request, body.get("b"), "b")
        if (a["run_id"], a["node"], a["image_index"]) == (b["run_id"], b["node"], b["image_index"]):
            raise _bad("b", body.get("b"), "must be a different image from \"a\"")
        sweep_id = a["sweep_id"] if a["sweep_id"] == b["sweep_id"] else None
        return {"kind": "choice", **store.ratings.add_choice(a=a, b=b, sweep_id=sweep_id, winner=winner,
                                                             rater=rater, criterion=criterion)}
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise _bad("score", score, "must be an integer from 1 to 5")
    ref = _image_ref(request, body, "")
    from loom.sweeps import literal_seeds
    registry = request.app[WORKER].registry
    seeds = literal_seeds(ref["run"]["workflow"], registry) if registry is not None else {}
    row = store.ratings.add_score(run_id=ref["run_id"], node=ref["node"], image_index=ref["image_index"],
                                  workflow_hash=_workflow_hash(ref["run"]["workflow"]),
                                  sweep_id=ref["sweep_id"], cell=ref["cell"], seeds=seeds, rater=rater,
                                  criterion=criterion, score=score)
    return {"kind": "score", **row}


async def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


@routes.post("/api/ratings")
async def add_rating(request: web.Request) -> web.Response:
    """Store a 1–5 score {run, node, image_index, criterion, score, rater} or an A/B choice
    {a: {run, node, image_index}, b: {...}, winner: "a"|"b", criterion, rater}; committed
    before the 201."""
    data = await read_body(request, min(BODY_LIMIT, request.app[CONFIG].body_limit))
    return web.json_response(await _off_loop(_add, request, data), status=201)


def _query(request: web.Request) -> dict[str, str | None]:
    return {k: request.query.get(k) or None for k in ("run", "sweep", "rater")}


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def _flat_choice(c: dict[str, Any]) -> dict[str, Any]:
    out = {"id": c["id"]}
    for side in ("a", "b"):
        out.update({f"{side}_{k}": v for k, v in c[side].items()})
    out.update({k: c[k] for k in ("sweep", "winner", "rater", "criterion", "created")})
    return out


@routes.get("/api/ratings")
async def list_ratings(request: web.Request) -> web.Response:
    """Scores and A/B choices, oldest first (?run=&sweep=&rater=); ?format=csv gives the scores
    as CSV (&kind=choices the choices)."""
    fmt, kind = request.query.get("format", "json"), request.query.get("kind", "scores")
    if fmt not in ("json", "csv"):
        raise ApiError(400, f"?format={fmt!r}: use json or csv")
    if kind not in ("scores", "choices"):
        raise ApiError(400, f"?kind={kind!r}: use scores or choices")
    store, q = request.app[STORE], _query(request)
    if fmt == "csv":
        if kind == "choices":
            rows = [_flat_choice(c) for c in await _off_loop(lambda: store.ratings.choices(**q))]
        else:
            rows = [{**r, "seeds": json.dumps(r["seeds"], sort_keys=True)}
                    for r in await _off_loop(lambda: store.ratings.scores(**q))]
        return web.Response(text=_csv(rows), content_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="ratings-{kind}.csv"'})
    scores, choices = await _off_loop(lambda: (store.ratings.scores(**q), store.ratings.choices(**q)))
    return web.json_response({"ratings": scores, "choices": choices})


def _interval(iv: Any) -> dict[str, Any]:
    return iv.to_dict()  # type: ignore[no-any-return]  # low/high None below 2 ratings


def _summary(request: web.Request) -> dict[str, Any]:
    from loom.rating_stats import bradley_terry, mean_interval
    store = request.app[STORE]
    sweep_id = request.query.get("sweep") or None
    info = store.get_sweep(sweep_id) if sweep_id else None
    if sweep_id and info is None:
        raise ApiError(404, f"no sweep with id {sweep_id!r}")
    by = "cell" if sweep_id else "run"
    groups: dict[Any, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in store.ratings.scores(sweep=sweep_id, rater=request.query.get("rater") or None):
        groups[r[by]][r["criterion"]].append(float(r["score"]))
    cells = {run["sweep"]["cell"]: run for run in info["runs"]} if info else {}
    out_groups = []
    for key in sorted(groups, key=lambda k: (k is None, str(k) if by == "run" else k or 0)):
        entry: dict[str, Any] = {by: key}
        if by == "cell" and key in cells:
            entry.update({"values": cells[key]["sweep"]["values"], "run": cells[key]["id"]})
        entry["criteria"] = {c: _interval(mean_interval(v)) for c, v in groups[key].items()}
        out_groups.append(entry)
    bt: dict[str, Any] = {}
    for crit in CRITERIA:
        choices = [c for c in store.ratings.choices(sweep=sweep_id) if c["criterion"] == crit]
        if not choices:
            continue
        ref = lambda s: f"{s['run']}/{s['node']}/{s['image_index']}"  # noqa: E731
        sides = {ref(c[s]): c[s] for c in choices for s in ("a", "b")}
        pairs = [(ref(c[c["winner"]]), ref(c["b" if c["winner"] == "a" else "a"])) for c in choices]
        strengths = bradley_terry(pairs)
        ranked = sorted(strengths.items(), key=lambda kv: -kv[1])
        bt[crit] = {"choices": len(choices), "images": [
            {**sides[k], "strength": v, "rank": i + 1} for i, (k, v) in enumerate(ranked)]}
        cell_pairs = [(c[c["winner"]]["cell"], c["b" if c["winner"] == "a" else "a"]["cell"]) for c in choices]
        cell_pairs = [(str(w), str(l)) for w, l in cell_pairs if w is not None and l is not None and w != l]
        if sweep_id and cell_pairs:
            cs = sorted(bradley_terry(cell_pairs).items(), key=lambda kv: -kv[1])
            bt[crit]["cells"] = [{"cell": int(k), "strength": v, "rank": i + 1} for i, (k, v) in enumerate(cs)]
    return {"sweep": sweep_id, "by": by, "groups": out_groups, "bradley_terry": bt}


@routes.get("/api/ratings/summary")
async def ratings_summary(request: web.Request) -> web.Response:
    """Per sweep cell (?sweep=) or per run: the mean score with its 95 % interval per criterion,
    and per criterion a Bradley–Terry ranking of the A/B choices (images, and cells)."""
    return web.json_response(await _off_loop(_summary, request))
