"""Tiny random-weight transformer models (SD3, Flux, PixArt-Σ, a shapes-dit-like SD3) for tests.

Nothing is downloaded: CLIP tokenizers come from ``tiny.py``; the T5 tokenizer is a Unigram
model over single characters built here with the ``tokenizers`` library. Weights are random
with a fixed seed. ``save_transformer_folder`` writes a diffusers folder that both Loom and
the diffusers pipelines read.
"""
from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import torch

from .tiny import tiny_tokenizer, tiny_vocab


def tiny_t5_tokenizer(folder: Path | None = None, max_length: int = 512) -> Any:
    """A T5 tokenizer (Unigram over characters, ``</s>`` appended); saved to ``folder`` when given."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for c in string.ascii_lowercase + string.digits + ",.()[]:'-":
        pieces += [(c, -3.0), ("▁" + c, -2.5)]
    tk = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                      special_tokens=[("</s>", 1)])
    tok = T5TokenizerFast(tokenizer_object=tk, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                          extra_ids=0, model_max_length=max_length)
    if folder is None:
        return tok
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    return T5TokenizerFast.from_pretrained(folder, local_files_only=True)


def tiny_t5(width: int = 32, seed: int = 0) -> Any:
    """A random one-layer ``T5EncoderModel`` of ``width`` on the tiny T5 vocabulary."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    vocab = len(tiny_t5_tokenizer())
    cfg = T5Config(vocab_size=vocab, d_model=width, d_kv=8, d_ff=2 * width, num_layers=1, num_heads=4,
                   relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
                   feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5EncoderModel(cfg).eval()


def tiny_clip(width: int, projection: int | None, seed: int = 0) -> Any:
    """A random two-layer CLIP text model (``WithProjection`` when ``projection`` is given)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    vocab, _ = tiny_vocab()
    cfg = CLIPTextConfig(vocab_size=len(vocab), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=2,
                         pad_token_id=1, projection_dim=projection or width, hidden_act="gelu")
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(cfg).eval()


def tiny_vae(channels: int, scaling: float, shift: float | None, seed: int = 0) -> Any:
    """A random ×8 ``AutoencoderKL`` with ``channels`` latent channels."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=channels, block_out_channels=(8, 8, 16, 16),
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         layers_per_block=1, norm_num_groups=8, sample_size=64, scaling_factor=scaling,
                         shift_factor=shift).eval()


def tiny_sd3(seed: int = 0, t5: bool = True) -> dict[str, Any]:
    """Random SD3-shaped components (transformer, VAE, CLIP-L, CLIP-G, T5, scheduler)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    torch.manual_seed(seed)
    tr = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=16, num_layers=1, attention_head_dim=8,
                               num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=16,
                               pooled_projection_dim=32, out_channels=16, pos_embed_max_size=16).eval()
    return {"transformer": tr, "vae": tiny_vae(16, 1.5305, 0.0609, seed + 1),
            "text_encoder": tiny_clip(8, 16, seed + 2), "text_encoder_2": tiny_clip(16, 16, seed + 3),
            "text_encoder_3": tiny_t5(32, seed + 4) if t5 else None,
            "scheduler": FlowMatchEulerDiscreteScheduler(shift=3.0)}


def tiny_flux(seed: int = 0) -> dict[str, Any]:
    """Random Flux-shaped components (guidance-distilled transformer, VAE, CLIP-L, T5, scheduler)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    torch.manual_seed(seed)
    tr = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                pooled_projection_dim=16, guidance_embeds=True, axes_dims_rope=(4, 6, 6)).eval()
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                            base_image_seq_len=256, max_image_seq_len=4096)
    return {"transformer": tr, "vae": tiny_vae(16, 0.3611, 0.1159, seed + 1),
            "text_encoder": tiny_clip(16, None, seed + 2), "text_encoder_2": tiny_t5(32, seed + 3),
            "scheduler": sched}


def tiny_pixart(seed: int = 0) -> dict[str, Any]:
    """Random PixArt-Σ-shaped components (learned-sigma transformer, SDXL-scaled VAE, T5, DPM-Solver)."""
    from diffusers import DPMSolverMultistepScheduler, PixArtTransformer2DModel

    from .transformer_loading import scheduler_config_for

    torch.manual_seed(seed)
    tr = PixArtTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                  num_layers=1, cross_attention_dim=16, sample_size=8, patch_size=2,
                                  caption_channels=32, norm_num_groups=8).eval()
    cfg = {k: v for k, v in scheduler_config_for("pixart").items() if not k.startswith("_")}
    return {"transformer": tr, "vae": tiny_vae(4, 0.13025, None, seed + 1),
            "text_encoder": tiny_t5(32, seed + 2), "scheduler": DPMSolverMultistepScheduler(**cfg)}


def tiny_minilm_dit(seed: int = 0) -> dict[str, Any]:
    """A shapes-dit-shaped model: SD3 transformer on 4-channel latents conditioned on MiniLM (384)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    torch.manual_seed(seed)
    tr = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=1, attention_head_dim=8,
                               num_attention_heads=2, joint_attention_dim=384, caption_projection_dim=16,
                               pooled_projection_dim=384, out_channels=4, pos_embed_max_size=16).eval()
    return {"transformer": tr, "vae": tiny_vae(4, 0.5, 0.1, seed + 1),
            "scheduler": FlowMatchEulerDiscreteScheduler(shift=1.0)}


PIPELINES = {"SD3Transformer2DModel": "StableDiffusion3Pipeline", "FluxTransformer2DModel": "FluxPipeline",
             "PixArtTransformer2DModel": "PixArtSigmaPipeline"}


def save_transformer_folder(folder: Path, parts: dict[str, Any], loom: dict[str, Any] | None = None) -> Path:
    """Write ``parts`` as a diffusers folder with a tokenizer beside every text encoder."""
    folder.mkdir(parents=True, exist_ok=True)
    cls = type(parts["transformer"]).__name__
    index: dict[str, Any] = {"_class_name": PIPELINES[cls], "_diffusers_version": "0.42.1"}
    for name, m in parts.items():
        if m is None:
            index[name] = [None, None]
            if name.startswith("text_encoder"):
                index["tokenizer" + name[len("text_encoder"):]] = [None, None]
            continue
        m.save_pretrained(folder / name)
        lib = "transformers" if type(m).__module__.startswith("transformers") else "diffusers"
        index[name] = [lib, type(m).__name__]
        if name.startswith("text_encoder"):
            tok_name = "tokenizer" + name[len("text_encoder"):]
            if "T5" in type(m).__name__:
                tiny_t5_tokenizer(folder / tok_name)
                index[tok_name] = ["transformers", "T5TokenizerFast"]
            else:
                tiny_tokenizer(folder / tok_name, pad="!" if name == "text_encoder_2" else "<|endoftext|>")
                index[tok_name] = ["transformers", "CLIPTokenizer"]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    if loom is not None:
        (folder / "loom.json").write_text(json.dumps(loom))
    return folder
