"""ControlNet: the socket type, the loaded model, the control entries that a ``Conditioning``
carries in ``extras["control"]``, and the residuals they add to the UNet.

``apply_controlnet`` appends a ``ControlEntry`` (model, hint image, strength, step window) to
a conditioning's ``extras["control"]`` tuple, so chained applies stack. The denoiser turns the
entries into a ``ControlBatch`` (hints resized and batched on the device) in ``unet_kwargs``;
at every step ``ControlBatch.residuals`` runs each active ControlNet and sums the down/mid
residuals, as diffusers' ``MultiControlNetModel`` does, for the UNet's
``down_block_additional_residuals`` / ``mid_block_additional_residual``. T2I-Adapters
(``t2i_adapter.py``) ride in the same entries: their feature maps are computed once in
``build`` and ``ControlBatch.intrablock`` sums them × strength for the UNet's
``down_intrablock_additional_residuals``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Iterable, Optional

import torch
import torch.nn.functional as F

from loom.types import Conditioning

from . import conds

log = logging.getLogger(__name__)

CONTROL_KEY = "control"  # Conditioning.extras key: tuple[ControlEntry, ...]
STEP_KEY = "step"        # per-step cond dict key: (step index, step count) of the sampler's loop

Residuals = tuple[list[torch.Tensor], torch.Tensor]


class ControlNet:
    """A ControlNet model (or T2I-Adapter): steers a denoiser with a hint image (edges, depth, pose…)."""

    kind: str = "controlnet"        # or "t2i_adapter" (t2i_adapter.DiffusionT2IAdapter)
    model: Any = None
    name: str = ""
    conditioning_channels: int = 3

    def check_unet(self, unet: Any) -> None:
        """Raise ValueError when this model was not made for ``unet``'s architecture."""
        raise NotImplementedError(f"{type(self).__name__} does not say which models it fits")


class DiffusionControlNet(ControlNet):
    """A diffusers ``ControlNetModel`` (SD 1.x/2.x or SDXL) and where it was loaded from."""

    def __init__(self, model: Any, name: str = "") -> None:
        self.model, self.name = model, name
        cfg = model.config
        self.sdxl = getattr(cfg, "addition_embed_type", None) == "text_time"
        self.conditioning_channels = int(getattr(cfg, "conditioning_channels", 3))

    def check_unet(self, unet: Any) -> None:
        """Raise ValueError when this ControlNet was not made for ``unet``'s architecture."""
        mine, theirs = self.model.config, unet.config
        for key in ("in_channels", "block_out_channels", "layers_per_block", "cross_attention_dim"):
            a, b = getattr(mine, key, None), getattr(theirs, key, None)
            if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
                raise ValueError(f"the ControlNet {self.name!r} was made for a model with {key} {a}, but "
                                 f"this model has {b}; use a ControlNet made for this model's family")
        unet_sdxl = getattr(theirs, "addition_embed_type", None) == "text_time"
        if self.sdxl != unet_sdxl:
            raise ValueError(f"the ControlNet {self.name!r} is {'an SDXL' if self.sdxl else 'an SD 1.x/2.x'} "
                             f"ControlNet but the model is {'SDXL' if unet_sdxl else 'SD 1.x/2.x'}")


@dataclass(frozen=True, eq=False)
class ControlEntry:
    """One applied ControlNet: its hint (B, C, H, W) in [0, 1] on the CPU, strength and window.

    ``mask`` (B, 1, H, W), optional: pixels where it is above 0.5 are set to -1 in the hint,
    which is how inpainting ControlNets are told what to fill in. ``start``/``end`` are
    fractions of the sampler's steps: the ControlNet is used at step ``i`` of ``n`` unless
    ``i / n < start`` or ``(i + 1) / n > end`` (diffusers' ``control_guidance_start/end``).
    """

    control_net: ControlNet
    hint: torch.Tensor
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    mask: Optional[torch.Tensor] = None

    def active(self, step: Optional[tuple[int, int]]) -> bool:
        """Whether this entry conditions step ``(i, n)`` (always, when the step is not known)."""
        if self.strength == 0.0:
            return False
        if step is None:
            return True
        i, n = step
        return not (i / n < self.start or (i + 1) / n > self.end)


def controls(cond: Conditioning) -> tuple[ControlEntry, ...]:
    """The control entries a conditioning carries (oldest first)."""
    return tuple(cond.extras.get(CONTROL_KEY, ()))


def attach(cond: Conditioning, entry: ControlEntry) -> Conditioning:
    """A new conditioning with ``entry`` added after the controls it already has."""
    return replace(cond, extras={**cond.extras, CONTROL_KEY: controls(cond) + (entry,)})


