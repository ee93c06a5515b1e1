"""The persistent queue and history of runs (stdlib sqlite3, WAL, one connection + a lock)."""
from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from loom.workflow import parse_json

STATUSES = ("queued", "running", "finished", "failed", "interrupted", "cancelled")
TERMINAL = ("finished", "failed", "interrupted", "cancelled")
SCHEMA_VERSION = 2  # 2: sweeps, ratings, choices; runs.sweep_*
MAX_ATTEMPTS = 3  # a run that was cut off this many times (it may crash the server) fails

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    status TEXT NOT NULL,
    ord INTEGER NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    title TEXT,
    workflow TEXT NOT NULL,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_queue ON runs(status, ord);
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY, created REAL NOT NULL, mode TEXT NOT NULL, axes TEXT NOT NULL,
    cells INTEGER NOT NULL, title TEXT, workflow TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL, node TEXT NOT NULL, image_index INTEGER NOT NULL,
    workflow_hash TEXT NOT NULL, sweep_id TEXT, cell INTEGER, seeds TEXT NOT NULL, rater TEXT NOT NULL,
    criterion TEXT NOT NULL CHECK (criterion IN ('realism', 'alignment', 'aesthetic')),
    score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ratings_run ON ratings(run_id);
CREATE INDEX IF NOT EXISTS ratings_sweep ON ratings(sweep_id, cell);
CREATE TABLE IF NOT EXISTS choices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    a_run TEXT NOT NULL, a_node TEXT NOT NULL, a_index INTEGER NOT NULL, a_cell INTEGER,
    b_run TEXT NOT NULL, b_node TEXT NOT NULL, b_index INTEGER NOT NULL, b_cell INTEGER,
    sweep_id TEXT, winner TEXT NOT NULL CHECK (winner IN ('a', 'b')), rater TEXT NOT NULL,
    criterion TEXT NOT NULL CHECK (criterion IN ('realism', 'alignment', 'aesthetic')),
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS choices_sweep ON choices(sweep_id);
"""
# Columns added after version 1 (ALTER TABLE on an older database; new ones get them too).
_RUN_COLUMNS = {"sweep_id": "TEXT", "sweep_cell": "INTEGER", "sweep_values": "TEXT"}

_SUMMARY = "id, status, ord, created, started, finished, attempts, title, error, sweep_id, sweep_cell, sweep_values"


@dataclass
class ClaimedRun:
    """A run the worker took off the queue; its stored workflow is parsed only when asked for
    (a run queued in this process already has a compiled plan and never needs it)."""

    id: str
    text: str
    attempts: int

    @functools.cached_property
    def workflow(self) -> dict[str, Any]:
        """The stored workflow, parsed (depth-capped like every workflow)."""
        return parse_json(self.text, f"run {self.id}")  # type: ignore[no-any-return]


class QueueStore:
    """Runs in SQLite: a queue ordered by ``ord`` (lower first) and a history by ``seq``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                   timeout=10)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: survives a process crash
            self._db.executescript(_SCHEMA)
            have = {r[1] for r in self._db.execute("PRAGMA table_info(runs)")}
            for name, kind in _RUN_COLUMNS.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
            self._db.execute("CREATE INDEX IF NOT EXISTS runs_sweep ON runs(sweep_id, sweep_cell)")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        from .ratings_store import RatingStore  # ratings and A/B choices: same database, same lock
        self.ratings = RatingStore(self._db, self._lock)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # --- the queue ---------------------------------------------------------------
    def add(self, workflow: dict[str, Any], front: bool = False,
            on_added: Callable[[str, int], None] | None = None) -> tuple[str, int]:
        """Queue a workflow; returns (run id, position) where position 0 runs next.

        ``on_added(run_id, position)`` is called before any worker can claim the run (the
        store's lock is still held): what it announces comes before the run's own events."""
        text = _dump_workflow(workflow)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return self._insert(workflow, text, front, on_added, None)

    def _insert(self, workflow: dict[str, Any], text: str, front: bool,
                on_added: Callable[[str, int], None] | None,
                sweep: tuple[str, int, str] | None) -> tuple[str, int]:
        """Insert one queued run (the caller holds the lock inside a transaction)."""
        run_id = uuid.uuid4().hex[:16]
        meta = workflow.get("meta")
        title = meta.get("title") if isinstance(meta, dict) else None
        if front:
            row = self._db.execute("SELECT MIN(ord) FROM runs WHERE status='queued'").fetchone()
            ord_ = (row[0] if row[0] is not None else 0) - 1
        else:
            row = self._db.execute("SELECT MAX(ord) FROM runs").fetchone()
            ord_ = (row[0] if row[0] is not None else 0) + 1
        sweep_id, cell, values = sweep if sweep is not None else (None, None, None)
        self._db.execute(
            "INSERT INTO runs (id, status, ord, created, title, workflow, sweep_id, sweep_cell, "
            "sweep_values) VALUES (?,?,?,?,?,?,?,?,?)",
            (run_id, "queued", ord_, time.time(), title if isinstance(title, str) else None, text,
             sweep_id, cell, values))
        pos = self._db.execute("SELECT COUNT(*) FROM runs WHERE status='queued' AND ord<?",
                               (ord_,)).fetchone()[0]
        if on_added is not None:
            on_added(run_id, pos)
        return run_id, pos

    # --- sweeps ------------------------------------------------------------------
    def add_sweep(self, sweep_id: str, sweep: dict[str, Any], base: dict[str, Any],
                  cells: list[tuple[int, dict[str, Any], dict[str, Any]]], front: bool = False,
                  on_added: Callable[[str, int, int], None] | None = None) -> list[tuple[str, int]]:
        """Queue every cell of a sweep in one transaction (all or nothing), in cell order:
        [(run id, position)]. ``sweep`` is ``{"mode", "axes"}``; ``cells`` are (index, values,
        workflow); ``on_added(run_id, position, cell)``. With ``front`` the whole sweep goes
        before the queue, still in cell order."""
        meta = base.get("meta")
        title = meta.get("title") if isinstance(meta, dict) else None
        texts = [(i, _json(values), wf, _dump_workflow(wf)) for i, values, wf in cells]
        out = []
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO sweeps (id, created, mode, axes, cells, title, workflow) "
                             "VALUES (?,?,?,?,?,?,?)",
                             (sweep_id, time.time(), sweep["mode"], _json(sweep["axes"]), len(cells),
                              title if isinstance(title, str) else None, _dump_workflow(base)))
            order = reversed(texts) if front else texts  # front: the last cell goes in first
            for i, values, wf, text in order:
                added = (lambda r, p, i=i: on_added(r, p, i)) if on_added is not None else None
                out.append(self._insert(wf, text, front, added, (sweep_id, i, values)))
        return out[::-1] if front else out

    def get_sweep(self, sweep_id: str) -> dict[str, Any] | None:
        """A sweep (mode, axes, base workflow) and its runs in cell order, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM sweeps WHERE id=?", (sweep_id,)).fetchone()
            if row is None:
                return None
            runs = self._db.execute(f"SELECT {_SUMMARY}, result, workflow FROM runs WHERE sweep_id=? "
                                    "ORDER BY sweep_cell", (sweep_id,)).fetchall()
        cells = [{**_summary(r, None), "result": json.loads(r["result"]) if r["result"] else None,
                  "workflow": r["workflow"]} for r in runs]  # the workflow as text: parsed when needed
        return {"id": row["id"], "created": row["created"], "mode": row["mode"],
                "axes": json.loads(row["axes"]), "cells": row["cells"], "title": row["title"],
                "workflow": json.loads(row["workflow"]), "runs": cells}

    def sweep_of(self, run_id: str) -> dict[str, Any] | None:
        """``{"id", "cell", "values"}`` of a run made by a sweep; None otherwise (or unknown)."""
        with self._lock:
            row = self._db.execute("SELECT sweep_id, sweep_cell, sweep_values FROM runs WHERE id=?",
                                   (run_id,)).fetchone()
        return _sweep_field(row) if row is not None else None

    def claim_next(self) -> ClaimedRun | None:
        """Mark the first queued run as running and return it (None when the queue is empty)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT id, workflow, attempts FROM runs WHERE status='queued' "
                                   "ORDER BY ord LIMIT 1").fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE runs SET status='running', started=?, attempts=attempts+1 "
                             "WHERE id=?", (time.time(), row["id"]))
        return ClaimedRun(row["id"], row["workflow"], row["attempts"] + 1)

    def queued_ids(self, limit: int = 64) -> list[str]:
        """The ids of the first ``limit`` queued runs, in queue order (for a dispatcher)."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM runs WHERE status='queued' ORDER BY ord "
                                    "LIMIT ?", (limit,)).fetchall()
        return [r[0] for r in rows]

    def claim(self, run_id: str) -> ClaimedRun | None:
        """Mark one queued run as running and return it (None when it is not queued any more)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT id, workflow, attempts FROM runs WHERE id=? AND "
                                   "status='queued'", (run_id,)).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE runs SET status='running', started=?, attempts=attempts+1 "
                             "WHERE id=?", (time.time(), run_id))
        return ClaimedRun(row["id"], row["workflow"], row["attempts"] + 1)

    def finish(self, run_id: str, status: str, result: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None) -> None:
        """Record how a running run ended."""
        if status not in TERMINAL:
            raise ValueError(f"not a final status: {status!r}")
        with self._lock:
            self._db.execute("UPDATE runs SET status=?, finished=?, result=?, error=? WHERE id=?",
                             (status, time.time(), _dump(result), _dump(error), run_id))

    def requeue(self, run_id: str) -> None:
        """Put a running run back at the front of the queue (shutdown cut it off)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            low = self._db.execute("SELECT MIN(ord) FROM runs WHERE status='queued'").fetchone()[0]
            self._db.execute("UPDATE runs SET status='queued', started=NULL, ord=? WHERE id=?",
                             ((low if low is not None else 0) - 1, run_id))

    def recover(self) -> list[str]:
        """After a crash: every run left 'running' is queued again, first. Returns their ids.

        A run that was already cut off ``MAX_ATTEMPTS`` times fails instead, so a workflow
        that kills the server cannot keep it in a crash loop."""
        with self._lock:
            rows = self._db.execute("SELECT id, attempts FROM runs WHERE status='running' "
                                    "ORDER BY ord DESC").fetchall()
        again = []
        for run_id, attempts in rows:
            if attempts >= MAX_ATTEMPTS:
                self.finish(run_id, "failed", error={
                    "node": None, "error_type": "Crashed",
                    "message": f"the server stopped {attempts} times while running this run"})
            else:
                self.requeue(run_id)
                again.append(run_id)
        return again

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued run; False when it is not queued (any more)."""
        with self._lock:
            cur = self._db.execute("UPDATE runs SET status='cancelled', finished=? "
                                   "WHERE id=? AND status='queued'", (time.time(), run_id))
            return cur.rowcount == 1

    # --- reading -----------------------------------------------------------------
    def status_of(self, run_id: str) -> str | None:
        """The status of a run, or None when there is no such run."""
        with self._lock:
            row = self._db.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
        return row[0] if row else None

    def get(self, run_id: str) -> dict[str, Any] | None:
        """Everything about one run (workflow and result included), or None."""
        with self._lock:
            row = self._db.execute(f"SELECT {_SUMMARY}, workflow, result FROM runs WHERE id=?",
                                   (run_id,)).fetchone()
            if row is None:
                return None
            pos = self._position(row)
        out = _summary(row, pos, full=True)
        out["workflow"] = json.loads(row["workflow"])
        out["result"] = json.loads(row["result"]) if row["result"] else None
        return out

    def get_json(self, run_id: str) -> str | None:
        """``get`` as JSON text, spliced from the stored texts (a 6 MB workflow is neither
        parsed nor encoded again), or None."""
        with self._lock:
            row = self._db.execute(f"SELECT {_SUMMARY}, workflow, result FROM runs WHERE id=?",
                                   (run_id,)).fetchone()
            if row is None:
                return None
            pos = self._position(row)
        head = _json(_summary(row, pos, full=True))
        return f'{head[:-1]},"workflow":{row["workflow"]},"result":{row["result"] or "null"}}}'

    def list(self, statuses: list[str] | None = None, limit: int = 50,
             before: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Runs newest first, ``limit`` at a time; ``before`` is the last id of the previous page.

        Returns (runs, id to pass as ``before`` for the next page or None)."""
        where, args = [], []  # type: ignore[var-annotated]
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        with self._lock:
            if before is not None:
                row = self._db.execute("SELECT seq FROM runs WHERE id=?", (before,)).fetchone()
                if row is None:
                    raise KeyError(before)
                where.append("seq < ?")
                args.append(row[0])
            sql = f"SELECT {_SUMMARY} FROM runs"
            if where:
                sql += " WHERE " + " AND ".join(where)
            rows = self._db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit + 1)).fetchall()
            queued = {r[0]: i for i, r in enumerate(self._db.execute(
                "SELECT id FROM runs WHERE status='queued' ORDER BY ord"))}
        more = len(rows) > limit
        rows = rows[:limit]
        runs = [_summary(r, queued.get(r["id"])) for r in rows]
        return runs, (runs[-1]["id"] if more and runs else None)

    def counts(self) -> dict[str, Any]:
        """How many runs are queued and which one runs now."""
        with self._lock:
            queued = self._db.execute("SELECT COUNT(*) FROM runs WHERE status='queued'").fetchone()[0]
            row = self._db.execute("SELECT id FROM runs WHERE status='running' LIMIT 1").fetchone()
        return {"queued": queued, "running": row[0] if row else None}

    # --- history -----------------------------------------------------------------
    def delete(self, run_id: str) -> bool:
        """Delete a finished/failed/interrupted/cancelled run from the history."""
        with self._lock:
            cur = self._db.execute(f"DELETE FROM runs WHERE id=? AND status IN {TERMINAL}", (run_id,))
            return cur.rowcount == 1

    def clear(self, statuses: list[str] | None = None) -> int:
        """Delete history entries (only final statuses); returns how many."""
        chosen = [s for s in (statuses or TERMINAL) if s in TERMINAL]
        if not chosen:
            return 0
        with self._lock:
            cur = self._db.execute(f"DELETE FROM runs WHERE status IN ({','.join('?' * len(chosen))})",
                                   chosen)
            return cur.rowcount

    def _position(self, row: sqlite3.Row) -> int | None:
        if row["status"] != "queued":
            return None
        return self._db.execute("SELECT COUNT(*) FROM runs WHERE status='queued' AND ord<?",
                                (row["ord"],)).fetchone()[0]


def _dump(value: Any) -> str | None:
    return None if value is None else _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _dump_workflow(workflow: dict[str, Any]) -> str:
    """Compact JSON of a workflow, encoding its nodes one at a time.

    ``json.dumps`` holds the GIL for its whole length (0.25 s for a 5 MB workflow), which
    would stall the event loop; between nodes other threads get their turn."""
    nodes = workflow.get("nodes")
    if not isinstance(nodes, dict) or not all(type(k) is str for k in (*workflow, *nodes)):
        return _json(workflow)  # keys that json.dumps would have to convert
    each = ",".join(f"{_json(k)}:{_json(v)}" for k, v in nodes.items())
    parts = [f"{_json(k)}:{{{each}}}" if k == "nodes" else f"{_json(k)}:{_json(v)}"
             for k, v in workflow.items()]
    return "{" + ",".join(parts) + "}"


def _summary(row: sqlite3.Row, position: int | None, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {k: row[k] for k in ("id", "status", "created", "started", "finished",
                                                "attempts", "title")}
    if position is not None:
        out["position"] = position
    sweep = _sweep_field(row)
    if sweep is not None:
        out["sweep"] = sweep
    if row["error"]:
        err = json.loads(row["error"])
        if not full:
            err = {k: err.get(k) for k in ("node", "error_type", "message")}
        out["error"] = err
    return out


def _sweep_field(row: sqlite3.Row) -> dict[str, Any] | None:
    if row["sweep_id"] is None:
        return None
    values = json.loads(row["sweep_values"]) if row["sweep_values"] else {}
    return {"id": row["sweep_id"], "cell": row["sweep_cell"], "values": values}
