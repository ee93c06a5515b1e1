"""Loom: a typed, cached node-graph runtime for AI image generation.

The public plugin API is ``node``, ``Input``, ``Context`` and ``loom.types``. Names are
imported lazily (PEP 562) so that ``loom serve`` can listen before torch is imported.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Context": "context", "Executor": "executor", "RunResult": "executor",
    "file_fingerprint": "models", "list_models": "models", "resolve_model": "models",
    "resolve_inside": "paths",
    "Input": "nodeapi", "NodeSpec": "nodeapi", "node": "nodeapi",
    "BaseObserver": "observer", "Observer": "observer", "RecordingObserver": "observer",
    "Registry": "registry", "Settings": "settings", "Problem": "validation", "validate": "plan",
    "topological_order": "graph",
    "Plan": "plan", "compile_workflow": "plan", "can_feed": "links", "check_value": "links",
    "Workflow": "workflow", "png_info": "workflow",
    "DeclarationError": "errors", "Interrupted": "errors", "LoomError": "errors",
    "MigrationError": "errors", "NodeError": "errors", "RegistryError": "errors",
    "UserInputError": "errors",
    "ValidationError": "errors", "WorkflowFileError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loom' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .context import Context
    from .errors import (DeclarationError, Interrupted, LoomError, MigrationError, NodeError,
                         RegistryError, UserInputError, ValidationError, WorkflowFileError)
    from .executor import Executor, RunResult
    from .models import file_fingerprint, list_models, resolve_model
    from .nodeapi import Input, NodeSpec, node
    from .paths import resolve_inside
    from .observer import BaseObserver, Observer, RecordingObserver
    from .registry import Registry
    from .settings import Settings
    from .links import can_feed, check_value
    from .plan import Plan, compile_workflow, validate
    from .graph import topological_order
    from .validation import Problem
    from .workflow import Workflow, png_info
