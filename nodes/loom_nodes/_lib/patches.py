"""Weight patches (LoRA, LoHa, LoKr, full differences) applied without touching the base modules.

A ``Delta`` is one layer's change; a ``Patch`` puts it on a named submodule of a root module
with a strength. ``applied(patches)`` registers forward hooks that add each delta's output to
its layer's output for the duration of a block and removes them afterwards, so the base module
(shared through the model manager) is never modified: a run without the patches computes
exactly what it computed before. A LoRA adds ``up(down(x)) · alpha/rank · strength`` — the
computation diffusers/PEFT do for an unfused adapter. ``effective_state`` gives the merged
weights instead (for model merging).
"""
from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
import torch.nn.functional as F

LORA, LOHA, LOKR, DIFF = "lora", "loha", "lokr", "diff"


@dataclass(eq=False)
class Delta:
    """One layer's change: its kind, its tensors (CPU) and the alpha/rank scale."""

    kind: str                      # lora | loha | lokr | diff
    tensors: dict[str, torch.Tensor]
    scale: float = 1.0

    def weight(self, shape: torch.Size, tensors: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The full weight difference ΔW · scale, shaped like the layer's weight."""
        t = self.tensors if tensors is None else tensors
        if self.kind == LORA:
            up, down = t["up"], t["down"]
            w = up.flatten(1) @ down.flatten(1)
        elif self.kind == LOHA:
            w = (t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"])
        elif self.kind == LOKR:
            w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
            w2 = t["lokr_w2"] if "lokr_w2" in t else t["lokr_w2_a"] @ t["lokr_w2_b"]
            if len(shape) == 4 and w2.ndim == 2:
                w2 = w2.reshape(w2.shape[0], -1, *shape[2:])
            while w1.ndim < w2.ndim:
                w1 = w1.unsqueeze(-1)
            w = torch.kron(w1, w2)
        else:
            w = t["diff"]
        return w.reshape(shape) * self.scale

    def bias(self) -> torch.Tensor | None:
        """The bias difference (full-difference patches only), or None."""
        return self.tensors.get("diff_b")

    def output(self, module: torch.nn.Module, x: torch.Tensor, t: dict[str, torch.Tensor],
               strength: float) -> torch.Tensor:
        """What the patch adds to ``module(x)`` (``t``: this delta's tensors on x's device)."""
        conv = isinstance(module, torch.nn.Conv2d)
        if self.kind == LORA:
            down, up = t["down"], t["up"]
            if conv:
                h = F.conv2d(x, down, None, module.stride, module.padding, module.dilation, module.groups)
                return F.conv2d(h, up) * (self.scale * strength)
            return F.linear(F.linear(x, down.flatten(1)), up.flatten(1)) * (self.scale * strength)
        w = t["__weight__"] * strength
        b = t.get("diff_b")
        b = b * strength if b is not None else None
        if conv:
            return F.conv2d(x, w, b, module.stride, module.padding, module.dilation, module.groups)
        return F.linear(x, w, b)


@dataclass(frozen=True, eq=False)
class Patch:
    """A delta on the submodule ``name`` of ``root`` at ``strength``."""

    root: torch.nn.Module
    name: str
    delta: Delta
    strength: float


def _on(delta: Delta, module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The delta's tensors on a device/dtype (LoHa/LoKr/diff: the full ΔW under ``__weight__``)."""
    moved = {k: v.to(device, dtype) for k, v in delta.tensors.items()}
    if delta.kind != LORA:
        weight = getattr(module, "weight")
        moved["__weight__"] = delta.weight(weight.shape, moved)
    return moved


class _DeviceCache:
    """Device copies of the deltas of the last few patch sets (LoRAs are small; ``size`` kept).

    Keyed by the deltas and the device/dtype of their layers; it holds the deltas (so their ids
    stay valid) but never the patched models, which the model manager may forget.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._entries: list[tuple[tuple[Any, ...], tuple[Delta, ...], list[dict[str, torch.Tensor]]]] = []
        self._lock = threading.Lock()

    def get(self, patches: tuple[Patch, ...], modules: list[torch.nn.Module]) -> list[dict[str, torch.Tensor]]:
        """Each patch's tensors on the device and dtype of its module's weight."""
        placement = tuple((m.weight.device, m.weight.dtype, tuple(m.weight.shape)) for m in modules)
        deltas = tuple(p.delta for p in patches)
        key = (tuple(map(id, deltas)), placement)
        with self._lock:
            for i, (k, _, tensors) in enumerate(self._entries):
                if k == key:
                    self._entries.append(self._entries.pop(i))
                    return tensors
        tensors = [_on(d, m, dev, dt) for d, m, (dev, dt, _) in zip(deltas, modules, placement)]
        with self._lock:
            self._entries.append((key, deltas, tensors))
            del self._entries[:-self.size]
        return tensors

    def clear(self) -> None:
        """Drop every device copy."""
        with self._lock:
            self._entries.clear()


DEVICE_CACHE = _DeviceCache()


@contextmanager
def applied(patches: Iterable[Patch]) -> Iterator[None]:
    """Within the block, each patched layer's output gains its deltas; the hooks go afterwards."""
    patches = tuple(patches)
    if not patches:
        yield
        return
    modules = [p.root.get_submodule(p.name) for p in patches]
    tensors = DEVICE_CACHE.get(patches, modules)
    by_module: dict[int, list[tuple[Patch, dict[str, torch.Tensor]]]] = {}
    for p, m, t in zip(patches, modules, tensors):
        by_module.setdefault(id(m), []).append((p, t))

    def hook(module: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        x = args[0]
        for p, t in by_module[id(module)]:
            out = out + p.delta.output(module, x, t, p.strength)
        return out

    handles = []
    try:
        for m in {id(m): m for m in modules}.values():
            handles.append(m.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


def effective_state(root: torch.nn.Module, patches: Iterable[Patch]) -> dict[str, torch.Tensor]:
    """``root``'s parameters with the patches on ``root`` merged in (new tensors where patched)."""
    state = dict(root.named_parameters())
    merged: dict[str, torch.Tensor] = {}
    for p in patches:
        if p.root is not root:
            continue
        module = root.get_submodule(p.name)
        wkey = f"{p.name}.weight" if p.name else "weight"
        base = merged.get(wkey, state[wkey].detach().float())
        merged[wkey] = base + p.delta.weight(module.weight.shape, {
            k: v.float() for k, v in p.delta.tensors.items()}) * p.strength
        b = p.delta.bias()
        if b is not None:
            bkey = f"{p.name}.bias" if p.name else "bias"
            merged[bkey] = merged.get(bkey, state[bkey].detach().float()) + b.float() * p.strength
    out = {k: v.detach() for k, v in state.items()}
    out.update({k: v.to(state[k].dtype) for k, v in merged.items()})
    return out


def rebuild(module: torch.nn.Module, params: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A copy of ``module`` whose parameters are ``params`` (buffers copied, weights never twice)."""
    memo: dict[int, Any] = {id(p): torch.nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
                            for p in module.parameters()}
    new = copy.deepcopy(module, memo)
    first: dict[int, str] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        first.setdefault(id(p), name)
    made: dict[str, torch.nn.Parameter] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        key = first[id(p)]  # tied weights stay tied
        if key not in made:
            made[key] = torch.nn.Parameter(params[key], requires_grad=False)
        owner, _, leaf = name.rpartition(".")
        setattr(new.get_submodule(owner) if owner else new, leaf, made[key])
    return new.eval()
