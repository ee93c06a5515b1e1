"""Runs a compiled Plan: skip what is cached, run the rest in order, report events."""
from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

import torch

from .cache import DEFAULT_MAX_ENTRIES, OutputCache, literal_key, node_key
from .context import Context
from .devices import resolve_device, resolve_dtype
from .errors import Interrupted, LoomError, MigrationError, NodeError, UserInputError, ValidationError
from .links import check_value
from .model_manager import ModelManager
from .nodeapi import NodeSpec
from .observer import BaseObserver, Observer
from .plan import Link, Plan, PlanCache, Step, compile_workflow
from .registry import Registry
from .settings import Settings
from .types import type_name
from .validation import convert_value
from .workflow import Workflow

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run did and produced."""

    run_id: str
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    ui: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class Executor:
    """Runs workflows one at a time; keeps an output cache across runs in this process.

    Loaded models and cached outputs share one CPU RAM budget (``Settings.ram_budget_gb``):
    models may use all of it (the least recently used are forgotten beyond it); cached
    outputs get what models leave, but never less than a quarter of it. ``cache_bytes``
    gives the output cache a fixed bound instead; ``cache_size`` is only a safety net on
    the number of entries.
    """

    def __init__(self, registry: Registry | None = None, cache_size: int = DEFAULT_MAX_ENTRIES,
                 cache_bytes: int | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.registry = registry if registry is not None else Registry.default(self.settings)
        self.ram_budget = self.settings.ram_budget_bytes
        self.cache = OutputCache(cache_size, cache_bytes if cache_bytes is not None else self._cache_limit)
        self._interrupt = threading.Event()
        self._lock = threading.Lock()
        self._device: torch.device | None = None
        self._dtype: torch.dtype | None = None
        self._models: ModelManager | None = None
        self.plans = PlanCache()
        self.current_run: str | None = None

    def _cache_limit(self) -> int:
        """Bytes cached outputs may use: the RAM budget less loaded models, at least a quarter of it."""
        models = self._models.ram_bytes if self._models is not None else 0
        return max(self.ram_budget - models, self.ram_budget // 4)

    # --- devices -----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The torch device nodes compute on (resolved on first use)."""
        if self._device is None:
            self._device = resolve_device(self.settings.device)
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype for models (resolved on first use)."""
        if self._dtype is None:
            self._dtype = resolve_dtype(self.settings.precision, self.device)
        return self._dtype

    @property
    def models(self) -> ModelManager:
        """The model manager shared by every run (its models are not counted again by the cache)."""
        if self._models is None:
            budget = None
            if self.settings.vram_budget_gb is not None:
                budget = int(self.settings.vram_budget_gb * (1 << 30))
            models = ModelManager(self.device, self.dtype, budget, ram_budget_bytes=self.ram_budget)
            models.add_listener(self.cache.drop_holding)  # a forgotten model leaves the cache too
            self.cache.owner = models.owner_of
            self._models = models
        return self._models

    def interrupt(self) -> None:
        """Ask the running workflow to stop at its next check (thread-safe)."""
        self._interrupt.set()

    # --- running -----------------------------------------------------------------
    def run(self, workflow: Plan | Workflow | dict[str, Any], observer: Observer | None = None,
            run_id: str | None = None) -> RunResult:
        """Run a Plan (or compile a workflow first); raises ValidationError, NodeError or Interrupted."""
        obs: Observer = observer or BaseObserver()
        run_id = run_id or uuid.uuid4().hex[:12]
        with self._lock:
            self._interrupt.clear()
            self.current_run = run_id
            try:
                return self._run(workflow, obs, run_id)
            finally:
                self.cache.release()  # outputs of this run become evictable again
                self.current_run = None

    def compile(self, workflow: Workflow | dict[str, Any], targets: list[str] | None = None) -> Plan:
        """Compile with this executor's registry and settings (a workflow compiled recently is
        not compiled again: ``PlanCache``); raises ValidationError, or MigrationError when a
        node's migration code fails."""
        key = self.plans.key(workflow, targets)
        plan = self.plans.get(key)
        if plan is not None:
            return plan
        if isinstance(workflow, dict):
            workflow = Workflow.from_dict(workflow, copy_data=False)  # read, never written
        upgraded = self.registry.upgrade(workflow)  # MigrationError names the node whose code failed
        result = compile_workflow(upgraded, self.registry, self.settings, targets, upgraded=True)
        if isinstance(result, list):
            raise ValidationError(result)
        self.plans.put(key, result)
        return result

    def _run(self, workflow: Plan | Workflow | dict[str, Any], obs: Observer, run_id: str) -> RunResult:
        if isinstance(workflow, Plan):
            plan = workflow
            if plan.settings is None:
                raise ValueError("this plan was compiled without settings; compile it to run it")
        else:
            try:
                plan = self.compile(workflow)
            except MigrationError as exc:  # node code failed: that node's failure
                err = _migration_error(exc)
                obs.node_failed(run_id, err.node, err.error_type, err.message, err.traceback)
                obs.run_failed(run_id, err.node, err.error_type, err.message)
                raise err from exc
            except ValidationError as exc:
                obs.run_failed(run_id, None, "ValidationError", "; ".join(map(str, exc.problems)))
                raise
        try:  # a bad --device or --precision fails the run before any node runs
            device, dtype = self.device, self.dtype
        except LoomError as exc:
            obs.run_failed(run_id, None, type(exc).__name__, str(exc))
            raise
        log.debug("run %s on %s in %s", run_id, device, dtype)
        steps = plan.steps
        result = RunResult(run_id)
        run_info: dict[str, Any] = {"run": run_id, "seeds": {}}
        keys: dict[str, str | None] = {}
        values: dict[str, dict[str, Any]] = {}
        uis: dict[str, dict[str, Any]] = {}
        cache = self.cache
        for nid, step in steps.items():  # keys known before running anything
            key = keys[nid] = step.key
            if key is not None:
                hit = cache.get(key)
                if hit is not None:
                    values[nid], uis[nid] = hit
        cache.pin([k for k in keys.values() if k])  # what this workflow needs stays cached
        need: set[str] = set(plan.outputs)
        for nid in reversed(plan.order):  # a cached node does not need its inputs
            if nid in need and nid not in values:
                need.update(lk.node for lk in steps[nid].links)
        run_order = [n for n in plan.order if n in need]
        for nid, step in steps.items():  # every node that made the result records its seeds
            if step.seeds and (nid in values or nid not in need):
                _record_seeds(step, values, run_info)
        to_execute = [n for n in run_order if n not in values]
        obs.run_started(run_id, to_execute, [n for n in run_order if n in values])
        document = plan.document
        current: str | None = None
        grad = torch.no_grad()  # once per run; an optimizing node opens torch.enable_grad()
        grad.__enter__()
        try:
            for nid in run_order:
                current = nid
                if nid in values:
                    result.cached.append(nid)
                    obs.node_cached(run_id, nid, uis[nid])
                    continue
                if self._interrupt.is_set():
                    raise Interrupted(f"interrupted before node {nid!r}")
                self._execute(steps[nid], keys, values, uis, run_info, document, obs, result)
        except Interrupted:
            obs.run_interrupted(run_id, current)
            raise
        except NodeError as err:
            obs.node_failed(run_id, err.node, err.error_type, err.message, err.traceback)
            obs.run_failed(run_id, err.node, err.error_type, err.message)
            raise
        finally:
            grad.__exit__(None, None, None)
        for nid in plan.outputs:
            if nid in values:
                result.outputs[nid] = values[nid]
                result.ui[nid] = uis.get(nid, {})
        obs.run_finished(run_id, result)
        return result


    def _inputs(self, step: Step, values: dict[str, dict[str, Any]], run_info: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(step.values)
        for lk in step.links:
            v = values[lk.node][lk.output]
            if lk.widget is not None and v is not None:
                v = convert_value(step.id, lk.widget, v, self.settings)
                if lk.widget.widget == "seed":
                    run_info["seeds"][f"{step.id}.{lk.input}"] = v
            kwargs[lk.input] = v
        for name, v in step.seeds:
            if not isinstance(v, Link) and v is not None:
                run_info["seeds"][f"{step.id}.{name}"] = v
        return kwargs

    def _execute(self, step: Step, keys: dict[str, str | None], values: dict[str, dict[str, Any]],
                 uis: dict[str, dict[str, Any]], run_info: dict[str, Any],
                 document: Any, obs: Observer, result: RunResult) -> None:
        nid, spec = step.id, step.spec
        try:  # inputs and a late key (a fingerprint is node code: its failure is the node's)
            kwargs = self._inputs(step, values, run_info)
            if keys[nid] is None:
                keys[nid] = self._late_key(step, keys, kwargs)
                hit = None
                if spec.cache:
                    self.cache.pin([keys[nid]])  # type: ignore[list-item]
                    hit = self.cache.get(keys[nid])  # type: ignore[arg-type]
                if hit is not None:
                    values[nid], uis[nid] = hit
                    result.cached.append(nid)
                    obs.node_cached(result.run_id, nid, uis[nid])
                    return
        except Interrupted:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... fail the node
            raise _node_error(nid, spec, exc) from exc
        obs.node_started(result.run_id, nid)
        ctx = None  # only a node that asks for one gets a Context (most small nodes do not)
        if spec.takes_context:
            ctx = Context(node_id=nid, node_type=spec.id, run_id=result.run_id,
                          settings=self.settings, device=self.device, dtype=self.dtype,
                          models=self._models if self._models is not None else _LazyModels(self),
                          interrupt_event=self._interrupt, workflow=document, run_info=run_info,
                          on_progress=lambda v, t, p, info: obs.node_progress(result.run_id, nid,
                                                                              v, t, p, info))
        t0 = time.perf_counter()
        try:
            out = self._call(spec, ctx, kwargs)
            _check_outputs(spec, out)
        except Interrupted:  # only ctx.check_interrupted/progress interrupt a run
            raise
        except BaseException as exc:  # noqa: BLE001 - every node failure becomes a NodeError
            raise _node_error(nid, spec, exc) from exc
        result.timings[nid] = time.perf_counter() - t0
        ui = ctx.ui if ctx is not None else {}
        values[nid], uis[nid] = out, ui
        if spec.cache:
            self.cache.put(keys[nid], out, ui)  # type: ignore[arg-type]
        result.executed.append(nid)
        obs.node_finished(result.run_id, nid, ui)

    def _late_key(self, step: Step, keys: dict[str, str | None], kwargs: dict[str, Any]) -> str:
        spec = step.spec
        if not spec.cache:
            return uuid.uuid4().hex  # a fresh key: every descendant runs again
        links = [(lk.input, keys[lk.node] or "", lk.output) for lk in step.links]
        extra = {"settings": self.settings} if spec.fingerprint_takes_settings else {}
        fp = str(spec.fingerprint(**kwargs, **extra)) if spec.fingerprint is not None else None
        return node_key(spec.id, spec.version, dict(step.literals), links, fp)

    def _call(self, spec: NodeSpec, ctx: Context | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        for attempt in (0, 1):
            try:
                raw = spec.fn(ctx, **kwargs) if spec.takes_context else spec.fn(**kwargs)
                return spec.normalize_result(raw)
            except torch.OutOfMemoryError:
                if attempt or self._models is None:
                    raise
                log.warning("out of memory in %s: freeing models and retrying once", spec.id)
                self._models.offload_all()
        raise AssertionError("unreachable")


class _LazyModels:
    """Creates the executor's ModelManager the first time a node touches ``ctx.models``."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._executor.models, name)


def _record_seeds(step: Step, values: dict[str, dict[str, Any]], run_info: dict[str, Any]) -> None:
    """Record the Seed inputs of a node that did not run (its outputs came from the cache).

    Literal seeds are known from the plan; a linked one when its parent's value is.
    Executed nodes record theirs as their inputs are gathered.
    """
    for name, v in step.seeds:
        if isinstance(v, Link):
            v = values.get(v.node, {}).get(v.output)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            run_info["seeds"][f"{step.id}.{name}"] = int(v)


def _check_outputs(spec: NodeSpec, out: dict[str, Any]) -> None:
    """Every output against its declared type: a wrong value fails the node that made it."""
    for o in spec.outputs:
        problem = check_value(o.type, out.get(o.name))
        if problem is not None:
            raise TypeError(f"output {o.name!r} ({type_name(o.type)}): {problem}")


def _migration_error(exc: MigrationError) -> NodeError:
    """A failed migration as the NodeError of its node."""
    cause = exc.cause or exc
    message = f"migrating from version {exc.from_version} failed: {exc.message}"
    return NodeError(exc.node, exc.node_type, type(cause).__name__, message,
                     "".join(traceback.format_exception(cause)))


def _node_error(nid: str, spec: NodeSpec, exc: BaseException) -> NodeError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, UserInputError) and exc.input:
        message = f"input {exc.input!r}: {message}"
    if isinstance(exc, torch.OutOfMemoryError):
        message = ("out of memory even after unloading models; lower the batch size or resolution, "
                   "or use tiling")
    return NodeError(nid, spec.id, type(exc).__name__, message,
                     "".join(traceback.format_exception(exc)))


__all__ = ["Executor", "RunResult", "literal_key"]
