"""Keeps loaded models under two budgets: device memory (offload LRU to CPU) and CPU RAM (forget LRU)."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from .cache import estimate

log = logging.getLogger(__name__)


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def modules_of(obj: Any) -> list[torch.nn.Module]:
    """The torch modules an object holds: itself, its ``modules`` list, or its module attributes."""
    if isinstance(obj, torch.nn.Module):
        return [obj]
    mods = getattr(obj, "modules", None)
    if isinstance(mods, (list, tuple)):
        return [m for m in mods if isinstance(m, torch.nn.Module)]
    return [v for v in vars(obj).values() if isinstance(v, torch.nn.Module)] if hasattr(obj, "__dict__") else []


@dataclass
class _Entry:
    """One loaded model: the object, what it is called, its RAM bytes and where it came from."""

    obj: Any
    label: str
    bytes: int
    ids: tuple[int, ...]        # the object and its modules, for ``owner_of``
    source: str | None = None   # e.g. the file path; a new ``version`` of it replaces this one
    version: str | None = None


_CONTAINERS = (torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.Sequential)


def _own_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size()
               for t in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)))


def _split(module: torch.nn.Module, room: int) -> tuple[list[torch.nn.Module], list[torch.nn.Module]]:
    """(pieces, resident) of a module too large for ``room`` bytes.

    Pieces are the largest submodules that fit (or leaves that do not), each moved to the
    device for its own forward; resident are the modules split open whose own direct weights
    stay on the device meanwhile. Containers without a forward of their own (ModuleList…) are
    always split open. Modules reached twice (tied weights) count once.
    """
    pieces: list[torch.nn.Module] = []
    resident: list[torch.nn.Module] = []
    seen: set[int] = set()

    def visit(m: torch.nn.Module, top: bool) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        children = list(m.children())
        if not top and not children:
            pieces.append(m)
            return
        if not top and module_bytes(m) <= room and not isinstance(m, _CONTAINERS):
            pieces.append(m)
            return
        if _own_bytes(m):
            resident.append(m)
        for child in children:
            visit(child, False)

    visit(module, True)
    return pieces, resident


def _move_own(module: torch.nn.Module, device: torch.device) -> None:
    """Move a module's direct parameters and buffers (not its children's) to ``device``."""
    for name, p in list(module._parameters.items()):
        if p is not None:
            p.data = p.data.to(device)
    for name, b in list(module._buffers.items()):
        if b is not None:
            module._buffers[name] = b.to(device)


@dataclass
class _Streamed:
    """A module run layer by layer: its pieces, the modules holding weights of their own, the hooks."""

    module: torch.nn.Module
    pieces: list[torch.nn.Module]
    resident: list[torch.nn.Module]
    hooks: list[Any] = field(default_factory=list)
    users: int = 1


class ModelManager:
    """Loads models once per key, moves them to the device when used, offloads LRU to CPU.

    ``load`` keeps any object (a module or a wrapper holding modules) under a key such as a
    file fingerprint; ``use`` puts modules on the device for a block, first offloading the
    least recently used ones when the device budget would be exceeded, and on CUDA
    out-of-memory offloads everything else and retries once. Loaded models together may use
    ``ram_budget`` bytes: beyond it the least recently used are forgotten (freed once nothing
    else references them), and callbacks given to ``add_listener`` hear of every key forgotten.
    """

    def __init__(self, device: torch.device, dtype: torch.dtype, budget_bytes: int | None = None,
                 ram_budget_bytes: int | None = None) -> None:
        self.device, self.dtype = device, dtype
        self.budget = budget_bytes if budget_bytes is not None else self._default_budget(device)
        self._streamed: dict[int, _Streamed] = {}
        self.ram_budget = ram_budget_bytes if ram_budget_bytes is not None else 1 << 62
        self._loaded: "OrderedDict[str, _Entry]" = OrderedDict()
        self._owners: dict[int, str] = {}
        self._ram = 0
        self._on_device: "OrderedDict[int, torch.nn.Module]" = OrderedDict()
        self._listeners: list[Callable[[str], None]] = []
        self._lock = threading.RLock()

    @staticmethod
    def _default_budget(device: torch.device) -> int:
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            return int(total * 0.8)
        return 1 << 62  # on the CPU, "offloading" is moot

    # --- loading and forgetting ------------------------------------------------------
    def load(self, key: str, loader: Callable[[], Any], label: str = "", *,
             source: str | None = None, version: str | None = None) -> Any:
        """The model for ``key`` (e.g. a file fingerprint), loading it on the CPU the first time.

        With ``source`` (e.g. the file path) and ``version`` (its fingerprint), models loaded
        from an older version of the same source are forgotten first.
        """
        with self._lock:
            entry = self._loaded.get(key)
            if entry is not None:
                self._loaded.move_to_end(key)
                return entry.obj
            stale = [k for k, e in self._loaded.items()
                     if source is not None and e.source == source and e.version != version]
        for old in stale:
            log.info("%s changed on disk: forgetting %s", source, old)
            self.forget(old)
        obj = loader()
        with self._lock:
            if key in self._loaded:  # loaded meanwhile by another thread
                return self._loaded[key].obj
            size, _ = estimate(obj, self.owner_of)  # parts another entry holds count there
            ids = tuple(dict.fromkeys([id(obj), *map(id, modules_of(obj))]))
            self._loaded[key] = _Entry(obj, label or key, size, ids, source, version)
            for ident in ids:
                self._owners.setdefault(ident, key)
            self._ram += size
        self._trim_ram(keep=key)
        return obj

    def owner_of(self, obj: Any) -> str | None:
        """The key of the loaded model that ``obj`` is (or is a module of), else None."""
        return self._owners.get(id(obj))

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(key)`` whenever a model is forgotten (e.g. to drop cached outputs)."""
        self._listeners.append(callback)

    def keys(self) -> list[str]:
        """Keys of the loaded models, least recently used first (cheap, unlike ``loaded``)."""
        with self._lock:
            return list(self._loaded)

    @property
    def ram_bytes(self) -> int:
        """Bytes of every loaded model (each module counted once)."""
        return self._ram

    def forget(self, key: str) -> None:
        """Drop a loaded model (it is freed once nothing else references it)."""
        with self._lock:
            entry = self._loaded.pop(key, None)
            if entry is None:
                return
            self._ram -= entry.bytes
            for ident in entry.ids:
                if self._owners.get(ident) == key:
                    del self._owners[ident]
            for m in modules_of(entry.obj):
                if self._on_device.pop(id(m), None) is not None:
                    m.to("cpu")  # frees device memory now even if a run still holds the object
        for callback in self._listeners:
            callback(key)

    def _trim_ram(self, keep: str) -> None:
        """Forget least recently used models while all of them exceed the RAM budget."""
        while True:
            with self._lock:
                if self._ram <= self.ram_budget:
                    return
                victim = next((k for k in self._loaded if k != keep), None)
                if victim is None:
                    log.warning("%s alone (%.1f GB) exceeds the RAM budget of %.1f GB (--ram-budget-gb)",
                                self._loaded[keep].label, self._ram / (1 << 30), self.ram_budget / (1 << 30))
                    return
                label = self._loaded[victim].label
            log.info("RAM budget: releasing %s", label)
            self.forget(victim)

    # --- device placement ------------------------------------------------------------
    @contextmanager
    def use(self, *modules: torch.nn.Module) -> Iterator[None]:
        """Put ``modules`` on the device for the block, offloading others if over budget.

        A module that does not fit the budget even after offloading the others runs layer by
        layer (sequential offload): each piece goes to the device for its own forward only.
        """
        streamed: list[int] = []
        with self._lock:
            for m in modules:
                owner = self._owners.get(id(m))
                if owner is not None and owner in self._loaded:
                    self._loaded.move_to_end(owner)  # in use: the last to be forgotten
                if self._to_device(m, keep=modules):
                    streamed.append(id(m))
        try:
            yield
        finally:
            with self._lock:
                for ident in streamed:
                    self._end_stream(ident)

    def _to_device(self, module: torch.nn.Module, keep: tuple[torch.nn.Module, ...]) -> bool:
        """Place ``module`` on the device; True when it runs layer by layer instead."""
        ident = id(module)
        if ident in self._on_device:
            self._on_device.move_to_end(ident)
            return False
        if ident in self._streamed:
            self._streamed[ident].users += 1
            return True
        need = module_bytes(module)
        if self.device.type != "cpu":
            self._evict(lambda: self._used() + need > self.budget, keep)
            if self._used() + need > self.budget:
                self._start_stream(module, need)
                return True
        try:
            self._move(module, self.device)
        except torch.OutOfMemoryError:
            log.warning("out of memory moving %s to %s: offloading the others and retrying",
                        type(module).__name__, self.device)
            self._move(module, torch.device("cpu"))
            self._evict(lambda: True, keep)
            self._empty_cache()
            self._move(module, self.device)
        self._on_device[ident] = module
        return False

    def _move(self, module: torch.nn.Module, device: torch.device, own_only: bool = False) -> None:
        """Move a module (and its children, unless ``own_only``) to ``device``; every placement goes here."""
        if own_only:
            _move_own(module, device)
        else:
            module.to(device)

    # --- sequential offload: a module larger than the budget, layer by layer ---------------
    def _start_stream(self, module: torch.nn.Module, need: int) -> None:
        room = max(self.budget - self._used(), 0)
        gb = 1 << 30
        if need > self.budget:
            log.info("%s (%.2f GB) larger than the VRAM budget (%.2f GB): running it layer by layer",
                     type(module).__name__, need / gb, self.budget / gb)
        else:
            log.info("%s (%.2f GB) does not fit beside the models in use (%.2f GB free of the VRAM budget): "
                     "running it layer by layer", type(module).__name__, need / gb, room / gb)
        pieces, resident = _split(module, room)
        for _ in range(3):  # the weights that stay on the device leave less room for each piece
            own = sum(_own_bytes(r) for r in resident)
            if not own:
                break
            pieces, resident = _split(module, max(room - own, 0))
        room -= sum(_own_bytes(r) for r in resident)
        for piece in pieces:
            if module_bytes(piece) > room:
                log.warning("%s.%s (%.2f GB) alone exceeds the VRAM budget; it is moved whole for its forward",
                            type(module).__name__, type(piece).__name__, module_bytes(piece) / gb)
        stream = _Streamed(module, pieces, resident)
        for holder in resident:
            self._move(holder, self.device, own_only=True)
        for piece in pieces:
            stream.hooks.append(piece.register_forward_pre_hook(lambda m, args: self._move(m, self.device)))
            stream.hooks.append(piece.register_forward_hook(lambda m, args, out: self._move(m, torch.device("cpu"))))
        self._streamed[id(module)] = stream
        log.debug("%s streams %d pieces; %d modules keep their own weights on the device",
                  type(module).__name__, len(pieces), len(resident))

    def _end_stream(self, ident: int) -> None:
        stream = self._streamed.get(ident)
        if stream is None:
            return
        stream.users -= 1
        if stream.users > 0:
            return
        for hook in stream.hooks:
            hook.remove()
        for holder in stream.resident:
            self._move(holder, torch.device("cpu"), own_only=True)
        for piece in stream.pieces:
            self._move(piece, torch.device("cpu"))
        del self._streamed[ident]

    def streaming(self, module: torch.nn.Module) -> list[torch.nn.Module] | None:
        """The pieces ``module`` runs in while it is streamed layer by layer, else None."""
        stream = self._streamed.get(id(module))
        return list(stream.pieces) if stream is not None else None

    def _evict(self, over: Callable[[], bool], keep: tuple[torch.nn.Module, ...]) -> None:
        for victim_id, victim in list(self._on_device.items()):
            if not over():
                break
            if any(victim is k for k in keep):
                continue
            log.info("offloading %s to CPU (VRAM budget %.2f GB)", type(victim).__name__, self.budget / (1 << 30))
            self._move(victim, torch.device("cpu"))
            del self._on_device[victim_id]

    def _empty_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _used(self) -> int:
        resident = sum(_own_bytes(r) for s in self._streamed.values() for r in s.resident)
        return sum(module_bytes(m) for m in self._on_device.values()) + resident

    def offload_all(self) -> None:
        """Move every model to the CPU but keep them loaded (frees device memory)."""
        with self._lock:
            for m in self._on_device.values():
                m.to("cpu")
            self._on_device.clear()
        self._empty_cache()

    def unload_all(self) -> None:
        """Move everything to the CPU and forget it (frees device memory)."""
        self.offload_all()
        for key in self.keys():
            self.forget(key)
        self._empty_cache()

    # --- reporting -------------------------------------------------------------------
    def loaded(self) -> list[dict[str, Any]]:
        """What is loaded, where, and how big (for /api/system), most recently used last."""
        with self._lock:
            rows = []
            for key, entry in self._loaded.items():
                mods = modules_of(entry.obj)
                on_dev = [m for m in mods if id(m) in self._on_device]
                rows.append({"key": key, "label": entry.label, "class": type(entry.obj).__name__,
                             "bytes": sum(module_bytes(m) for m in mods),
                             "device": (str(self.device) if on_dev and len(on_dev) == len(mods)
                                        else "cpu" if not on_dev else "partly " + str(self.device)),
                             "dtype": str(next((p.dtype for m in mods for p in m.parameters()),
                                               self.dtype)).replace("torch.", "")})
            return rows

    def stats(self) -> dict[str, Any]:
        """Device, budgets and bytes on the device and in RAM (for /api/system)."""
        with self._lock:
            return {"device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                    "budget_bytes": self.budget if self.budget < (1 << 60) else None,
                    "on_device_bytes": self._used(), "loaded": len(self._loaded),
                    "ram_budget_bytes": self.ram_budget if self.ram_budget < (1 << 60) else None,
                    "ram_bytes": self._ram}
