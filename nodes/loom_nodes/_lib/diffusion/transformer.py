"""Transformer denoisers (DiT): SD3/3.5, Flux and PixArt-Σ behind the ``Denoiser`` socket.

``TransformerDenoiser(module, scheduler_config, arch, name)`` wraps a diffusers
``SD3Transformer2DModel``, ``FluxTransformer2DModel`` or ``PixArtTransformer2DModel``; ``arch``
is "sd3", "flux" or "pixart" (Loom's shapes-dit is an "sd3"-architecture model). It is called
by the sampling loop like the UNet wrapper: ``denoiser(x, t, cond)`` with ``x`` the latents
(B, C, H/8, W/8) in the model's latent space, ``t`` the scheduler's timestep and ``cond`` the
kwargs ``model_kwargs`` built for each conditioning. Everything a family needs beyond that
(Flux's 2×2 packing, its latent image ids and distilled guidance; PixArt's attention mask and
learned-sigma channels) stays in here.

Stable constructors for other loaders (single files, separate text-encoder files):

    TransformerDenoiser(module, scheduler_config, arch, name="", *, latent_family=None,
                        latent_channels=None, downscale=8)          # arch: "sd3" | "flux" | "pixart"
    transformer_text.SD3TextEncoder(clip_l: ClipPart, clip_g: ClipPart, t5: T5Part | None, name="",
                                    *, max_length=256, t5_width=4096)
    transformer_text.FluxTextEncoder(clip_l: ClipPart, t5: T5Part, name="", *, max_length=512)
    transformer_text.PixArtTextEncoder(t5: T5Part, name="", *, max_length=300)
    components.ClipPart(tokenizer, model)       transformer_text.T5Part(tokenizer, model)
    transformer_loading.scheduler_config_for(arch) -> dict   # the pipelines' scheduler configs
"""
from __future__ import annotations

from typing import Any

import torch

from loom.types import Conditioning, Denoiser

from ..patches import applied
from .components import Patchable, module_dtype
from .conds import expand_batch
from .controlnet import controls

ARCHS = ("sd3", "flux", "pixart")
# latent space of each architecture's usual VAE (PixArt-Σ uses SDXL's)
DEFAULT_LATENT_FAMILY = {"sd3": "sd3", "flux": "flux", "pixart": "sdxl"}
FLUX_GUIDANCE_KEY = "flux_guidance"
FLUX_DEFAULT_GUIDANCE = 3.5   # FluxPipeline's guidance_scale default


def arch_of(module: Any) -> str:
    """"sd3", "flux" or "pixart" from a diffusers transformer's class name."""
    name = type(module).__name__
    if name.startswith("SD3"):
        return "sd3"
    if name.startswith("Flux"):
        return "flux"
    if name.startswith("PixArt"):
        return "pixart"
    raise ValueError(f"{name} is not a transformer denoiser Loom knows (SD3, Flux, PixArt)")


