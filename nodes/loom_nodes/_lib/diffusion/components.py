"""Wrappers that the diffusion sockets carry: a denoiser, a VAE, text encoders, a scheduler choice.

Each holds torch modules that live on the CPU between uses; computing methods take the
model manager (``ctx.models``) and the device, put the modules there with ``manager.use``,
and return CPU float32 tensors (cached values never pin device memory).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from loom.types import VAE, Conditioning, Denoiser, Scheduler, TextEncoder

from ..patches import Patch, applied
from . import preview
from .conds import expand_batch
from .controlnet import ControlBatch, controls
from .embeddings import Embedding, injected, slots, split
from .families import downscale_factor, latent_family
from .prompt import apply_weights, chunk_tokens, is_unweighted, parse_weights, plain_text
from .sdxl import time_ids
from .tiling import tiled

log = logging.getLogger(__name__)


class Patchable:
    """A wrapper that may carry weight patches (LoRA…) applied around its module calls.

    ``with_patches`` gives a new wrapper sharing the same modules: the base modules, held by
    the model manager, are never modified (see ``loom_nodes._lib.patches``).
    """

    patches: tuple[Patch, ...] = ()

    def with_patches(self, patches: tuple[Patch, ...]) -> Any:
        """A shallow copy of this wrapper with ``patches`` added to its own."""
        new = copy.copy(self)
        new.patches = tuple(self.patches) + tuple(patches)
        return new


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    """dtype of a module's first parameter (float32 if it has none)."""
    p = next(module.parameters(), None)
    return p.dtype if p is not None else torch.float32


