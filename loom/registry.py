"""A registry of node specs: lookup, link compatibility, schemas and migrations."""
from __future__ import annotations

import copy
import enum
import logging
from dataclasses import dataclass
from typing import Any, Iterator

from .errors import MigrationError, RegistryError
from .models import list_models
from .nodeapi import InputSpec, NodeSpec, declared_in
from .settings import Settings
from .links import accepted_types, can_feed
from .types import ImageFile, ModelFile, Seed, type_name

log = logging.getLogger(__name__)


@dataclass
class PluginError:
    """A plugin that failed to import, and why."""

    plugin: str
    error: str
    traceback: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON form for /api/system."""
        return {"plugin": self.plugin, "error": self.error}


class Registry:
    """Node specs by id. Build one with ``Registry.default()`` or add modules yourself."""

    def __init__(self) -> None:
        self._specs: dict[str, NodeSpec] = {}
        self.plugin_errors: list[PluginError] = []
        self.plugins: list[str] = []

    @classmethod
    def default(cls, settings: Settings | None = None) -> "Registry":
        """Built-in nodes, entry-point plugins and the custom_nodes folders of ``settings``."""
        from .plugins import load_all
        reg = cls()
        load_all(reg, settings or Settings.from_env())
        return reg

    def register(self, spec: NodeSpec) -> None:
        """Add one spec; a duplicate id is an error unless the new spec says ``override=True``."""
        old = self._specs.get(spec.id)
        if old is not None and old is not spec and not spec.override:
            raise RegistryError(f"node id {spec.id!r} from {spec.module} is already registered by "
                                f"{old.module}; pick another id or pass override=True")
        self._specs[spec.id] = spec

    def add_module(self, module_name: str) -> int:
        """Register every node declared in an imported module or package; returns the count."""
        specs = declared_in(module_name)
        for s in specs:
            self.register(s)
        return len(specs)

    def add(self, *fns: Any) -> None:
        """Register functions decorated with ``@node`` (handy in tests)."""
        for fn in fns:
            spec = getattr(fn, "__loom_node__", None)
            if spec is None:
                raise RegistryError(f"{fn!r} is not decorated with @node")
            self.register(spec)

    def get(self, type_id: str) -> NodeSpec | None:
        """The spec or None."""
        return self._specs.get(type_id)

    def __getitem__(self, type_id: str) -> NodeSpec:
        return self._specs[type_id]

    def __contains__(self, type_id: object) -> bool:
        return type_id in self._specs

    def __iter__(self) -> Iterator[NodeSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    # --- schemas -----------------------------------------------------------------
    def output_types(self) -> list[Any]:
        """Every type some registered node outputs (what an input's ``accepts`` is drawn from)."""
        seen: dict[Any, None] = {}
        for spec in self._specs.values():
            for out in spec.outputs:
                seen.setdefault(out.type, None)
        return list(seen)

    def schemas(self, settings: Settings | None = None) -> list[dict[str, Any]]:
        """The JSON schema of every node (model combos list files found under ``settings``)."""
        types = self.output_types()
        return [self.schema(s, settings, types) for s in sorted(self._specs.values(),
                                                                 key=lambda s: (s.category, s.id))]

    def schema(self, spec: NodeSpec, settings: Settings | None = None,
               output_types: list[Any] | None = None) -> dict[str, Any]:
        """The JSON schema of one node. Each input lists in ``accepts`` the output types that
        may feed it (``loom.links.can_feed``): the canvas connects by that list alone."""
        types = self.output_types() if output_types is None else output_types
        return {
            "id": spec.id, "title": spec.title, "category": spec.category,
            "version": spec.version, "description": spec.description,
            "output_node": spec.output, "cache": spec.cache and spec.fingerprint is None,
            "inputs": [_input_schema(i, settings, types) for i in spec.inputs],
            "outputs": [{"name": o.name, "type": type_name(o.type)} for o in spec.outputs],
        }

    # --- migrations --------------------------------------------------------------
    def upgrade(self, workflow: Any) -> Any:
        """A copy of the workflow with older node versions migrated to the current ones."""
        from .workflow import Workflow
        wf = workflow if isinstance(workflow, Workflow) else Workflow.from_dict(workflow, copy_data=False)
        nodes = {}
        for nid, entry in wf.nodes.items():
            spec = self._specs.get(entry.get("type")) if isinstance(entry, dict) else None
            if spec is None or not isinstance(entry.get("inputs", {}), dict):
                nodes[nid] = entry
                continue
            ver = entry.get("version", spec.version)
            if not isinstance(ver, int) or ver >= spec.version:
                nodes[nid] = entry
                continue
            nodes[nid] = {**entry, "inputs": _migrate(nid, spec, ver, entry.get("inputs", {})),
                          "version": spec.version}
        return Workflow(nodes=nodes, groups=wf.groups, meta=wf.meta, extra=wf.extra)


def _migrate(nid: str, spec: NodeSpec, version: int, inputs: dict[str, Any]) -> dict[str, Any]:
    """Apply ``spec``'s migrations from ``version`` on; any failure is a MigrationError naming the node.

    A migration is node code: whatever it raises (BaseException included) fails that node.
    """
    inputs = copy.deepcopy(inputs)
    for v in range(max(version, 1), spec.version):
        if v not in spec.migrations:
            continue
        try:
            inputs = spec.migrations[v](inputs)
        except BaseException as exc:  # noqa: BLE001 - reported as this node's failure
            raise MigrationError(nid, spec.id, v, str(exc) or type(exc).__name__, exc) from exc
        if not isinstance(inputs, dict):
            raise MigrationError(nid, spec.id, v, f"the migration returned {type(inputs).__name__}, "
                                 "not the inputs dict")
    return inputs


def _input_schema(i: InputSpec, settings: Settings | None, output_types: list[Any]) -> dict[str, Any]:
    d: dict[str, Any] = {"name": i.name, "type": i.type_name, "kind": i.kind, "required": i.required,
                         "accepts": accepted_types(i, output_types)}
    if i.kind == "widget":
        default = i.default.value if isinstance(i.default, enum.Enum) else i.default
        d["default"] = default
        for key, val in (("min", i.ge), ("max", i.le), ("step", i.step)):
            if val is not None:
                d[key] = val
        if i.multiline:
            d["multiline"] = True
        if i.choices is not None:
            d["choices"] = list(i.choices)
        if i.widget == "seed":
            d["randomize"] = True
        if i.widget == "model_file":
            d["model_kind"] = i.model_kind
            d["choices"] = list_models(settings, i.model_kind) if settings else []
        if i.widget == "image_file":
            d["upload"] = True
            d["choices"] = _uploaded_images(settings) if settings else []
    if i.help:
        d["help"] = i.help
    if i.label:
        d["label"] = i.label
    return d


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def _uploaded_images(settings: Settings) -> list[str]:
    root = settings.inputs
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


__all__ = ["Registry", "PluginError", "can_feed", "ModelFile", "ImageFile", "Seed"]