def attach_all(cond: Conditioning, entry: ControlEntry) -> Conditioning:
    """``attach`` to every part of a combined conditioning (``conds.parts``), or to ``cond``."""
    return conds.map_parts(cond, lambda part: attach(part, entry))


def lend(negative: tuple[Conditioning, ...], positive: tuple[Conditioning, ...]) -> tuple[Conditioning, ...]:
    """The negative's parts, given the positive's controls when none of them has its own.

    diffusers runs its ControlNet on both halves of classifier-free guidance, with the same
    hint; so does Loom unless the negative carries controls (``apply_controlnet_advanced``).
    The controls lent are those of the first positive part that has any.
    """
    if any(controls(c) for c in negative):
        return negative
    source = next((controls(c) for c in positive if controls(c)), ())
    if not source:
        return negative
    return tuple(replace(c, extras={**c.extras, CONTROL_KEY: source}) for c in negative)


def control_modules(*conditionings: Conditioning) -> list[torch.nn.Module]:
    """The ControlNet modules the conditionings (and their parts) use, each once (for ``ctx.models.use``)."""
    seen: dict[int, torch.nn.Module] = {}
    for cond in conditionings:
        for part in conds.parts(cond):
            for e in controls(part):
                seen.setdefault(id(e.control_net.model), e.control_net.model)
    return list(seen.values())