# --- VAE -------------------------------------------------------------------------------
class DiffusionVAE(VAE):
    """A diffusers ``AutoencoderKL`` with its latent scaling (and SD3-style shift)."""

    def __init__(self, vae: Any, name: str = "") -> None:
        self.vae, self.name = vae, name
        cfg = vae.config
        self.scaling = float(getattr(cfg, "scaling_factor", None) or 1.0)
        shift = getattr(cfg, "shift_factor", None)
        self.shift = float(shift) if shift is not None else None
        self.family = latent_family(cfg)
        self.downscale = downscale_factor(cfg)
        self.latent_channels = int(getattr(cfg, "latent_channels", 4))
        self.force_upcast = bool(getattr(cfg, "force_upcast", False))

    def to_latent_space(self, z: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents → model latents."""
        if self.shift is not None:
            return (z - self.shift) * self.scaling
        return z * self.scaling

    def from_latent_space(self, z: torch.Tensor) -> torch.Tensor:
        """Model latents → raw VAE latents."""
        if self.shift is not None:
            return z / self.scaling + self.shift
        return z / self.scaling

    def _run(self, manager: Any, device: torch.device, fn_name: str, x: torch.Tensor,
             tile: int, overlap: int, scale: float) -> torch.Tensor:
        vae = self.vae
        with manager.use(vae):
            dtype = torch.float32 if self.force_upcast else module_dtype(vae)
            out = self._call(fn_name, x, device, dtype, tile, overlap, scale)
            if dtype != torch.float32 and not torch.isfinite(out).all():
                log.warning("VAE %s gave NaN/inf in %s; redoing it in float32", fn_name, dtype)
                out = self._call(fn_name, x, device, torch.float32, tile, overlap, scale)
        return out

    def _call(self, fn_name: str, x: torch.Tensor, device: torch.device, dtype: torch.dtype,
              tile: int, overlap: int, scale: float) -> torch.Tensor:
        vae = self.vae
        original = module_dtype(vae)
        if original != dtype:
            vae.to(dtype)
        try:
            if fn_name == "decode":
                fn = lambda z: vae.decode(z.to(device, dtype)).sample.float()  # noqa: E731
            else:
                fn = lambda im: vae.encode(im.to(device, dtype)).latent_dist.mean.float()  # noqa: E731
            return tiled(fn, x, tile, overlap, scale)
        finally:
            if original != dtype:
                vae.to(original)

    def encode(self, images: torch.Tensor, manager: Any, device: torch.device, tile: int = 0) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] → model latents (CPU float32)."""
        x = images[:, :3].float() * 2 - 1
        raw = self._run(manager, device, "encode", x, tile, tile // 8, 1 / self.downscale)
        return self.to_latent_space(raw).cpu()

    def decode(self, latents: torch.Tensor, manager: Any, device: torch.device, tile: int = 0) -> torch.Tensor:
        """Model latents → images (B, 3, H, W) in [0, 1] (CPU float32)."""
        z = self.from_latent_space(latents.float())
        lt = tile // self.downscale if tile > 0 else 0
        img = self._run(manager, device, "decode", z, lt, lt // 4, float(self.downscale))
        return (img / 2 + 0.5).clamp(0, 1).cpu()


# --- text encoders -----------------------------------------------------------------------
@dataclass
class ClipPart:
    """One CLIP text model and its tokenizer, and which hidden layer conditions the UNet."""

    tokenizer: Any
    model: Any
    layer: str = "last"          # "last" (final layer norm applied) or "penultimate"
    pooled: bool = False         # give the projected pooled output (SDXL's second encoder)


def clip_states(model: Any, layer: str, out: Any, skip: int) -> torch.Tensor:
    """The token states that condition the UNet: ``layer``, moved ``skip - 1`` layers down.

    As diffusers' ``clip_skip = skip - 1``: below the last layer the final layer norm is applied
    (SD 1.x/2.x); SDXL's penultimate-layer states are taken as they are.
    """
    if layer == "last":
        if skip <= 1:
            return out.last_hidden_state
        return getattr(model, "text_model", model).final_layer_norm(out.hidden_states[-skip])
    return out.hidden_states[-1 - max(skip, 1)]


class ClipTextEncoder(Patchable, TextEncoder):
    """CLIP text encoder(s): SD 1.x/2.x (one) or SDXL (two, states concatenated + pooled)."""

    clip_skip: int = 1  # 1: each model's own layer; k > 1: k − 1 layers below it (clip_set_last_layer)

    def __init__(self, parts: list[ClipPart], family: str, name: str = "") -> None:
        self.parts, self.family, self.name = parts, family, name

    @property
    def modules(self) -> list[torch.nn.Module]:
        """The torch modules (for the model manager)."""
        return [p.model for p in self.parts]

    def _breaks(self, tok: Any) -> frozenset[int]:
        """Ids after which a long prompt prefers to be split (the comma), cached per tokenizer."""
        cache = self.__dict__.setdefault("_break_ids", {})
        if id(tok) not in cache:
            comma = tok.convert_tokens_to_ids(",</w>")
            cache[id(tok)] = frozenset([comma]) if comma not in (None, tok.unk_token_id) else frozenset()
        return cache[id(tok)]

    def _ids(self, part: ClipPart, segments: list[tuple[str, float]],
             slot_ids: dict[str, list[int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tok = part.tokenizer
        ids: list[int] = []
        weights: list[float] = []
        for text, w in segments:
            for piece, is_emb in split(text) if slot_ids else [(text, False)]:
                t = slot_ids[piece] if is_emb and slot_ids else (
                    tok(piece, add_special_tokens=False, truncation=False)["input_ids"] if piece else [])
                ids += t
                weights += [w] * len(t)
        length = int(getattr(tok, "model_max_length", 77) or 77)
        if length > 4096:
            length = 77
        breaks = self._breaks(tok)
        rows, wrows = [], []
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        for c_ids, c_w in chunk_tokens(ids, weights, length - 2, breaks):
            n = length - 2 - len(c_ids)
            rows.append([tok.bos_token_id] + c_ids + [tok.eos_token_id] + [pad] * n)
            wrows.append([1.0] + c_w + [1.0] + [1.0] * n)
        return torch.tensor(rows), torch.tensor(wrows)

    def encode(self, prompt: str, manager: Any, device: torch.device,
               embeddings: dict[str, Embedding] | None = None) -> Conditioning:
        """Prompt (with optional weighting syntax) → Conditioning (1, T, D) on the CPU.

        ``embeddings``: the textual inversions its ``embedding:name`` words name (see embeddings.py).
        """
        segments = parse_weights(prompt)
        states, pooled = [], None
        with manager.use(*self.modules), applied(self.patches):
            for i, part in enumerate(self.parts):
                width = part.model.get_input_embeddings().weight.shape[-1]
                slot_ids, vectors = slots(embeddings or {}, i, len(self.parts), width, len(part.tokenizer))
                ids, weights = self._ids(part, segments, slot_ids)
                with injected(part.model, len(part.tokenizer), vectors):
                    out = part.model(ids.to(device), output_hidden_states=part.layer != "last" or self.clip_skip > 1)
                h = clip_states(part.model, part.layer, out, self.clip_skip)
                h = apply_weights(h.float(), weights).cpu()
                states.append(h.reshape(1, -1, h.shape[-1]))
                if part.pooled:
                    pooled = (out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output)[:1].float().cpu()
        if len({s.shape[1] for s in states}) > 1:
            n = max(s.shape[1] for s in states)
            states = [s.repeat(1, n // s.shape[1], 1) for s in states]
        embeds = torch.cat(states, dim=-1)
        return Conditioning(embeds=embeds, pooled=pooled, family=self.family,
                            text=(plain_text(segments),))


class MiniLMTextEncoder(Patchable, TextEncoder):
    """The offline all-MiniLM-L6-v2 encoder: 32 token states of 384 dims (+ mean-pooled)."""

    family = "minilm"

    def __init__(self, minilm: Any, name: str = "embedded/minilm") -> None:
        self.minilm, self.name = minilm, name

    @property
    def modules(self) -> list[torch.nn.Module]:
        """The torch modules (for the model manager)."""
        return [self.minilm.model]

    def encode(self, prompt: str, manager: Any, device: torch.device) -> Conditioning:
        """Prompt → Conditioning (1, 32, 384); weights scale token states like for CLIP."""
        from loom_nodes._lib.minilm import MAX_TOKENS

        segments = parse_weights(prompt)
        text = plain_text(segments)
        with manager.use(self.minilm.model), applied(self.patches):
            self.minilm.device = torch.device(device)
            if is_unweighted(segments):
                states, mask = self.minilm.encode_with_mask([text])
            else:
                tok = self.minilm.tokenizer
                ids: list[int] = []
                weights: list[float] = []
                for t, w in segments:
                    piece = tok(t, add_special_tokens=False)["input_ids"] if t else []
                    ids += piece
                    weights += [w] * len(piece)
                ids, weights = ids[:MAX_TOKENS - 2], weights[:MAX_TOKENS - 2]
                n = MAX_TOKENS - 2 - len(ids)
                row = [tok.cls_token_id] + ids + [tok.sep_token_id] + [tok.pad_token_id] * n
                mask = torch.tensor([[1] * (len(ids) + 2) + [0] * n], device=device)
                out = self.minilm.model(input_ids=torch.tensor([row], device=device), attention_mask=mask,
                                        token_type_ids=torch.zeros_like(mask))
                w = torch.tensor([[1.0] + weights + [1.0] + [1.0] * n])
                states = apply_weights(out.last_hidden_state.float().cpu(), w)
        states, mask = states.float().cpu(), mask.cpu()
        m = mask.unsqueeze(-1).float()
        pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
        return Conditioning(embeds=states, pooled=pooled, mask=mask, family=self.family, text=(text,))


# --- denoiser --------------------------------------------------------------------------
class DiffusionDenoiser(Patchable, Denoiser):
    """A diffusers ``UNet2DConditionModel`` with its scheduler config and latent family."""

    runner: Any = None  # the module to call instead of ``unet`` (a compiled wrapper: accel.for_run)

    def __init__(self, unet: Any, scheduler_config: dict[str, Any], family: str, name: str = "",
                 latent_channels: int | None = None, downscale: int = 8) -> None:
        self.unet, self.name, self.family = unet, name, family
        self.scheduler_config = dict(scheduler_config)
        self.downscale = downscale
        cfg = unet.config
        self.latent_channels = latent_channels or int(cfg.out_channels)  # inpainting UNets take more in
        self.cross_attention_dim = cfg.cross_attention_dim
        self.sdxl = getattr(cfg, "addition_embed_type", None) == "text_time"
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")

    def check_conditioning(self, cond: Conditioning, what: str) -> None:
        """Raise ValueError when ``cond`` cannot condition this UNet."""
        dim = cond.embeds.shape[-1]
        want = self.cross_attention_dim
        if isinstance(want, (list, tuple)):
            want = want[0]
        if dim != want:
            raise ValueError(f"{what} has {dim}-dim token states ({cond.family} encoder) but this "
                             f"model expects {want}; use the text encoder that belongs to the model")
        if self.sdxl and cond.pooled is None:
            raise ValueError(f"{what} has no pooled output, which SDXL needs")
        for entry in controls(cond):
            entry.control_net.check_unet(self.unet)

    def unet_kwargs(self, cond: Conditioning, batch: int, height: int, width: int,
                    device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """UNet conditioning kwargs for a batch (SDXL: pooled text embeds + size time ids).

        ``control`` holds the conditioning's ControlNets with their hints prepared for
        ``height × width`` pixels (a ``ControlBatch``; empty without ControlNets).
        """
        def expand(t: torch.Tensor) -> torch.Tensor:
            return expand_batch(t, batch)
        kw: dict[str, Any] = {"encoder_hidden_states": expand(cond.embeds).to(device, dtype)}
        if self.sdxl:
            pooled = cond.pooled
            assert pooled is not None
            ids = torch.tensor([time_ids(cond.extras, height, width, self.unet.config, pooled.shape[-1])], dtype=dtype)
            kw["added_cond_kwargs"] = {"text_embeds": expand(pooled).to(device, dtype),
                                       "time_ids": ids.expand(batch, -1).to(device)}
        kw["control"] = ControlBatch.build(controls(cond), batch, height, width, device, dtype)
        return kw

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        """Prediction (noise, v or x0, per the scheduler config) for latents ``x`` at ``t``.

        ControlNets in ``cond["control"]`` active at ``cond["step"]`` (step index, step count)
        add their summed residuals to the UNet's down and middle blocks (T2I-Adapters: their
        feature maps inside the down blocks). An inpainting model's
        ``cond["concat"]`` (mask + masked-image latents, see ``inpaint.py``) is appended to the
        latents' channels for the UNet only (ControlNets see the latents).
        """
        dtype = module_dtype(self.unet)
        extra: dict[str, Any] = {}
        control = cond.get("control")
        if isinstance(control, ControlBatch) and not control.empty:
            res = control.residuals(x, t, cond)
            if res is not None:
                extra = {"down_block_additional_residuals": [d.to(dtype) for d in res[0]],
                         "mid_block_additional_residual": res[1].to(dtype)}
            states = control.intrablock(cond.get("step"))  # T2I-Adapters' feature maps × strength
            if states is not None:
                extra["down_intrablock_additional_residuals"] = [f.to(dtype) for f in states]
        concat = cond.get("concat")
        x_in = x if concat is None else torch.cat([x, concat.to(x.device, x.dtype)], dim=1)
        with applied(self.patches):
            out = (self.unet if self.runner is None else self.runner)(x_in.to(dtype), t, encoder_hidden_states=cond["encoder_hidden_states"],
                            added_cond_kwargs=cond.get("added_cond_kwargs"), return_dict=False, **extra)[0]
        return out.to(x.dtype)


@dataclass(frozen=True)
class SchedulerChoice(Scheduler):
    """Which diffusers scheduler to build from the model's config, and its options."""

    name: str = "euler"
    sigmas: str = "default"
    spacing: str = "default"
    extra: dict[str, Any] = field(default_factory=dict)


def register_preview(family: str, info: dict[str, Any]) -> None:
    """Use a model's own latent→RGB factors (``latent_rgb``: {"weight", "bias"}) for previews."""
    rgb = info.get("latent_rgb")
    if isinstance(rgb, dict) and "weight" in rgb:
        preview.register(family, rgb["weight"], rgb.get("bias", [0.0, 0.0, 0.0]))
