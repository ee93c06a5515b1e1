"""Loom: a typed, cached node-graph runtime for AI image generation.

The public plugin API is ``node``, ``Input``, ``Context`` and ``loom.types``.
"""
from __future__ import annotations

from .context import Context
from .errors import (DeclarationError, Interrupted, LoomError, NodeError, RegistryError,
                     UserInputError, ValidationError, WorkflowFileError)
from .executor import Executor, RunResult
from .models import file_fingerprint, list_models, resolve_model
from .nodeapi import Input, NodeSpec, node
from .observer import BaseObserver, Observer, RecordingObserver
from .registry import Registry
from .settings import Settings
from .validate import Problem, validate
from .workflow import Workflow, png_info

__version__ = "0.1.0"

__all__ = [
    "node", "Input", "Context", "Registry", "Workflow", "validate", "Problem", "Executor",
    "RunResult", "Observer", "BaseObserver", "RecordingObserver", "Settings", "NodeSpec",
    "LoomError", "DeclarationError", "RegistryError", "ValidationError", "NodeError",
    "Interrupted", "UserInputError", "WorkflowFileError", "png_info", "file_fingerprint",
    "list_models", "resolve_model", "__version__",
]
