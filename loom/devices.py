"""Choosing the torch device and dtype from ``--device`` and ``--precision``."""
from __future__ import annotations

import torch

from .errors import LoomError

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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
    except RuntimeError as exc:
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
    """``auto`` → fp16 on CUDA/MPS (bf16 where CUDA supports it well), fp32 on CPU."""
    precision = (precision or "auto").lower()
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    if precision not in _DTYPES:
        raise LoomError(f"--precision {precision!r}: use auto, fp32, fp16 or bf16")
    return _DTYPES[precision]
