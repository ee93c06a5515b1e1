"""Tiny random-weight SD-shaped models (UNet, VAE, CLIP + a small tokenizer) for tests and benchmarks.

Nothing is downloaded: the tokenizer's vocabulary is written here (letters only, no
merges), and weights are random with a fixed seed.
"""
from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import torch

SPECIALS = ["<|startoftext|>", "<|endoftext|>", "!"]


def tiny_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style vocabulary of letters, digits and punctuation (with ``</w>`` forms), no merges."""
    chars = string.ascii_lowercase + string.digits + ",.()[]:'-"
    tokens = SPECIALS + list(chars) + [c + "</w>" for c in chars]
    return {t: i for i, t in enumerate(tokens)}, []


def tiny_tokenizer(folder: Path | None = None, pad: str = "<|endoftext|>", max_length: int = 77) -> Any:
    """A ``CLIPTokenizer`` on the tiny vocabulary; saved as vocab.json/merges.txt in ``folder``."""
    from transformers import CLIPTokenizer

    vocab, merges = tiny_vocab()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.json").write_text(json.dumps(vocab))
        (folder / "merges.txt").write_text("#version: 0.2\n")
        tok = CLIPTokenizer(vocab=vocab, merges=merges, pad_token=pad, model_max_length=max_length)
        tok.save_pretrained(folder)
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token=pad, model_max_length=max_length)


def tiny_models(seed: int = 0, channels: tuple[int, ...] = (32, 64), cross_dim: int = 32,
                vae_channels: tuple[int, ...] = (16, 16, 16, 16), text_layers: int = 2,
                shift: float | None = None, scaling: float = 0.18215, in_channels: int = 4) -> dict[str, Any]:
    """Random UNet2DConditionModel, AutoencoderKL (×8) and CLIPTextModel of SD's shapes.

    ``in_channels=9`` makes an inpainting UNet (4 latents + 1 mask + 4 masked-image latents).
    """
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    n = len(channels)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=channels,
        down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
        cross_attention_dim=cross_dim, attention_head_dim=8, norm_num_groups=min(32, channels[0]))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=vae_channels,
        down_block_types=("DownEncoderBlock2D",) * len(vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(vae_channels), layers_per_block=1,
        norm_num_groups=8, sample_size=64, scaling_factor=scaling, shift_factor=shift)
    vocab, _ = tiny_vocab()
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=cross_dim, intermediate_size=2 * cross_dim,
        num_hidden_layers=text_layers, num_attention_heads=4, max_position_embeddings=77,
        bos_token_id=0, eos_token_id=2, pad_token_id=1, projection_dim=cross_dim))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    for m in (unet, vae, text):
        m.eval()
    return {"unet": unet, "vae": vae, "text_encoder": text, "scheduler": scheduler}


def save_diffusers(folder: Path, models: dict[str, Any], tokenizer: bool = True,
                   loom: dict[str, Any] | None = None) -> Path:
    """Write ``models`` as a diffusers folder (model_index.json + component subfolders)."""
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.0"}
    for name, m in models.items():
        if m is None:
            continue
        m.save_pretrained(folder / name)
        lib = "transformers" if type(m).__module__.startswith("transformers") else "diffusers"
        index[name] = [lib, type(m).__name__]
    if tokenizer and "text_encoder" in models:
        tiny_tokenizer(folder / "tokenizer")
        index["tokenizer"] = ["transformers", "CLIPTokenizer"]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    if loom is not None:
        (folder / "loom.json").write_text(json.dumps(loom))
    return folder


def tiny_sdxl_models(seed: int = 0, channels: tuple[int, ...] = (32, 64), dims: tuple[int, int] = (16, 32),
                     time_dim: int = 8) -> dict[str, Any]:
    """Random SDXL-shaped models: a text_time UNet and two CLIP encoders (the second projects)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    base = tiny_models(seed=seed, channels=channels, cross_dim=dims[0])
    torch.manual_seed(seed + 1)
    n = len(channels)
    base["unet"] = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=channels,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=sum(dims), attention_head_dim=8, norm_num_groups=min(32, channels[0]),
        addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=time_dim * 6 + dims[1],
        transformer_layers_per_block=1, use_linear_projection=True).eval()
    vocab, _ = tiny_vocab()
    base["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=dims[1], intermediate_size=2 * dims[1], num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, bos_token_id=0, eos_token_id=2, pad_token_id=1,
        projection_dim=dims[1], hidden_act="gelu")).eval()
    return base


def save_sdxl(folder: Path, models: dict[str, Any]) -> Path:
    """Write SDXL-shaped ``models`` as a diffusers folder with tokenizer and tokenizer_2."""
    save_diffusers(folder, models)
    tiny_tokenizer(folder / "tokenizer_2", pad="!")
    index = json.loads((folder / "model_index.json").read_text())
    index.update({"_class_name": "StableDiffusionXLPipeline", "tokenizer_2": ["transformers", "CLIPTokenizer"]})
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder
