"""Configs of transformer denoisers (SD3, Flux, PixArt) read from the shapes of their weights.

Every function here takes ``{key: shape}`` in diffusers' key layout (``dit_single_file``
converts original layouts first, on meta tensors) and gives the keyword arguments of the
diffusers model class. What the shapes cannot tell follows the published models:

- SD3/3.5: attention heads are 64 wide unless the file has q/k norms (then their width); with
  neither the MMDiT rule holds (as many heads as blocks).
- Flux: rope axes are Flux's (16, 56, 56) scaled to the head width; the MLP ratio is 4.
- PixArt: 16 heads; the sample size comes from a stored ``pos_embed`` (or the file name:
  512 / 1024 / 2K), else 1024 px.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from .infer_config import ids_after
from .loading import ModelLoadError

Shapes = Mapping[str, tuple[int, ...]]

# Scheduler configs of the published models (diffusers' scheduler_config.json of each).
FLOW_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}
FLUX_DEV_SCHEDULER = {**FLOW_SCHEDULER, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15,
                      "base_image_seq_len": 256, "max_image_seq_len": 4096}
FLUX_SCHNELL_SCHEDULER = {**FLOW_SCHEDULER, "shift": 1.0, "use_dynamic_shifting": False}
PIXART_SCHEDULER = {"_class_name": "DPMSolverMultistepScheduler", "num_train_timesteps": 1000,
                    "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
                    "prediction_type": "epsilon", "algorithm_type": "dpmsolver++", "solver_order": 2,
                    "timestep_spacing": "linspace", "steps_offset": 0}

# The 16-channel VAEs of SD3 and Flux (same architecture, different latent scaling).
VAE16 = {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 16,
         "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
         "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "act_fn": "silu",
         "norm_num_groups": 32, "sample_size": 1024, "force_upcast": True, "use_quant_conv": False,
         "use_post_quant_conv": False, "mid_block_add_attention": True}
VAE_SCALING = {"sd3": {"scaling_factor": 1.5305, "shift_factor": 0.0609},
               "flux": {"scaling_factor": 0.3611, "shift_factor": 0.1159}}


def _need(s: Shapes, family: str, *keys: str) -> None:
    missing = [k for k in keys if k not in s]
    if missing:
        raise ModelLoadError(f"unrecognised {family} transformer layout: no {', '.join(missing[:3])}")


def _blocks(s: Shapes, prefix: str, family: str) -> list[int]:
    ids = ids_after(s, prefix)
    if not ids or ids != list(range(len(ids))):
        raise ModelLoadError(f"unrecognised {family} transformer layout: {prefix}N blocks {ids[:8]}")
    return ids


def sd3_config(s: Shapes) -> dict[str, Any]:
    """``SD3Transformer2DModel`` keyword arguments from diffusers-layout shapes."""
    _need(s, "SD3", "pos_embed.proj.weight", "pos_embed.pos_embed", "context_embedder.weight",
          "time_text_embed.text_embedder.linear_1.weight", "proj_out.weight")
    hidden, in_ch, patch, _ = s["pos_embed.proj.weight"]
    grid = math.isqrt(s["pos_embed.pos_embed"][1])
    if grid * grid != s["pos_embed.pos_embed"][1]:
        raise ModelLoadError(f"SD3 pos_embed holds {s['pos_embed.pos_embed'][1]} positions, not a square grid")
    caption, joint = s["context_embedder.weight"]
    if caption != hidden:
        raise ModelLoadError(f"SD3 context projection width {caption} differs from the model width {hidden}")
    layers = _blocks(s, "transformer_blocks.", "SD3")
    norm = s.get("transformer_blocks.0.attn.norm_q.weight")
    head = norm[0] if norm else (hidden // len(layers) if hidden % len(layers) == 0 else 64)
    if hidden % head:
        raise ModelLoadError(f"SD3 width {hidden} is not a multiple of the {head}-wide attention heads")
    return {"sample_size": min(128, grid), "patch_size": patch, "in_channels": in_ch, "num_layers": len(layers),
            "attention_head_dim": head, "num_attention_heads": hidden // head, "joint_attention_dim": joint,
            "caption_projection_dim": caption,
            "pooled_projection_dim": s["time_text_embed.text_embedder.linear_1.weight"][1],
            "out_channels": s["proj_out.weight"][0] // (patch * patch), "pos_embed_max_size": grid,
            "dual_attention_layers": tuple(i for i in layers if f"transformer_blocks.{i}.attn2.to_q.weight" in s),
            "qk_norm": "rms_norm" if norm else None}


def sd3_variant(cfg: Mapping[str, Any]) -> str:
    """A readable name for an SD3 config (for the log)."""
    if cfg["dual_attention_layers"]:
        return "SD3.5 Medium" if cfg["num_layers"] == 24 else "SD3.5 (MMDiT-X)"
    if cfg["num_layers"] == 38:
        return "SD3.5 Large"
    return "SD3 Medium" if cfg["num_layers"] == 24 else f"SD3 ({cfg['num_layers']} blocks)"


def rope_axes(head: int) -> tuple[int, int, int]:
    """Flux's rope axes (16, 56, 56) for 128-wide heads, scaled to ``head`` (each even)."""
    first = max(2, head // 8 // 2 * 2)
    rest = head - first
    second = rest // 2 // 2 * 2
    return first, second, rest - second


def flux_config(s: Shapes) -> dict[str, Any]:
    """``FluxTransformer2DModel`` keyword arguments from diffusers-layout shapes."""
    _need(s, "Flux", "x_embedder.weight", "context_embedder.weight", "proj_out.weight",
          "time_text_embed.text_embedder.linear_1.weight", "transformer_blocks.0.attn.norm_q.weight",
          "single_transformer_blocks.0.proj_mlp.weight")
    hidden, in_ch = s["x_embedder.weight"]
    head = s["transformer_blocks.0.attn.norm_q.weight"][0]
    if hidden % head:
        raise ModelLoadError(f"Flux width {hidden} is not a multiple of the {head}-wide attention heads")
    mlp = s["single_transformer_blocks.0.proj_mlp.weight"][0]
    if mlp != 4 * hidden:
        raise ModelLoadError(f"Flux single blocks have an MLP of {mlp} for width {hidden}; only ratio 4 is known")
    return {"patch_size": 1, "in_channels": in_ch, "out_channels": s["proj_out.weight"][0],
            "num_layers": len(_blocks(s, "transformer_blocks.", "Flux")),
            "num_single_layers": len(_blocks(s, "single_transformer_blocks.", "Flux")),
            "attention_head_dim": head, "num_attention_heads": hidden // head,
            "joint_attention_dim": s["context_embedder.weight"][1],
            "pooled_projection_dim": s["time_text_embed.text_embedder.linear_1.weight"][1],
            "guidance_embeds": "time_text_embed.guidance_embedder.linear_1.weight" in s,
            "axes_dims_rope": rope_axes(head)}


def pixart_sample_size(positions: int | None, name: str = "", patch: int = 2) -> int:
    """Latent sample size: from the stored position grid, else the file name, else 128 (1024 px)."""
    if positions:
        return math.isqrt(positions) * patch
    lower = name.lower()
    if "2k" in lower or "2048" in lower:
        return 256
    if "512" in lower:
        return 64
    if "256" in lower:
        return 32
    return 128


def pixart_config(s: Shapes, positions: int | None = None, name: str = "") -> dict[str, Any]:
    """``PixArtTransformer2DModel`` keyword arguments from diffusers-layout shapes."""
    _need(s, "PixArt", "pos_embed.proj.weight", "proj_out.weight", "caption_projection.linear_1.weight",
          "adaln_single.linear.weight")
    hidden, in_ch, patch, _ = s["pos_embed.proj.weight"]
    heads = 16 if hidden % 16 == 0 else 1
    return {"num_attention_heads": heads, "attention_head_dim": hidden // heads, "in_channels": in_ch,
            "out_channels": s["proj_out.weight"][0] // (patch * patch),
            "num_layers": len(_blocks(s, "transformer_blocks.", "PixArt")), "cross_attention_dim": hidden,
            "sample_size": pixart_sample_size(positions, name, patch), "patch_size": patch,
            "caption_channels": s["caption_projection.linear_1.weight"][1], "norm_type": "ada_norm_single",
            "use_additional_conditions":
                "adaln_single.emb.resolution_embedder.linear_1.weight" in s,
            "attention_bias": True, "norm_elementwise_affine": False, "norm_eps": 1e-6}


def scheduler_for(family: str, transformer_config: Mapping[str, Any]) -> dict[str, Any]:
    """The scheduler config the published model of ``family`` ships with."""
    if family == "flux":
        return dict(FLUX_DEV_SCHEDULER if transformer_config.get("guidance_embeds") else FLUX_SCHNELL_SCHEDULER)
    if family == "pixart":
        return dict(PIXART_SCHEDULER)
    return dict(FLOW_SCHEDULER)
