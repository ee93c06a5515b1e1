"""Cache keys and the byte-bounded LRU cache of node outputs."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Callable, Iterable

import torch

from .settings import default_ram_budget

Owner = Callable[[Any], "str | None"]
"""Says which model-manager entry holds an object (None: not a managed model)."""

DEFAULT_MAX_ENTRIES = 1_000_000  # a safety net only: the cache is bounded by bytes
_MAX_DEPTH = 6


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=repr, allow_nan=True)


_SCALAR_TAGS = {int: "i", float: "f", bool: "b", str: "s", type(None): "n"}


def literal_key(value: Any) -> str:
    """A canonical text of a node's literal inputs (dict keys sorted), used in cache keys.

    The common case, a dict of plain scalars, is written directly (type-tagged, so 1, 1.0,
    True and "1" differ); anything else is canonical JSON. The two forms cannot collide:
    JSON never holds a raw \x1f.
    """
    if type(value) is dict:
        tags = _SCALAR_TAGS
        try:
            return "\x1e".join(f"{k}\x1f{tags[type(v)]}{v!r}" for k, v in sorted(value.items()))
        except (KeyError, TypeError):  # a list, dict or object inside, or a non-str key
            pass
    return _CANONICAL.encode(value)


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


class _Walk:
    """One size estimate: objects are visited once each; managed models are not counted."""

    def __init__(self, owner: Owner | None) -> None:
        self.owner = owner
        self.seen: set[int] = set()
        self.held: set[str] = set()  # model-manager keys the value references

    def size(self, value: Any, depth: int) -> int:
        if isinstance(value, (str, bytes)):
            return 48 + len(value)
        if value is None or isinstance(value, (int, float, complex)):
            return 48
        ident = id(value)
        if ident in self.seen:
            return 0
        self.seen.add(ident)
        if self.owner is not None and not isinstance(value, (list, tuple, dict)):
            key = self.owner(value)
            if key is not None:  # counted once, by the model manager
                self.held.add(key)
                return 0
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, torch.nn.Module):
            return sum(self.size(t, depth) for t in [*value.parameters(), *value.buffers()])
        if depth > _MAX_DEPTH:
            return 0
        if isinstance(value, (list, tuple, set, frozenset)):
            return 64 + sum(self.size(v, depth + 1) for v in value)
        if isinstance(value, dict):
            return 64 + sum(self.size(v, depth + 1) for v in value.values())
        if type(value).__module__.startswith("numpy"):  # arrays and scalars
            nbytes = getattr(value, "nbytes", None)
            if isinstance(nbytes, int):
                return nbytes
        if isinstance(value, type):
            return 64
        if dataclasses.is_dataclass(value):
            return 64 + sum(self.size(getattr(value, f.name, None), depth + 1)
                            for f in dataclasses.fields(value))
        attrs = getattr(value, "__dict__", None)
        if isinstance(attrs, dict):
            return 64 + sum(self.size(v, depth + 1) for v in attrs.values())
        return 64


def estimate(value: Any, owner: Owner | None = None) -> tuple[int, set[str]]:
    """A rough size of ``value`` and the model-manager keys it references.

    Tensors, arrays, modules and containers of them are walked (objects through their
    attributes, each object once); an object ``owner`` names is held by the model manager
    and counted there, not here.
    """
    walk = _Walk(owner)
    return walk.size(value, 0), walk.held


_SCALARS = (int, float, bool, str, type(None))


def _small(outputs: dict[str, Any]) -> tuple[int, set[str]] | None:
    """The size of outputs that are all plain numbers or short text (the common cheap case)."""
    size = 64
    for v in outputs.values():
        if type(v) not in _SCALARS or (type(v) is str and len(v) > 4096):
            return None
        size += 48 + (len(v) if type(v) is str else 0)
    return size, set()


def estimate_bytes(value: Any) -> int:
    """A rough size of a cached value: tensors, arrays, modules and containers of them."""
    return estimate(value)[0]


_Item = tuple[dict[str, Any], dict[str, Any], int, frozenset[str]]


class OutputCache:
    """LRU of {key: (outputs, ui)} bounded by estimated bytes (and a large entry count). Thread-safe.

    ``max_bytes`` is a number or a function giving the current bound (the executor shares
    one RAM budget between loaded models and cached outputs). Keys passed to ``pin`` (the
    outputs the running workflow needs) are never evicted until ``release``; bytes of models
    that ``owner`` names are left to the model manager, and ``drop_holding`` forgets entries
    that reference a model the manager let go.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES,
                 max_bytes: int | Callable[[], int] | None = None, owner: Owner | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes: int | Callable[[], int] = max_bytes if max_bytes is not None else default_ram_budget()
        self.owner = owner
        self._data: "OrderedDict[str, _Item]" = OrderedDict()  # evictable, least recent first
        self._pinned: dict[str, _Item] = {}                     # needed by the running workflow
        self._pins: set[str] = set()
        self._holders: dict[str, set[str]] = {}                 # model key → cache keys
        self._bytes = 0
        self._lock = threading.RLock()

    @property
    def limit(self) -> int:
        """The byte bound right now."""
        return int(self.max_bytes() if callable(self.max_bytes) else self.max_bytes)

    def get(self, key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The entry for ``key`` (marking it recently used) or None."""
        with self._lock:
            item = self._pinned.get(key)
            if item is None:
                item = self._data.get(key)
                if item is None:
                    return None
                self._data.move_to_end(key)
            return item[0], item[1]

    def put(self, key: str, outputs: dict[str, Any], ui: dict[str, Any]) -> None:
        """Store an entry, evicting the least recently used unpinned ones beyond the bounds."""
        size, held = _small(outputs) or estimate(outputs, self.owner)
        limit = self.limit
        with self._lock:
            self._remove(key)
            if self.max_entries <= 0 or size > limit:
                return
            item = (outputs, ui, size, frozenset(held))
            if key in self._pins:
                self._pinned[key] = item
            else:
                self._data[key] = item
            for model in held:
                self._holders.setdefault(model, set()).add(key)
            self._bytes += size
            self._trim(limit)

    def pin(self, keys: Iterable[str]) -> None:
        """Keep these entries (present or stored later) until ``release``."""
        with self._lock:
            for key in keys:
                self._pins.add(key)
                item = self._data.pop(key, None)
                if item is not None:
                    self._pinned[key] = item

    def release(self) -> None:
        """Make pinned entries evictable again (as the most recently used) and apply the bounds."""
        with self._lock:
            for key, item in self._pinned.items():
                self._data[key] = item
                self._data.move_to_end(key)
            self._pinned.clear()
            self._pins.clear()
            self._trim()

    def drop_holding(self, model_key: str) -> None:
        """Forget every entry that references the model-manager entry ``model_key``."""
        with self._lock:
            for key in list(self._holders.pop(model_key, ())):
                self._remove(key)

    def _remove(self, key: str) -> None:
        item = self._pinned.pop(key, None)
        if item is None:
            item = self._data.pop(key, None)
        if item is None:
            return
        self._bytes -= item[2]
        for model in item[3]:
            holders = self._holders.get(model)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._holders[model]

    def _trim(self, limit: int | None = None) -> None:
        limit = self.limit if limit is None else limit
        while self._data and (len(self) > self.max_entries or self._bytes > limit):
            self._remove(next(iter(self._data)))

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._pinned or key in self._data

    def __len__(self) -> int:
        return len(self._data) + len(self._pinned)

    @property
    def bytes(self) -> int:
        """Estimated bytes held (models held by the model manager are not counted here)."""
        return self._bytes

    def clear(self) -> None:
        """Drop everything (pins stay: they belong to the running workflow)."""
        with self._lock:
            self._data.clear()
            self._pinned.clear()
            self._holders.clear()
            self._bytes = 0
