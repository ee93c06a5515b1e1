"""Exceptions the engine raises; every one carries a message meant for users."""
from __future__ import annotations

from typing import Any


class LoomError(Exception):
    """Base class of Loom's own errors."""


class DeclarationError(LoomError):
    """A node declaration is wrong (raised at import time of the plugin)."""


class RegistryError(LoomError):
    """Registering a node failed (e.g. a duplicate id)."""


class WorkflowFileError(LoomError):
    """A workflow file cannot be read (not JSON, wrong format, no workflow in a PNG)."""


class ValidationError(LoomError):
    """The workflow has problems; ``problems`` lists every one."""

    def __init__(self, problems: list[Any]) -> None:
        self.problems = problems
        lines = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{len(problems)} problem(s): {lines}{more}")


class Interrupted(LoomError):
    """The run was interrupted (raised inside nodes by ``ctx.check_interrupted``)."""


class NodeError(LoomError):
    """A node failed while running."""

    def __init__(self, node: str, node_type: str, error_type: str, message: str,
                 traceback: str = "") -> None:
        self.node, self.node_type = node, node_type
        self.error_type, self.message, self.traceback = error_type, message, traceback
        super().__init__(f"node {node!r} ({node_type}) failed: {error_type}: {message}")


class MigrationError(LoomError):
    """A node's migration raised (or returned something other than a dict) while upgrading.

    ``cause`` is the exception the migration raised (None when it returned a wrong value).
    """

    def __init__(self, node: str, node_type: str, from_version: int, message: str,
                 cause: BaseException | None = None) -> None:
        self.node, self.node_type, self.from_version = node, node_type, from_version
        self.message, self.cause = message, cause
        super().__init__(f"node {node!r} ({node_type}): migrating from version {from_version} "
                         f"failed: {message}")


class UserInputError(LoomError):
    """Raised by nodes for bad input; ``input`` names the offending input when known."""

    def __init__(self, message: str, input: str | None = None) -> None:
        self.input = input
        super().__init__(message)
