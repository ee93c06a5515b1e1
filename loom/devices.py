"""Choosing the torch device and dtype from ``--device`` and ``--precision``."""
from __future__ import annotations

import logging

import torch

from .errors import LoomError

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_WARNED: set[str] = set()  # precisions already warned about on the CPU (once per process)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → cuda if present, else mps, else cpu; explicit names are checked."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise LoomError(f"--device {name!r} is not a device (use auto, cpu, cuda, cuda:N or mps)") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LoomError(f"--device {name}: this machine has no CUDA GPU (torch {torch.__version__})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise LoomError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise LoomError("--device mps: MPS is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise LoomError(f"--device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return dev


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` → fp16 on CUDA/MPS, fp32 on CPU; fp16/bf16 on a CPU run fp32 (warned once)."""
    precision = (precision or "auto").strip().lower()
    if precision == "auto":
        if device.type in ("cuda", "mps"):
            return torch.float16
        return torch.float32
    if precision not in _DTYPES:
        raise LoomError(f"--precision {precision!r}: use auto, fp32, fp16 or bf16")
    if device.type == "cpu" and precision != "fp32":
        if precision not in _WARNED:
            _WARNED.add(precision)
            log.warning("--precision %s is ignored on the CPU: models compute in fp32 "
                        "(half precision is used on GPUs only)", precision)
        return torch.float32
    return _DTYPES[precision]


def check_compute(device: str, precision: str) -> tuple[torch.device, torch.dtype]:
    """Resolve ``--device`` and ``--precision`` up front; a LoomError with one line says what is wrong."""
    dev = resolve_device(device)
    return dev, resolve_dtype(precision, dev)


def memory_info(device: torch.device) -> dict[str, int | str | None]:
    """Total and free memory of ``device`` in bytes (None where torch cannot tell)."""
    info: dict[str, int | str | None] = {"device": str(device), "total_bytes": None, "free_bytes": None}
    if device.type == "cuda" and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info(device)
        info.update(total_bytes=int(total), free_bytes=int(free),
                    name=torch.cuda.get_device_name(device))
    else:
        try:
            import os
            info["total_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            info["free_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            pass
    return info