def pack(x: torch.Tensor) -> torch.Tensor:
    """Flux: latents (B, C, h, w) → tokens (B, h/2 · w/2, 4C), 2×2 patches."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Flux: tokens (B, h/2 · w/2, 4C) → latents (B, C, h, w); the inverse of ``pack``."""
    b, _, ch = tokens.shape
    x = tokens.view(b, h // 2, w // 2, ch // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, ch // 4, h, w)


def image_ids(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Flux's positions of the packed latent tokens: (h/2 · w/2, 3) rows of (0, row, column)."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = ids[..., 1] + torch.arange(h // 2)[:, None]
    ids[..., 2] = ids[..., 2] + torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


def calculate_shift(seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096,
                    base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """Flux's resolution-dependent shift ``mu``: linear in the image's token count."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return seq_len * m + base_shift - m * base_seq_len


class TransformerDenoiser(Patchable, Denoiser):
    """A diffusers DiT (SD3, Flux or PixArt-Σ) with its scheduler config and latent space.

    ``arch``: "sd3", "flux" or "pixart". ``latent_family`` names the latent space the model
    works in (default: the architecture's usual VAE; a loader that has the VAE passes its
    family), ``latent_channels`` the channels of that space (default from the module).
    """

    runner: Any = None  # the module to call instead of ``module`` (a compiled wrapper: accel.for_run)

    def __init__(self, module: Any, scheduler_config: dict[str, Any], arch: str, name: str = "", *,
                 latent_family: str | None = None, latent_channels: int | None = None,
                 downscale: int = 8) -> None:
        if arch not in ARCHS:
            raise ValueError(f"unknown transformer architecture {arch!r} (one of {', '.join(ARCHS)})")
        self.module, self.arch, self.name = module, arch, name
        self.scheduler_config = dict(scheduler_config)
        self.family = latent_family or DEFAULT_LATENT_FAMILY[arch]
        self.downscale = int(downscale)
        cfg = module.config
        if latent_channels is None:
            latent_channels = int(cfg.in_channels) // 4 if arch == "flux" else int(cfg.in_channels)
        self.latent_channels = int(latent_channels)
        self.prediction_type = "flow" if self.flow else self.scheduler_config.get("prediction_type", "epsilon")

    # --- what the sampling node asks of a denoiser ------------------------------------
    @property
    def flow(self) -> bool:
        """Whether the model is trained for flow matching (SD3, Flux) rather than noise prediction."""
        return str(self.scheduler_config.get("_class_name", "")).startswith("FlowMatch")

    @property
    def modules(self) -> list[torch.nn.Module]:
        """The torch modules (for the model manager)."""
        return [self.module]

    @property
    def patch(self) -> int:
        """Latent cells per token side: the transformer's patch size (Flux packs 2×2)."""
        return 2 if self.arch == "flux" else int(getattr(self.module.config, "patch_size", 1) or 1)

    def text_width(self) -> int:
        """Width of the token states the model takes."""
        cfg = self.module.config
        if self.arch == "pixart":
            return int(cfg.caption_channels or cfg.cross_attention_dim)
        return int(cfg.joint_attention_dim)

    def pooled_width(self) -> int | None:
        """Width of the pooled text vector the model takes (None: it takes none)."""
        return None if self.arch == "pixart" else int(self.module.config.pooled_projection_dim)

    def check_conditioning(self, cond: Conditioning, what: str) -> None:
        """Raise ValueError when ``cond`` cannot condition this model."""
        dim, want = cond.embeds.shape[-1], self.text_width()
        if dim != want:
            raise ValueError(f"{what} has {dim}-dim token states ({cond.family} encoder) but this {self.arch} "
                             f"model expects {want}; use the text encoder that belongs to the model")
        pw = self.pooled_width()
        if pw is not None:
            if cond.pooled is None:
                raise ValueError(f"{what} has no pooled text vector ({cond.family} encoder), which this "
                                 f"{self.arch} model needs; use the text encoder that belongs to the model")
            if cond.pooled.shape[-1] != pw:
                raise ValueError(f"{what} has a {cond.pooled.shape[-1]}-dim pooled vector but this {self.arch} "
                                 f"model expects {pw}; use the text encoder that belongs to the model")
        if controls(cond):
            raise ValueError(f"{what} carries ControlNets, which only work with UNet models for now")

    def check_latent(self, shape: tuple[int, ...]) -> None:
        """Raise ValueError when latents of ``shape`` do not fit the model's patches."""
        p = self.patch
        h, w = int(shape[-2]), int(shape[-1])
        if h % p or w % p:
            px = p * self.downscale
            raise ValueError(f"this {self.arch} model needs image sides divisible by {px} px, got "
                             f"{w * self.downscale} × {h * self.downscale}")

    def seq_len(self, h: int, w: int) -> int:
        """Image tokens for latents of h × w cells (what Flux's dynamic shift depends on)."""
        return (h // self.patch) * (w // self.patch)

    def timestep_args(self, scheduler: Any, steps: int, size: tuple[int, int]) -> dict[str, Any]:
        """Extra ``set_timesteps`` arguments the model's pipeline passes for ``steps`` steps.

        Flux: sigmas ``linspace(1, 1/steps)`` and, with dynamic shifting, ``mu`` from the image's
        token count (as FluxPipeline); SD3: ``mu`` only when its config shifts dynamically.
        """
        import numpy as np

        params = _set_timestep_params(scheduler)
        out: dict[str, Any] = {}
        if self.arch == "flux" and "sigmas" in params and not scheduler.config.get("use_flow_sigmas", False):
            out["sigmas"] = np.linspace(1.0, 1 / steps, steps)
        mu = self.dynamic_mu(size)
        if mu is not None and "mu" in params and scheduler.config.get("use_dynamic_shifting", False):
            out["mu"] = mu
        return out

    def dynamic_mu(self, size: tuple[int, int]) -> float | None:
        """Flux-style dynamic shift ``mu`` for latents of ``size`` cells (None: the model's shift is fixed)."""
        cfg = self.scheduler_config
        if not cfg.get("use_dynamic_shifting", False):
            return None
        return calculate_shift(self.seq_len(*size), cfg.get("base_image_seq_len", 256),
                               cfg.get("max_image_seq_len", 4096), cfg.get("base_shift", 0.5),
                               cfg.get("max_shift", 1.15))

    def model_kwargs(self, cond: Conditioning, batch: int, height: int, width: int,
                     device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """The transformer's conditioning kwargs for a batch of ``batch`` latents (tensors batched)."""
        def expand(t: torch.Tensor) -> torch.Tensor:
            return expand_batch(t, batch)
        kw: dict[str, Any] = {"encoder_hidden_states": expand(cond.embeds).to(device, dtype)}
        if self.arch == "pixart":
            mask = cond.mask
            if mask is not None:
                n = cond.embeds.shape[1]
                if mask.shape[1] != n and n % mask.shape[1] == 0:
                    mask = mask.repeat(1, n // mask.shape[1])  # states repeated to a common length
                kw["encoder_attention_mask"] = expand(mask).to(device)
            return kw
        assert cond.pooled is not None
        kw["pooled_projections"] = expand(cond.pooled).to(device, dtype)
        if self.arch == "flux" and getattr(self.module.config, "guidance_embeds", False):
            g = float(cond.extras.get(FLUX_GUIDANCE_KEY, FLUX_DEFAULT_GUIDANCE))
            kw["guidance"] = torch.full((batch,), g, device=device, dtype=torch.float32)
        return kw

    unet_kwargs = model_kwargs  # the name the sampling node knows from the UNet wrapper

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        """Prediction (velocity for flow models, noise for PixArt) for latents ``x`` at ``t``."""
        dtype = module_dtype(self.module)
        b, _, h, w = x.shape
        ts = t.reshape(-1)[:1].to(x.device).expand(b)
        states = cond["encoder_hidden_states"]
        with applied(self.patches):
            if self.arch == "flux":
                out = (self.module if self.runner is None else self.runner)(
                    hidden_states=pack(x).to(dtype), timestep=ts.to(dtype) / 1000, guidance=cond.get("guidance"),
                    pooled_projections=cond["pooled_projections"], encoder_hidden_states=states,
                    txt_ids=torch.zeros(states.shape[1], 3, device=x.device, dtype=dtype),
                    img_ids=image_ids(h, w, x.device, dtype), return_dict=False)[0]
                out = unpack(out, h, w)
            elif self.arch == "sd3":
                out = (self.module if self.runner is None else self.runner)(hidden_states=x.to(dtype), timestep=ts, encoder_hidden_states=states,
                                  pooled_projections=cond["pooled_projections"], return_dict=False)[0]
            else:
                out = (self.module if self.runner is None else self.runner)(x.to(dtype), encoder_hidden_states=states, timestep=ts,
                                  encoder_attention_mask=cond.get("encoder_attention_mask"),
                                  added_cond_kwargs={"resolution": None, "aspect_ratio": None},
                                  return_dict=False)[0]
                if out.shape[1] == 2 * self.latent_channels:
                    out = out.chunk(2, dim=1)[0]  # learned sigma: keep the noise prediction
        return out.to(x.dtype)


def _set_timestep_params(scheduler: Any) -> set[str]:
    import inspect

    return set(inspect.signature(scheduler.set_timesteps).parameters)
