"""ComfyUI workflows in Loom: the importer (``loom.importers`` entry point ``comfyui``) and the
export to ComfyUI's API format.

The mapping lives here, beside the nodes it maps to; the engine only knows the importer
protocol of ``loom.importers``. Importing this package is cheap and declares no nodes (the
plugin loader imports it with the other ``loom_nodes`` modules): the work happens in its
submodules, imported on first use. See docs/comfyui.md.
"""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["ComfyUIImporter", "importer", "convert", "export"]


class ComfyUIImporter:
    """The ``loom.importers`` protocol for ComfyUI files (UI or API JSON, or a PNG)."""

    name = "comfyui"
    label = "ComfyUI"

    def sniff(self, data: Any) -> bool:
        """Whether ``data`` (parsed JSON, or PNG/JSON bytes) is a ComfyUI workflow."""
        from .formats import sniff
        return sniff(data)

    def convert(self, data: Any, options: Mapping[str, Any] | None = None,
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The Loom workflow dict and the conversion report."""
        from .convert import convert as run
        return run(data, options)


importer = ComfyUIImporter()


def convert(data: Any, options: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """ComfyUI workflow → (Loom workflow dict, report); see ``convert.convert``."""
    return importer.convert(data, options)


def export(workflow: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Loom workflow → (ComfyUI API prompt, report); see ``exporter.export``."""
    from .exporter import export as run
    return run(workflow)
