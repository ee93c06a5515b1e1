"""Names that users give for files below a folder: one rule for models, uploads and saved files."""
from __future__ import annotations

from pathlib import Path, PurePosixPath


def relative_name(name: object) -> PurePosixPath:
    """``name`` as a relative '/'-separated path of something inside a folder.

    Raises ``ValueError`` with the reason (a phrase to follow the quoted name) for a
    non-string or empty name, a NUL byte, an absolute path, a '..' part, or a name that
    reduces to the folder itself ('.', './', './.'). '.' parts are dropped.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("is empty")
    if "\x00" in name:
        raise ValueError("contains a NUL byte")
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError("must be a relative path without '..'")
    if not rel.parts:
        raise ValueError("names the folder itself, not something inside it")
    return rel


def resolve_inside(root: Path, name: object) -> Path:
    """``root/name`` with symlinks resolved, strictly inside ``root`` (never ``root`` itself).

    Raises ``ValueError`` with the reason (see ``relative_name``; also when a symlink leads
    out of ``root``). The path need not exist.
    """
    rel = relative_name(name)
    base = root.resolve()
    target = (base / rel).resolve()
    if target == base:
        raise ValueError("names the folder itself, not something inside it")
    if not target.is_relative_to(base):
        raise ValueError("leads outside its folder")
    return target
