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


class ModelManager:
    """Loads models once per key, moves them to the device when used, offloads LRU to CPU."""

    def __init__(self, device: torch.device, dtype: torch.dtype, budget_bytes: int | None = None) -> None:
        self.device, self.dtype = device, dtype
        self.budget = budget_bytes if budget_bytes is not None else self._default_budget(device)
        self._loaded: "OrderedDict[str, tuple[torch.nn.Module, str]]" = OrderedDict()
        self._on_device: "OrderedDict[int, torch.nn.Module]" = OrderedDict()
        self._lock = threading.RLock()

    @staticmethod
    def _default_budget(device: torch.device) -> int:
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            return int(total * 0.8)
        return 1 << 62  # on the CPU, "offloading" is moot

    def load(self, key: str, loader: Callable[[], torch.nn.Module], label: str = "") -> torch.nn.Module:
        """The model for ``key`` (e.g. a file fingerprint), loading it on the CPU the first time."""
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key][0]
        module = loader()
        with self._lock:
            self._loaded[key] = (module, label or key)
        return module

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
            while self._on_device and self._used() + need > self.budget:
                victim_id, victim = next(iter(self._on_device.items()))
                if any(victim is k for k in keep):
                    break
                log.info("offloading %s to CPU", type(victim).__name__)
                victim.to("cpu")
                del self._on_device[victim_id]
        module.to(self.device)
        self._on_device[ident] = module

    def _used(self) -> int:
        return sum(module_bytes(m) for m in self._on_device.values())

    def unload_all(self) -> None:
        """Move everything to the CPU and forget it (frees device memory)."""
        with self._lock:
            for m in self._on_device.values():
                m.to("cpu")
            self._on_device.clear()
            self._loaded.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def loaded(self) -> list[dict[str, Any]]:
        """What is loaded, where, and how big (for /api/system)."""
        with self._lock:
            rows = []
            for key, (m, label) in self._loaded.items():
                rows.append({"key": key, "label": label, "class": type(m).__name__,
                             "bytes": module_bytes(m),
                             "device": "device" if id(m) in self._on_device else "cpu"})
            return rows
