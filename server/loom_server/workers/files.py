"""Files that travel with a run when an actor does not share the server's folders.

On one machine the actors read the server's input folder and write its output folder
directly. An actor on another host (or with another home) gets the run's uploads as bytes
with the run, and sends back the output files the run shows; both go through Ray's object
store as arguments and return values. Names are checked with ``resolve_inside`` both ways."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from loom import Settings

log = logging.getLogger(__name__)


def read_uploads(settings: "Settings", names: Iterable[str]) -> dict[str, bytes]:
    """The bytes of the uploads a run uses (name relative to the input folder → bytes)."""
    from loom.paths import resolve_inside
    out: dict[str, bytes] = {}
    for name in names:
        try:
            out[name] = resolve_inside(settings.inputs, name).read_bytes()
        except (OSError, ValueError) as exc:  # the actor's compile reports the missing file
            log.warning("upload %s not sent with its run: %s", name, exc)
    return out


def write_outputs(settings: "Settings", files: dict[str, bytes]) -> None:
    """Write files an actor on another host saved into the server's output folder."""
    from loom.paths import resolve_inside
    for name, data in files.items():
        try:
            path = resolve_inside(settings.outputs, name)
        except ValueError as exc:
            log.warning("output %r from an actor refused: %s", name, exc)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
