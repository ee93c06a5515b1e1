"""GPU speed options for denoisers: ``torch.compile`` (``--compile``) and channels-last memory.

Both apply on CUDA only; on other devices the denoiser runs as it is. Compiling never changes
the module held by the model manager: :func:`for_run` gives the sampling loop a shallow copy
of the denoiser wrapper whose ``runner`` is the compiled module (one per module and mode,
kept while the module lives), so other users of the same weights — another run without
``--compile``, a diffusers pipeline in a benchmark — call the plain module.
"""
from __future__ import annotations

import copy
import logging
import weakref
from typing import Any

import torch

log = logging.getLogger(__name__)

MODES = ("off", "default", "reduce-overhead", "max-autotune")
_COMPILED: "weakref.WeakKeyDictionary[torch.nn.Module, dict[str, Any]]" = weakref.WeakKeyDictionary()


def compiled(module: torch.nn.Module, mode: str) -> Any:
    """``torch.compile(module)`` in ``mode``, made once per module and mode."""
    if mode not in MODES or mode == "off":
        raise ValueError(f"compile mode {mode!r}: use one of {', '.join(MODES)}")
    per_module = _COMPILED.setdefault(module, {})
    if mode not in per_module:
        log.info("compiling %s with torch.compile (mode %s): the first step of each new shape is slow",
                 type(module).__name__, mode)
        per_module[mode] = torch.compile(module, mode=None if mode == "default" else mode)
    return per_module[mode]


def channels_last(module: torch.nn.Module) -> None:
    """Switch ``module``'s 4-D weights to channels-last memory format (once; in place)."""
    if getattr(module, "_loom_channels_last", False):
        return
    module.to(memory_format=torch.channels_last)
    module._loom_channels_last = True  # type: ignore[attr-defined]
    log.info("%s uses channels-last memory format", type(module).__name__)


def for_run(denoiser: Any, module: torch.nn.Module, device: torch.device, settings: Any) -> Any:
    """The denoiser to sample with under ``settings.compile`` / ``settings.channels_last``.

    Returns ``denoiser`` itself when nothing applies (not CUDA, options off); otherwise a
    shallow copy whose ``runner`` attribute is the module to call.
    """
    mode = str(getattr(settings, "compile", "off") or "off")
    want_cl = bool(getattr(settings, "channels_last", False))
    if device.type != "cuda" or (mode == "off" and not want_cl):
        return denoiser
    if want_cl:
        channels_last(module)
    if mode == "off":
        return denoiser
    run = copy.copy(denoiser)
    run.runner = compiled(module, mode)
    return run
