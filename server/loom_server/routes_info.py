"""Read-only information: node schemas, model files, system state, the OpenAPI document."""
from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import sys
from typing import Any

from aiohttp import web

from .openapi import openapi_document
from .security import ApiError
from .state import CONFIG, HUB, SETTINGS, STORE, ready_worker

routes = web.RouteTableDef()


@routes.get("/api/nodes")
async def nodes(request: web.Request) -> web.Response:
    """Every node schema (model and upload combos list the files found now)."""
    worker = await ready_worker(request)
    settings = request.app[SETTINGS]
    schemas = await asyncio.get_running_loop().run_in_executor(
        None, worker.registry.schemas, settings)  # type: ignore[union-attr]
    return web.json_response(schemas)


@routes.get("/api/models")
async def models(request: web.Request) -> web.Response:
    """Model files per kind with sizes and short hashes (?kind=a,b narrows it)."""
    from loom.models import describe_models
    from loom.settings import MODEL_KINDS
    raw = request.query.get("kind")
    kinds = tuple(k.strip() for k in raw.split(",") if k.strip()) if raw else MODEL_KINDS
    bad = [k for k in kinds if k not in MODEL_KINDS]
    if bad:
        raise ApiError(400, f"unknown model kind {bad[0]!r} (kinds: {', '.join(MODEL_KINDS)})")
    settings = request.app[SETTINGS]
    found = await asyncio.get_running_loop().run_in_executor(None, describe_models, settings, kinds)
    return web.json_response({"kinds": found,
                              "roots": [str(r) for r in settings.model_roots]})


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _memory() -> dict[str, Any]:
    """RAM of the machine and of this process, in bytes."""
    out: dict[str, Any] = {}
    try:
        import psutil
        vm = psutil.virtual_memory()
        out.update(ram_total=vm.total, ram_available=vm.available,
                   process_rss=psutil.Process().memory_info().rss)
        return out
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh if ":" in line}
        out.update(ram_total=info.get("MemTotal"), ram_available=info.get("MemAvailable"))
        with open("/proc/self/statm", encoding="ascii") as fh:
            out["process_rss"] = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        pass
    return out


def _device_info(worker: Any) -> dict[str, Any]:
    """Device, dtype, GPU memory and loaded models (runs in a thread: touches torch)."""
    import torch
    ex = worker.executor
    device = ex.device
    info: dict[str, Any] = {"device": str(device), "dtype": str(ex.dtype).replace("torch.", ""),
                            "torch": torch.__version__, "threads": torch.get_num_threads(),
                            "models_loaded": ex.models.loaded() if ex._models is not None else [],
                            "model_memory": ex.models.stats() if ex._models is not None else None,
                            "cache": {"entries": len(ex.cache), "bytes": ex.cache.bytes,
                                      "ram_budget_bytes": ex.ram_budget}}
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        info["gpu"] = {"name": torch.cuda.get_device_name(device), "total": total, "free": free,
                       "allocated": torch.cuda.memory_allocated(device),
                       "reserved": torch.cuda.memory_reserved(device)}
    return info


@routes.get("/api/system")
async def system(request: web.Request) -> web.Response:
    """Versions, device, memory, loaded models, plugins and plugin load errors, queue state."""
    worker = await ready_worker(request)
    settings, config = request.app[SETTINGS], request.app[CONFIG]
    loop = asyncio.get_running_loop()
    device = await loop.run_in_executor(None, _device_info, worker)
    workers = await loop.run_in_executor(None, worker.describe)
    registry = worker.registry
    assert registry is not None
    body = {
        "versions": {"loom": _version("loom"), "python": sys.version.split()[0],
                     "platform": platform.platform(), "torch": device.pop("torch"),
                     "aiohttp": _version("aiohttp"), "diffusers": _version("diffusers"),
                     "transformers": _version("transformers")},
        **device,
        "memory": _memory(),
        "nodes": len(registry),
        "plugins": list(registry.plugins),
        "plugin_errors": [e.to_dict() for e in registry.plugin_errors],
        "queue": request.app[STORE].counts(),
        "worker_kind": worker.kind,  # "thread" (in-process) or "ray"
        "workers": workers,  # id, kind, state, device, pid, loaded models, current run
        "clients": len(request.app[HUB]),
        "paths": {"home": str(settings.home), "outputs": str(settings.outputs),
                  "inputs": str(settings.inputs), "user": str(settings.user),
                  "model_roots": [str(r) for r in settings.model_roots]},
        "server": {"host": config.host, "port": config.port, "token_required": bool(config.token),
                   "max_upload_bytes": config.upload_limit, "max_body_bytes": config.body_limit,
                   "max_image_pixels": config.max_image_pixels},
    }
    return web.json_response(body)


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of this API."""
    return web.json_response(openapi_document())

