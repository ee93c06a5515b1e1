"""The mapping table: one ``Spec`` per ComfyUI core node type, defined family by family.

A spec says how the node's widgets are laid out in the UI format (``widgets``, in order; the
pseudo names ``control_after_generate`` and ``upload`` stand for values ComfyUI stores that
are not inputs), its socket inputs and outputs, and either a ``handler`` that builds the Loom
node(s) or the ``note`` saying why there is none yet. To map another node, add a ``define``
call in its family module (``map_*.py``); the docs table is generated from these specs.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .model import CNode, Missing, Ref

if TYPE_CHECKING:
    from .context import Mapper

Handler = Callable[["Mapper", CNode], None]
Coerce = Callable[["Mapper", CNode, str, Any], Any]
STATUSES = ("exact", "approximate", "dissolved", "unmapped")
FAMILIES = ("map_models", "map_transformers", "map_sampling", "map_custom_sampling", "map_guiders",
            "map_latent", "map_latent_ops", "map_conditioning", "map_image", "map_image_edit", "map_mask",
            "map_unmapped")
NOT_YET = "no Loom node yet"


@dataclass(frozen=True)
class Spec:
    """How one ComfyUI node type maps (or why it does not)."""

    type: str
    family: str
    widgets: tuple[str, ...] = ()
    variants: tuple[tuple[str, ...], ...] = ()   # other widget layouts of older/newer ComfyUI
    inputs: tuple[str, ...] = ()                 # socket inputs, ComfyUI names
    outputs: tuple[str, ...] = ()                # outputs by slot, ComfyUI names
    loom: str = ""                               # the Loom node(s), for the docs table
    status: str = "unmapped"                     # one of STATUSES
    note: str = ""                               # what differs, or why it is not mapped
    handler: Handler | None = None
    display: str = ""                            # ComfyUI's display name (such titles are not kept)

    @property
    def widget_lists(self) -> tuple[tuple[str, ...], ...]:
        """The primary widget layout, then the variants."""
        return (self.widgets, *self.variants)


SPECS: dict[str, Spec] = {}


def define(spec: Spec) -> Spec:
    """Add a spec to the table (one per ComfyUI type)."""
    if spec.status not in STATUSES:
        raise ValueError(f"{spec.type}: status {spec.status!r} is not one of {STATUSES}")
    if spec.type in SPECS:
        raise ValueError(f"{spec.type} is defined twice")
    SPECS[spec.type] = spec
    return spec


def specs() -> dict[str, Spec]:
    """The whole table (importing the family modules the first time)."""
    for family in FAMILIES:
        importlib.import_module(f"{__package__}.{family}")
    return SPECS


def is_value(v: Any) -> bool:
    """A plain value (not a link and not a missing one)."""
    return not isinstance(v, (Ref, Missing))


def direct(loom_type: str, inputs: Mapping[str, str], outputs: tuple[str, ...],
           coerce: Mapping[str, Coerce] | None = None, status: str = "exact") -> Handler:
    """A handler for a node that becomes one Loom node: ``inputs`` maps ComfyUI input names to
    Loom's, ``outputs`` names the Loom output of each ComfyUI output slot, ``coerce`` turns a
    plain value into Loom's (and may report the change)."""
    coerce = dict(coerce or {})

    def handle(ctx: "Mapper", node: CNode) -> None:
        values: dict[str, Any] = {}
        for comfy_name, loom_name in inputs.items():
            v = ctx.value(node, comfy_name)
            if v is ctx.ABSENT:
                continue
            if comfy_name in coerce and is_value(v):
                v = coerce[comfy_name](ctx, node, comfy_name, v)
                if v is ctx.ABSENT:
                    continue
            values[loom_name] = v
        nid = ctx.add(node, loom_type, values)
        for slot, out in enumerate(outputs):
            ctx.output(node, slot, ctx.link(nid, out))
        ctx.mapped(node, [nid], status)

    return handle


def unmapped(type_: str, family: str, note: str = NOT_YET, widgets: tuple[str, ...] = (),
             inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = (),
             variants: tuple[tuple[str, ...], ...] = (), display: str = "") -> Spec:
    """A core node Loom has no counterpart for yet (its data is kept in a placeholder)."""
    return define(Spec(type_, family, widgets, variants, inputs, outputs, "", "unmapped",
                       note, None, display))


def ranged(lo: float, hi: float, what: str = "") -> Coerce:
    """A coerce that keeps a number inside Loom's range ``lo``…``hi`` (ints stay ints) and
    reports a value it had to move."""

    def fix(ctx: "Mapper", node: CNode, name: str, value: Any) -> Any:
        if isinstance(value, float) and value.is_integer() and isinstance(lo, int) and isinstance(hi, int):
            value = int(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not lo <= value <= hi:
            new = type(value)(min(max(value, lo), hi))
            ctx.changed(node, name, value, new, f"Loom's {what or name} goes from {lo:g} to {hi:g}")
            return new
        return value

    return fix
