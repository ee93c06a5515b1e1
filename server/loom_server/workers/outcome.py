"""How a run ended, as data: shared by the thread worker and the Ray actors.

``execute`` runs one workflow on an executor and turns every way it can end into an
``Outcome``: what to store (status, result, error) and which terminal event to publish after
storing it. The worker that owns the queue does the storing, so the rule "store first, then
tell the clients" holds wherever the run executed."""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..events import jsonable

if TYPE_CHECKING:
    from loom import Executor

    from .observer import ForwardingObserver

log = logging.getLogger("loom_server.worker")

REQUEUE = "requeue"  # not a stored status: the run goes back to the queue (shutdown cut it off)


@dataclass
class Outcome:
    """The end of one run: ``status`` is a final status or ``REQUEUE``."""

    status: str
    event: dict[str, Any]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    before: list[dict[str, Any]] = field(default_factory=list)  # published before storing

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (it crosses process boundaries)."""
        return {"status": self.status, "event": self.event, "result": self.result,
                "error": self.error, "before": self.before}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Outcome":
        """The inverse of ``to_dict``."""
        return cls(data["status"], data["event"], data.get("result"), data.get("error"),
                   list(data.get("before") or ()))


def _scalars(work: Any, result: Any) -> dict[str, float]:
    """The run's metric values by ``<node>.<output>`` (what sweep tables show), as the CLI names them."""
    from loom.sweep_results import scalars_of
    steps = getattr(work, "steps", None)
    if not steps:
        return {}
    return scalars_of({nid: step.spec for nid, step in steps.items()}, result.outputs)


def execute(executor: "Executor", work: Any, obs: "ForwardingObserver", run_id: str,
            stopping: Callable[[], bool], document: Callable[[], dict[str, Any] | None]) -> Outcome:
    """Run ``work`` (a Plan or a workflow dict) and describe how it ended; never raises.

    ``stopping`` says whether the server is shutting down (an interrupt then means
    "queue it again"); ``document`` gives the workflow for naming a failed node's type."""
    from loom import Interrupted, NodeError, ValidationError
    try:
        result = executor.run(work, obs, run_id)
        summary = jsonable({"executed": result.executed, "cached": result.cached,
                            "ui": result.ui, "timings": result.timings, "scalars": _scalars(work, result)})
    except ValidationError as exc:
        problems = [p.to_dict() for p in exc.problems]
        return Outcome("failed", error={"node": None, "error_type": "ValidationError",
                                        "message": str(exc), "problems": problems},
                       event={"type": "run.failed", "node": None, "error_type": "ValidationError",
                              "message": str(exc), "problems": problems})
    except NodeError as exc:
        error = {"node": exc.node, "node_type": exc.node_type, "error_type": exc.error_type,
                 "message": exc.message, "traceback": exc.traceback}
        return Outcome("failed", error=error,
                       event={"type": "run.failed", "node": exc.node, "error_type": exc.error_type,
                              "message": exc.message})
    except Interrupted:
        if stopping():
            return Outcome(REQUEUE, event={})
        node = obs.interrupted_at
        return Outcome("interrupted", error={"node": node, "error_type": "Interrupted",
                                             "message": "interrupted by the user"},
                       event={"type": "run.interrupted", "node": node})
    except BaseException as exc:  # noqa: BLE001 - fails the run, never ends the worker
        return unconverted(run_id, _safe(document), obs.running_node, exc)
    finished = {"type": "run.finished", "ui": summary["ui"],
                "counts": {"executed": len(result.executed), "cached": len(result.cached)}}
    return Outcome("finished", result=summary, event=finished)


def unconverted(run_id: str, workflow: dict[str, Any] | None, node: str | None,
                exc: BaseException) -> Outcome:
    """Fail a run ended by what the executor did not turn into a NodeError.

    That is any BaseException (a node's ``SystemExit`` or ``KeyboardInterrupt`` would
    otherwise end the worker, leaving the run 'running' and the queue stalled) or a bug.
    ``node`` is the node that had started and not finished, when there is one."""
    error_type = type(exc).__name__
    message = f"raised {error_type}: {exc}" if str(exc) else f"raised {error_type}"
    log.error("run %s failed %s: %s", run_id, f"in node {node}" if node else "outside any node",
              message, exc_info=exc)
    nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
    entry = nodes.get(node) if isinstance(nodes, dict) and node is not None else None
    node_type = entry.get("type") if isinstance(entry, dict) else None
    before = []
    if node is not None:
        before.append({"type": "node.failed", "run": run_id, "node": node,
                       "error_type": error_type, "message": message})
    return Outcome("failed", before=before,
                   error={"node": node, "node_type": node_type, "error_type": error_type,
                          "message": message, "traceback": "".join(traceback.format_exception(exc))},
                   event={"type": "run.failed", "node": node, "error_type": error_type,
                          "message": message})


def _safe(document: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    try:
        return document()
    except Exception:  # noqa: BLE001 - a damaged stored row: report the run without node types
        return None
