"""A Flux-architecture model of reduced depth for bench/gpu.py: Loom's graph vs ``FluxPipeline``.

Flux.1-dev's widths (24 heads × 128, joint dim 4096, pooled 768, 64 packed channels, guidance
embedding) with 2 double-stream and 4 single-stream blocks instead of 19 and 38; CLIP-L at its
real size and a 2-layer T5 of T5-XXL's width (the encoders are not what is measured); the
16-channel Flux VAE config. ``tiny=True`` uses the tiny test components instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from _gpu_models import NEGATIVE, PROMPT, BenchModel, count_flops, graph
from loom_nodes._lib.diffusion.components import ClipPart, DiffusionVAE
from loom_nodes._lib.diffusion.dit_configs import FLUX_DEV_SCHEDULER, VAE16, VAE_SCALING
from loom_nodes._lib.diffusion.tiny import tiny_tokenizer
from loom_nodes._lib.diffusion.tiny_dit import tiny_flux, tiny_t5_tokenizer
from loom_nodes._lib.diffusion.transformer import TransformerDenoiser, pack
from loom_nodes._lib.diffusion.transformer_text import FluxTextEncoder, T5Part

FLUX_REDUCED = dict(patch_size=1, in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=128,
                    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                    guidance_embeds=True, axes_dims_rope=(16, 56, 56))


@dataclass
class FluxFamily:
    """Flux modules on the device (one dtype) and how to run them both ways."""

    transformer: Any
    vae: Any
    clip: Any
    t5: Any
    scheduler_config: dict[str, Any]
    arch: str = "flux"

    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def modules(self) -> list[torch.nn.Module]:
        return [self.transformer, self.vae, self.clip, self.t5]

    def bundle(self) -> BenchModel:
        vae = DiffusionVAE(self.vae, "bench-flux")
        den = TransformerDenoiser(self.transformer, self.scheduler_config, "flux", "bench-flux",
                                  latent_family=vae.family, latent_channels=vae.latent_channels)
        te = FluxTextEncoder(ClipPart(tiny_tokenizer(), self.clip), T5Part(tiny_t5_tokenizer(), self.t5), "bench-flux")
        return BenchModel(den, te, vae)

    def pipeline(self) -> Any:
        from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

        pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_config(self.scheduler_config),
                            vae=self.vae, text_encoder=self.clip, tokenizer=tiny_tokenizer(),
                            text_encoder_2=self.t5, tokenizer_2=tiny_t5_tokenizer(), transformer=self.transformer)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def workflow(self, name: str, size: int, batch: int, steps: int, cfg: float, seed: int) -> dict[str, Any]:
        """Loom's graph with flux_guidance = ``cfg`` and cfg 1 (no negative pass), as FluxPipeline runs."""
        return graph(name, size, batch, steps, cfg, seed, "flow_euler", guidance=cfg)

    def run_pipeline(self, pipe: Any, size: int, batch: int, steps: int, cfg: float, seed: int) -> torch.Tensor:
        noise = torch.randn((batch, 16, size // 8, size // 8), generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float32)
        return pipe(prompt=PROMPT, height=size, width=size, num_images_per_prompt=batch, num_inference_steps=steps,
                    guidance_scale=cfg, latents=pack(noise).to(self.device, self.dtype), output_type="pt").images

    def flops(self, batch: int, size: int) -> float:
        """FLOPs of one transformer call at ``size``² (batch ``batch``; Flux dev has no negative pass)."""
        tr, dev, dt = self.transformer, self.device, self.dtype
        h = size // 16
        c = tr.config
        kw = dict(hidden_states=torch.randn(batch, h * h, c.in_channels, device=dev, dtype=dt),
                  encoder_hidden_states=torch.randn(batch, 512, c.joint_attention_dim, device=dev, dtype=dt),
                  pooled_projections=torch.randn(batch, c.pooled_projection_dim, device=dev, dtype=dt),
                  timestep=torch.full((batch,), 0.5, device=dev, dtype=dt),
                  guidance=torch.full((batch,), 3.5, device=dev, dtype=torch.float32),
                  img_ids=torch.zeros(h * h, 3, device=dev, dtype=dt), txt_ids=torch.zeros(512, 3, device=dev, dtype=dt))
        return count_flops(lambda: tr(**kw))

    def attention(self) -> str:
        return type(next(iter(self.transformer.attn_processors.values()))).__name__


def build_flux(device: torch.device, dtype: torch.dtype, *, tiny: bool = False, seed: int = 0) -> FluxFamily:
    """Random-weight Flux modules built on ``device`` in ``dtype``."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    if tiny:
        parts = tiny_flux(seed)
        return FluxFamily(parts["transformer"].to(device, dtype), parts["vae"].to(device, dtype),
                          parts["text_encoder"].to(device, dtype), parts["text_encoder_2"].to(device, dtype),
                          {"_class_name": type(parts["scheduler"]).__name__, **dict(parts["scheduler"].config)})
    torch.manual_seed(seed)
    with torch.device(device):
        tr = FluxTransformer2DModel(**FLUX_REDUCED).to(dtype).eval()
        vae_cfg = {k: v for k, v in VAE16.items() if not k.startswith("_")} | VAE_SCALING["flux"] | {"force_upcast": False}
        vae = AutoencoderKL.from_config(vae_cfg).to(dtype).eval()
        clip = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                            num_attention_heads=12, max_position_embeddings=77,
                                            bos_token_id=0, eos_token_id=1, pad_token_id=1)).to(dtype).eval()
        t5 = T5EncoderModel(T5Config(vocab_size=len(tiny_t5_tokenizer()), d_model=4096, d_kv=64, d_ff=10240,
                                     num_layers=2, num_heads=64, feed_forward_proj="gated-gelu",
                                     dropout_rate=0.0, pad_token_id=0, eos_token_id=1)).to(dtype).eval()
    return FluxFamily(tr, vae, clip, t5, dict(FLUX_DEV_SCHEDULER))


__all__ = ["FluxFamily", "build_flux", "NEGATIVE"]
