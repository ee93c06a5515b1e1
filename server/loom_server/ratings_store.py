"""Human ratings in the queue's SQLite database: 1–5 scores and A/B choices.

``QueueStore`` creates the tables (it owns every table) and hands its connection and lock
to a ``RatingStore`` (``store.ratings``). Every write is one autocommitted INSERT under the
lock, so it is on disk before the HTTP response and concurrent raters never overwrite
each other.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Any

CRITERIA = ("realism", "alignment", "aesthetic")
MAX_ROWS = 100_000  # one GET returns at most this many rows

_RATING_COLUMNS = ("id", "run_id", "node", "image_index", "workflow_hash", "sweep_id", "cell", "seeds",
                   "rater", "criterion", "score", "created")
_CHOICE_COLUMNS = ("id", "a_run", "a_node", "a_index", "a_cell", "b_run", "b_node", "b_index", "b_cell",
                   "sweep_id", "winner", "rater", "criterion", "created")


class RatingStore:
    """Scores and A/B choices on the queue's connection (``lock`` serialises every use)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db, self._lock = db, lock

    def add_score(self, *, run_id: str, node: str, image_index: int, workflow_hash: str,
                  sweep_id: str | None, cell: int | None, seeds: dict[str, int], rater: str,
                  criterion: str, score: int) -> dict[str, Any]:
        """Store one 1–5 score; the stored row."""
        row = {"run_id": run_id, "node": node, "image_index": image_index, "workflow_hash": workflow_hash,
               "sweep_id": sweep_id, "cell": cell, "seeds": json.dumps(seeds, sort_keys=True),
               "rater": rater, "criterion": criterion, "score": score, "created": time.time()}
        with self._lock:
            cur = self._db.execute(f"INSERT INTO ratings ({', '.join(row)}) VALUES "
                                   f"({', '.join('?' * len(row))})", tuple(row.values()))
        return _score_out({"id": cur.lastrowid, **row})

    def add_choice(self, *, a: dict[str, Any], b: dict[str, Any], sweep_id: str | None, winner: str,
                   rater: str, criterion: str) -> dict[str, Any]:
        """Store one A/B choice (``a``/``b``: run_id, node, image_index, cell); the stored row."""
        row = {"a_run": a["run_id"], "a_node": a["node"], "a_index": a["image_index"], "a_cell": a.get("cell"),
               "b_run": b["run_id"], "b_node": b["node"], "b_index": b["image_index"], "b_cell": b.get("cell"),
               "sweep_id": sweep_id, "winner": winner, "rater": rater, "criterion": criterion,
               "created": time.time()}
        with self._lock:
            cur = self._db.execute(f"INSERT INTO choices ({', '.join(row)}) VALUES "
                                   f"({', '.join('?' * len(row))})", tuple(row.values()))
        return _choice_out({"id": cur.lastrowid, **row})

    def scores(self, run: str | None = None, sweep: str | None = None,
               rater: str | None = None) -> list[dict[str, Any]]:
        """Scores, oldest first, narrowed by run, sweep and rater."""
        where, args = _filters({"run_id": run, "sweep_id": sweep, "rater": rater})
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_RATING_COLUMNS)} FROM ratings{where} "
                                    "ORDER BY id LIMIT ?", (*args, MAX_ROWS)).fetchall()
        return [_score_out(dict(zip(_RATING_COLUMNS, r))) for r in rows]

    def choices(self, run: str | None = None, sweep: str | None = None,
                rater: str | None = None) -> list[dict[str, Any]]:
        """A/B choices, oldest first; ``run`` matches either side."""
        where, args = _filters({"sweep_id": sweep, "rater": rater})
        if run is not None:
            where += (" AND" if where else " WHERE") + " (a_run = ? OR b_run = ?)"
            args += [run, run]
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_CHOICE_COLUMNS)} FROM choices{where} "
                                    "ORDER BY id LIMIT ?", (*args, MAX_ROWS)).fetchall()
        return [_choice_out(dict(zip(_CHOICE_COLUMNS, r))) for r in rows]


def _filters(fields: dict[str, str | None]) -> tuple[str, list[Any]]:
    chosen = {k: v for k, v in fields.items() if v is not None}
    if not chosen:
        return "", []
    return " WHERE " + " AND ".join(f"{k} = ?" for k in chosen), list(chosen.values())


def _score_out(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["run"] = out.pop("run_id")
    out["sweep"] = out.pop("sweep_id")
    out["seeds"] = json.loads(out["seeds"]) if isinstance(out["seeds"], str) else out["seeds"]
    return out


def _choice_out(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"],
            "a": {"run": row["a_run"], "node": row["a_node"], "image_index": row["a_index"],
                  "cell": row["a_cell"]},
            "b": {"run": row["b_run"], "node": row["b_node"], "image_index": row["b_index"],
                  "cell": row["b_cell"]},
            "sweep": row["sweep_id"], "winner": row["winner"], "rater": row["rater"],
            "criterion": row["criterion"], "created": row["created"]}
