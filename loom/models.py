"""Finding model files under the model roots (the ModelFile combos)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .errors import UserInputError
from .paths import relative_name
from .settings import Settings

MODEL_EXTENSIONS = (".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".sft")
FOLDER_MARKERS = ("model_index.json", "config.json", "loom.json")


def _is_model_entry(p: Path) -> bool:
    if p.is_file():
        return p.suffix.lower() in MODEL_EXTENSIONS
    return p.is_dir() and any((p / m).is_file() for m in FOLDER_MARKERS)


def _embedded_kinds(folder: Path) -> list[str]:
    try:
        info = json.loads((folder / "loom.json").read_text())
    except (OSError, ValueError):
        return []
    kind = info.get("kind", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _walk_entries(base: Path) -> list[str]:
    """Model entries under ``base``; a model folder is one entry (not descended)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        d = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            sub = d / name
            if name.startswith("."):
                continue
            if _is_model_entry(sub):
                found.append(sub.relative_to(base).as_posix())
            else:
                keep.append(name)
        dirnames[:] = keep
        found += [(d / f).relative_to(base).as_posix() for f in filenames
                  if not f.startswith(".") and _is_model_entry(d / f)]
    return found


def list_models(settings: Settings, kind: str) -> list[str]:
    """Names usable in a ``ModelFile[kind]`` widget, sorted, without duplicates.

    Entries under ``<root>/<kind>/`` are named relative to that folder (sub-folders
    included); embedded models under ``<root>/embedded/<name>`` whose ``loom.json``
    declares ``kind`` are named ``embedded/<name>``.
    """
    names: set[str] = set()
    for root in settings.model_roots:
        base = root / kind
        if base.is_dir():
            names.update(_walk_entries(base))
        emb = root / "embedded"
        if kind != "embedded" and emb.is_dir():
            for p in sorted(emb.iterdir()):
                if p.is_dir() and kind in _embedded_kinds(p):
                    names.add(f"embedded/{p.name}")
    return sorted(names)


def resolve_model(settings: Settings, kind: str, name: str) -> Path:
    """Absolute path of a model entry, or UserInputError saying what is wrong or where to put it.

    ``name`` is relative to ``<root>/<kind>/`` (or ``<root>/`` for ``embedded/<name>``) and
    may not leave it ('..', absolute, NUL, or the folder itself: see ``relative_name``).
    A model file that is a symlink may point anywhere: the model folders are the user's.
    """
    try:
        rel = relative_name(name)
    except ValueError as exc:
        problem = f"model name {name!r} {exc}: use a path inside models/{kind}/"
        raise UserInputError(problem) from None
    embedded = rel.parts[0] == "embedded" and len(rel.parts) > 1
    for root in settings.model_roots:
        candidate = root / rel if embedded else root / kind / rel
        if candidate.exists():
            return candidate.resolve()
    where = settings.model_roots[0] / (rel if embedded else Path(kind) / rel)
    raise UserInputError(f"model file {name!r} not found: put it at {where}")


def short_hash(path: Path, limit: int = 64 * 1024 * 1024) -> str:
    """sha256 of a file's first ``limit`` bytes (fast, for listings), 12 hex digits."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(q for q in path.rglob("*") if q.is_file())
    left = limit
    for f in files:
        with f.open("rb") as fh:
            while left > 0 and (chunk := fh.read(min(1 << 20, left))):
                h.update(chunk)
                left -= len(chunk)
    return h.hexdigest()[:12]


def file_fingerprint(path: Path | str) -> str:
    """path + size + mtime of a file or of every file in a folder (an edited file reloads)."""
    p = Path(path)
    if p.is_dir():
        parts = [f"{q}:{q.stat().st_size}:{q.stat().st_mtime_ns}" for q in sorted(p.rglob("*"))
                 if q.is_file()]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()
    try:
        st = p.stat()
    except OSError:
        return f"{p}:missing"
    return f"{p}:{st.st_size}:{st.st_mtime_ns}"


def describe_models(settings: Settings, kinds: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Model files per kind with sizes and short hashes (for /api/models)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        rows = []
        for name in list_models(settings, kind):
            path = resolve_model(settings, kind, name)
            size = path.stat().st_size if path.is_file() else sum(
                q.stat().st_size for q in path.rglob("*") if q.is_file())
            rows.append({"name": name, "size": size, "hash": short_hash(path)})
        out[kind] = rows
    return out
