"""Keeps loaded models on the device under a memory budget, offloading the least recently used."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

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


def _device_of(module: torch.nn.Module) -> str:
    p = next(module.parameters(), None)
    return str(p.device) if p is not None else "cpu"


class ModelManager:
    """Loads models once per key, moves them to the device when used, offloads LRU to CPU.

    ``load`` keeps any object (a module or a wrapper holding modules) under a key such as a
    file fingerprint; ``use`` puts modules on the device for a block, first offloading the
    least recently used ones when the budget would be exceeded, and on CUDA out-of-memory
    offloads everything else and retries once.
    """

    def __init__(self, device: torch.device, dtype: torch.dtype, budget_bytes: int | None = None) -> None:
        self.device, self.dtype = device, dtype
        self.budget = budget_bytes if budget_bytes is not None else self._default_budget(device)
        self._loaded: "OrderedDict[str, tuple[Any, str]]" = OrderedDict()
        self._on_device: "OrderedDict[int, torch.nn.Module]" = OrderedDict()
        self._lock = threading.RLock()

    @staticmethod
    def _default_budget(device: torch.device) -> int:
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            return int(total * 0.8)
        return 1 << 62  # on the CPU, "offloading" is moot

    def load(self, key: str, loader: Callable[[], Any], label: str = "") -> Any:
        """The model for ``key`` (e.g. a file fingerprint), loading it on the CPU the first time."""
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key][0]
        obj = loader()
        with self._lock:
            self._loaded[key] = (obj, label or key)
        return obj

    def keys(self) -> list[str]:
        """Keys of the loaded models, least recently used first (cheap, unlike ``loaded``)."""
        with self._lock:
            return list(self._loaded)

    def forget(self, key: str) -> None:
        """Drop a loaded model (it is freed once nothing else references it)."""
        with self._lock:
            entry = self._loaded.pop(key, None)
            if entry is not None:
                for m in modules_of(entry[0]):
                    self._on_device.pop(id(m), None)

    @contextmanager
    def use(self, *modules: torch.nn.Module) -> Iterator[None]:
        """Put ``modules`` on the device for the block, offloading others if over budget."""
        with self._lock:
            for m in modules:
                self._to_device(m, keep=modules)
        yield

    def _to_device(self, module: torch.nn.Module, keep: tuple[torch.nn.Module, ...]) -> None:
        ident = id(module)
        if ident in self._on_device:
            self._on_device.move_to_end(ident)
            return
        need = module_bytes(module)
        if self.device.type != "cpu":
            self._evict(lambda: self._used() + need > self.budget, keep)
        try:
            module.to(self.device)
        except torch.OutOfMemoryError:
            log.warning("out of memory moving %s to %s: offloading the others and retrying",
                        type(module).__name__, self.device)
            module.to("cpu")
            self._evict(lambda: True, keep)
            self._empty_cache()
            module.to(self.device)
        self._on_device[ident] = module

    def _evict(self, over: Callable[[], bool], keep: tuple[torch.nn.Module, ...]) -> None:
        for victim_id, victim in list(self._on_device.items()):
            if not over():
                break
            if any(victim is k for k in keep):
                continue
            log.info("offloading %s to CPU", type(victim).__name__)
            victim.to("cpu")
            del self._on_device[victim_id]

    def _empty_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _used(self) -> int:
        return sum(module_bytes(m) for m in self._on_device.values())

    def offload_all(self) -> None:
        """Move every model to the CPU but keep them loaded (frees device memory)."""
        with self._lock:
            for m in self._on_device.values():
                m.to("cpu")
            self._on_device.clear()
        self._empty_cache()

    def unload_all(self) -> None:
        """Move everything to the CPU and forget it (frees device memory)."""
        with self._lock:
            for m in self._on_device.values():
                m.to("cpu")
            self._on_device.clear()
            self._loaded.clear()
        self._empty_cache()

    def loaded(self) -> list[dict[str, Any]]:
        """What is loaded, where, and how big (for /api/system), most recently used last."""
        with self._lock:
            rows = []
            for key, (obj, label) in self._loaded.items():
                mods = modules_of(obj)
                on_dev = [m for m in mods if id(m) in self._on_device]
                rows.append({"key": key, "label": label, "class": type(obj).__name__,
                             "bytes": sum(module_bytes(m) for m in mods),
                             "device": (str(self.device) if on_dev and len(on_dev) == len(mods)
                                        else "cpu" if not on_dev else "partly " + str(self.device)),
                             "dtype": str(next((p.dtype for m in mods for p in m.parameters()),
                                               self.dtype)).replace("torch.", "")})
            return rows

    def stats(self) -> dict[str, Any]:
        """Device, budget and bytes on the device (for /api/system)."""
        with self._lock:
            return {"device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                    "budget_bytes": self.budget if self.budget < (1 << 60) else None,
                    "on_device_bytes": self._used(), "loaded": len(self._loaded)}
