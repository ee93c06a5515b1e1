"""Cache keys and the bounded LRU cache of node outputs."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from functools import singledispatch
from typing import Any

import torch


def literal_key(value: Any) -> str:
    """Canonical JSON of a literal input (dict keys sorted), used in cache keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr, allow_nan=True)


def node_key(type_id: str, version: int, literals: dict[str, Any],
             links: list[tuple[str, str, str]], fingerprint: str | None) -> str:
    """hash(type, version, literal inputs, fingerprint, (input, parent key, output) links)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type_id}\x00{version}\x00".encode())
    h.update(literal_key(literals).encode())
    for name, parent_key, out in links:
        h.update(f"\x01{name}\x00{parent_key}\x00{out}".encode())
    if fingerprint is not None:
        h.update(b"\x02" + str(fingerprint).encode())
    return h.hexdigest()


def estimate_bytes(value: Any) -> int:
    """A rough size of a cached value: tensors, arrays, modules and containers of them.

    Objects are walked through their attributes once each (shared tensors count once);
    anything else costs a small constant.
    """
    return _size(value, set(), 0)


@singledispatch
def _size(value: Any, seen: set[int], depth: int) -> int:
    if depth > 6 or id(value) in seen:
        return 0
    seen.add(id(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return 64 + sum(_size(getattr(value, f.name), seen, depth + 1) for f in dataclasses.fields(value))
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict) and not isinstance(value, type):
        return 64 + sum(_size(v, seen, depth + 1) for v in attrs.values())
    return 64


@_size.register
def _(value: torch.Tensor, seen: set[int], depth: int) -> int:
    if id(value) in seen:
        return 0
    seen.add(id(value))
    return value.numel() * value.element_size()


@_size.register
def _(value: torch.nn.Module, seen: set[int], depth: int) -> int:
    if id(value) in seen:
        return 0
    seen.add(id(value))
    return sum(_size(t, seen, depth) for t in list(value.parameters()) + list(value.buffers()))


@_size.register(list)
@_size.register(tuple)
def _(value: list | tuple, seen: set[int], depth: int) -> int:
    return 64 + sum(_size(v, seen, depth + 1) for v in value)


@_size.register
def _(value: dict, seen: set[int], depth: int) -> int:
    return 64 + sum(_size(v, seen, depth + 1) for v in value.values())


@_size.register(str)
@_size.register(bytes)
@_size.register(int)
@_size.register(float)
def _(value: Any, seen: set[int], depth: int) -> int:
    return 48 + (len(value) if isinstance(value, (str, bytes)) else 0)


try:
    import numpy as np

    @_size.register
    def _(value: np.ndarray, seen: set[int], depth: int) -> int:
        return int(value.nbytes)
except ImportError:  # pragma: no cover
    pass


def _default_byte_limit() -> int:
    try:
        import os
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return int(total * 0.5)
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 << 30


class OutputCache:
    """LRU of {key: (outputs, ui)} bounded by entry count and estimated bytes. Thread-safe."""

    def __init__(self, max_entries: int = 1024, max_bytes: int | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes if max_bytes is not None else _default_byte_limit()
        self._data: "OrderedDict[str, tuple[dict[str, Any], dict[str, Any], int]]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The entry for ``key`` (marking it recently used) or None."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            self._data.move_to_end(key)
            return item[0], item[1]

    def put(self, key: str, outputs: dict[str, Any], ui: dict[str, Any]) -> None:
        """Store an entry, evicting the least recently used beyond the bounds."""
        size = estimate_bytes(outputs)
        with self._lock:
            if key in self._data:
                self._bytes -= self._data.pop(key)[2]
            if size > self.max_bytes or self.max_entries <= 0:
                return
            self._data[key] = (outputs, ui, size)
            self._bytes += size
            while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, _, s) = self._data.popitem(last=False)
                self._bytes -= s

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    @property
    def bytes(self) -> int:
        """Estimated bytes held."""
        return self._bytes

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._data.clear()
            self._bytes = 0