def prepare_hint(entry: ControlEntry, batch: int, height: int, width: int,
                 device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The entry's hint as the ControlNet takes it: its channels, ``height × width``, ``batch`` images.

    A grey hint is repeated to RGB and alpha is dropped; another size is resized (bilinear,
    antialiased when shrinking); one image serves the whole batch. The mask's pixels become -1.
    """
    hint = entry.hint.float()
    want = entry.control_net.conditioning_channels
    if hint.shape[1] == 1 and want == 3:
        hint = hint.expand(-1, 3, -1, -1)
    elif hint.shape[1] in (3, 4) and want == 1:  # a grey-input adapter (sketch): the mean of R, G, B
        hint = hint[:, :3].mean(dim=1, keepdim=True)
    elif hint.shape[1] == 4 and want == 3:
        hint = hint[:, :3]
    if hint.shape[1] != want:
        raise ValueError(f"the ControlNet {entry.control_net.name!r} takes {want}-channel hints, "
                         f"got {hint.shape[1]} channels")
    if tuple(hint.shape[-2:]) != (height, width):
        shrink = hint.shape[-2] > height or hint.shape[-1] > width
        hint = F.interpolate(hint, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    if entry.mask is not None:
        m = F.interpolate(entry.mask[:, :1].float(), size=(height, width), mode="bilinear", align_corners=False)
        if m.shape[0] not in (1, hint.shape[0]) and hint.shape[0] != 1:
            raise ValueError(f"the ControlNet mask has {m.shape[0]} images but its hint {hint.shape[0]}")
        n = max(m.shape[0], hint.shape[0])
        hint = torch.where(m.expand(n, 1, -1, -1) > 0.5, torch.full_like(hint[:1, :1], -1.0),
                           hint.expand(n, -1, -1, -1))
    if hint.shape[0] != batch:
        if hint.shape[0] != 1:
            raise ValueError(f"the ControlNet hint has {hint.shape[0]} images but the latent batch is {batch} "
                             "(give one hint image, or one per latent)")
        hint = hint.expand(batch, -1, -1, -1)
    return hint.to(device, dtype).contiguous()


@dataclass(frozen=True)
class Segment:
    """``size`` consecutive samples of a UNet batch, their control entries and prepared hints.

    A T2I-Adapter's "hint" is its list of feature maps (float32, not yet scaled by strength).
    """

    size: int
    entries: tuple[ControlEntry, ...]
    hints: tuple[Any, ...]


@dataclass(frozen=True)
class ControlBatch:
    """The controls of every sample of a UNet batch, as consecutive segments.

    ``unet_kwargs`` makes one segment per conditioning; batching the parts of a prompt and the
    two sides of classifier-free guidance concatenates them (``concat``). When every segment
    has the very same entries, each ControlNet runs once on the whole batch (as diffusers
    does); otherwise per segment, and a segment without controls gets no residuals.
    """

    segments: tuple[Segment, ...]

    @classmethod
    def build(cls, entries: Iterable[ControlEntry], batch: int, height: int, width: int,
              device: torch.device, dtype: torch.dtype) -> "ControlBatch":
        """One segment of ``batch`` samples with each entry's hint prepared for ``height × width``."""
        entries = tuple(entries)
        hints = tuple(prepare_hint(e, batch, height, width, device, dtype) for e in entries)
        hints = tuple(e.control_net.states(h) if e.control_net.kind != "controlnet" else h
                      for e, h in zip(entries, hints))  # T2I-Adapters: feature maps, once per run
        return cls((Segment(batch, entries, hints),))

    @property
    def empty(self) -> bool:
        """Whether no sample has a control."""
        return not any(s.entries for s in self.segments)

    def concat(self, other: "ControlBatch") -> "ControlBatch":
        """The controls of ``self``'s samples followed by ``other``'s (``sampler._cat`` calls it)."""
        return ControlBatch(self.segments + other.segments)

    def residuals(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> Optional[Residuals]:
        """Summed (down, mid) residuals of the active controls for the batch ``x``, or None."""
        step = cond.get(STEP_KEY)
        first = self.segments[0].entries
        if all(len(s.entries) == len(first) and all(p is q for p, q in zip(s.entries, first))
               for s in self.segments):
            # every sample has the same controls: each ControlNet runs once on the whole batch
            total: Optional[Residuals] = None
            for k, entry in enumerate(first):
                if entry.active(step) and entry.control_net.kind == "controlnet":
                    hint = torch.cat([s.hints[k] for s in self.segments])
                    total = _add(total, run_control(entry, x, t, cond, hint))
            return total
        parts: list[Optional[Residuals]] = []
        start = 0
        for s in self.segments:
            rows = slice(start, start + s.size)
            start += s.size
            sub = _rows(cond, rows, x.shape[0])
            total = None
            for entry, hint in zip(s.entries, s.hints):
                if entry.active(step) and entry.control_net.kind == "controlnet":
                    total = _add(total, run_control(entry, x[rows], _rows(t, rows, x.shape[0]), sub, hint))
            parts.append(total)
        like = next((p for p in parts if p is not None), None)
        if like is None:
            return None
        sizes = [s.size for s in self.segments]
        filled = [p if p is not None else _zeros(like, n) for p, n in zip(parts, sizes)]
        return ([torch.cat([p[0][j] for p in filled]) for j in range(len(like[0]))],
                torch.cat([p[1] for p in filled]))


    def intrablock(self, step: Optional[tuple[int, int]]) -> Optional[list[torch.Tensor]]:
        """The active T2I-Adapters' feature maps × strength, summed per level (None without any).

        A segment without adapters gets zeros, as a part without ControlNets does.
        """
        parts: list[Optional[list[torch.Tensor]]] = []
        for s in self.segments:
            total: Optional[list[torch.Tensor]] = None
            for entry, states in zip(s.entries, s.hints):
                if entry.control_net.kind != "controlnet" and entry.active(step):
                    scaled = [f * entry.strength for f in states]
                    total = scaled if total is None else [a + b for a, b in zip(total, scaled)]
            parts.append(total)
        like = next((p for p in parts if p is not None), None)
        if like is None:
            return None
        if len(parts) == 1:
            return like
        filled = [p if p is not None else [torch.zeros((s.size, *f.shape[1:]), dtype=f.dtype, device=f.device)
                                           for f in like] for p, s in zip(parts, self.segments)]
        return [torch.cat([p[j] for p in filled]) for j in range(len(like))]


def _rows(value: Any, rows: slice, batch: int) -> Any:
    """``value`` restricted to the batch rows ``rows`` (tensors batched like the latents)."""
    if isinstance(value, torch.Tensor):
        return value[rows] if value.ndim > 0 and value.shape[0] == batch else value
    if isinstance(value, dict):
        return {k: _rows(v, rows, batch) for k, v in value.items()}
    return value


def _zeros(like: Residuals, n: int) -> Residuals:
    return [torch.zeros((n, *d.shape[1:]), dtype=d.dtype, device=d.device) for d in like[0]], \
        torch.zeros((n, *like[1].shape[1:]), dtype=like[1].dtype, device=like[1].device)


def _add(total: Optional[Residuals], new: Residuals) -> Residuals:
    if total is None:
        return new
    return [a + b for a, b in zip(total[0], new[0])], total[1] + new[1]


def run_control(entry: ControlEntry, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any],
                hint: torch.Tensor) -> Residuals:
    """One ControlNet's (down, mid) residuals, scaled by the entry's strength, as float32.

    ``cond`` holds the UNet's ``encoder_hidden_states`` (and SDXL's ``added_cond_kwargs``):
    the ControlNet sees the same text and size conditioning as the UNet, as in diffusers.
    """
    model = entry.control_net.model
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None else torch.float32
    added = cond.get("added_cond_kwargs")
    if added is not None:
        added = {k: v.to(dtype) if v.is_floating_point() else v for k, v in added.items()}
    down, mid = model(x.to(dtype), t, encoder_hidden_states=cond["encoder_hidden_states"].to(dtype),
                      controlnet_cond=hint.to(dtype), conditioning_scale=float(entry.strength),
                      added_cond_kwargs=added, return_dict=False)
    return [d.float() for d in down], mid.float()
