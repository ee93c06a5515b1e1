"""Tiny random transformer models and text encoders written in the key layouts real files use.

The diffusers → original maps below invert diffusers' single-file conversions, so a state
dict in BFL's (Flux), Stability's (SD3) or PixArt's original layout can be made from a tiny
diffusers module and loaded back.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

SD3_TINY = dict(sample_size=16, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                num_attention_heads=2, joint_attention_dim=24, caption_projection_dim=16,
                pooled_projection_dim=12, out_channels=4, pos_embed_max_size=16)
# 16 latent channels packed 2×2 (as Flux's VAE), T5 32 wide, CLIP-L 64 wide (the tiny encoders below)
FLUX_TINY = dict(patch_size=1, in_channels=64, num_layers=1, num_single_layers=2, attention_head_dim=16,
                 num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=64,
                 guidance_embeds=True, axes_dims_rope=(2, 6, 8))
PIXART_TINY = dict(num_attention_heads=16, attention_head_dim=2, in_channels=4, out_channels=8, num_layers=2,
                   cross_attention_dim=32, sample_size=16, patch_size=2, caption_channels=24,
                   norm_type="ada_norm_single", use_additional_conditions=False, norm_elementwise_affine=False,
                   norm_eps=1e-6)


def seeded(cls: Any, seed: int = 0, **config: Any) -> Any:
    """A diffusers model with random weights (every parameter, so nothing is left at zero)."""
    torch.manual_seed(seed)
    model = cls(**config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model


def _swap(t: torch.Tensor) -> torch.Tensor:
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def _rename(sd: dict[str, torch.Tensor], out: dict[str, torch.Tensor], pairs: dict[str, str]) -> None:
    for new, old in pairs.items():
        for leaf in ("weight", "bias"):
            if f"{new}.{leaf}" in sd:
                out[f"{old}.{leaf}"] = sd.pop(f"{new}.{leaf}")


def _fuse(sd: dict[str, torch.Tensor], out: dict[str, torch.Tensor], parts: list[str], old: str) -> None:
    for leaf in ("weight", "bias"):
        if f"{parts[0]}.{leaf}" in sd:
            out[f"{old}.{leaf}"] = torch.cat([sd.pop(f"{p}.{leaf}") for p in parts], dim=0)


def sd3_original(model: Any) -> dict[str, torch.Tensor]:
    """An SD3Transformer2DModel's weights in Stability's MMDiT layout (``joint_blocks``…)."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    out = {"pos_embed": sd.pop("pos_embed.pos_embed")}
    _rename(sd, out, {"pos_embed.proj": "x_embedder.proj", "time_text_embed.timestep_embedder.linear_1":
                      "t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
                      "context_embedder": "context_embedder", "time_text_embed.text_embedder.linear_1":
                      "y_embedder.mlp.0", "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2",
                      "proj_out": "final_layer.linear"})
    out["final_layer.adaLN_modulation.1.weight"] = _swap(sd.pop("norm_out.linear.weight"))
    out["final_layer.adaLN_modulation.1.bias"] = _swap(sd.pop("norm_out.linear.bias"))
    n = model.config.num_layers
    for i in range(n):
        b, j = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        _fuse(sd, out, [b + "attn.to_q", b + "attn.to_k", b + "attn.to_v"], j + "x_block.attn.qkv")
        _fuse(sd, out, [b + "attn.add_q_proj", b + "attn.add_k_proj", b + "attn.add_v_proj"],
              j + "context_block.attn.qkv")
        _fuse(sd, out, [b + "attn2.to_q", b + "attn2.to_k", b + "attn2.to_v"], j + "x_block.attn2.qkv")
        _rename(sd, out, {b + "attn.norm_q": j + "x_block.attn.ln_q", b + "attn.norm_k": j + "x_block.attn.ln_k",
                          b + "attn.norm_added_q": j + "context_block.attn.ln_q",
                          b + "attn.norm_added_k": j + "context_block.attn.ln_k",
                          b + "attn2.norm_q": j + "x_block.attn2.ln_q", b + "attn2.norm_k": j + "x_block.attn2.ln_k",
                          b + "attn.to_out.0": j + "x_block.attn.proj",
                          b + "attn.to_add_out": j + "context_block.attn.proj",
                          b + "attn2.to_out.0": j + "x_block.attn2.proj",
                          b + "norm1.linear": j + "x_block.adaLN_modulation.1",
                          b + "ff.net.0.proj": j + "x_block.mlp.fc1", b + "ff.net.2": j + "x_block.mlp.fc2",
                          b + "ff_context.net.0.proj": j + "context_block.mlp.fc1",
                          b + "ff_context.net.2": j + "context_block.mlp.fc2"})
        for leaf in ("weight", "bias"):
            t = sd.pop(f"{b}norm1_context.linear.{leaf}")
            out[f"{j}context_block.adaLN_modulation.1.{leaf}"] = _swap(t) if i == n - 1 else t
    assert not sd, f"unmapped SD3 keys: {list(sd)[:5]}"
    return out


def flux_original(model: Any) -> dict[str, torch.Tensor]:
    """A FluxTransformer2DModel's weights in Black Forest Labs' layout (``double_blocks``…)."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    _rename(sd, out, {"time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
                      "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
                      "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
                      "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
                      "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
                      "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
                      "context_embedder": "txt_in", "x_embedder": "img_in", "proj_out": "final_layer.linear"})
    out["final_layer.adaLN_modulation.1.weight"] = _swap(sd.pop("norm_out.linear.weight"))
    out["final_layer.adaLN_modulation.1.bias"] = _swap(sd.pop("norm_out.linear.bias"))
    for i in range(model.config.num_layers):
        b, d = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        _fuse(sd, out, [b + "attn.to_q", b + "attn.to_k", b + "attn.to_v"], d + "img_attn.qkv")
        _fuse(sd, out, [b + "attn.add_q_proj", b + "attn.add_k_proj", b + "attn.add_v_proj"], d + "txt_attn.qkv")
        _rename(sd, out, {b + "norm1.linear": d + "img_mod.lin", b + "norm1_context.linear": d + "txt_mod.lin",
                          b + "ff.net.0.proj": d + "img_mlp.0", b + "ff.net.2": d + "img_mlp.2",
                          b + "ff_context.net.0.proj": d + "txt_mlp.0", b + "ff_context.net.2": d + "txt_mlp.2",
                          b + "attn.to_out.0": d + "img_attn.proj", b + "attn.to_add_out": d + "txt_attn.proj"})
        for new, old in (("norm_q", "img_attn.norm.query_norm"), ("norm_k", "img_attn.norm.key_norm"),
                         ("norm_added_q", "txt_attn.norm.query_norm"), ("norm_added_k", "txt_attn.norm.key_norm")):
            out[f"{d}{old}.scale"] = sd.pop(f"{b}attn.{new}.weight")
    for i in range(model.config.num_single_layers):
        b, s = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        _fuse(sd, out, [b + "attn.to_q", b + "attn.to_k", b + "attn.to_v", b + "proj_mlp"], s + "linear1")
        _rename(sd, out, {b + "norm.linear": s + "modulation.lin", b + "proj_out": s + "linear2"})
        out[s + "norm.query_norm.scale"] = sd.pop(b + "attn.norm_q.weight")
        out[s + "norm.key_norm.scale"] = sd.pop(b + "attn.norm_k.weight")
    assert not sd, f"unmapped Flux keys: {list(sd)[:5]}"
    return out


def pixart_original(model: Any) -> dict[str, torch.Tensor]:
    """A PixArtTransformer2DModel's weights in PixArt's own layout (``blocks.N.attn.qkv``…)."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    grid = model.config.sample_size // model.config.patch_size
    out = {"pos_embed": torch.randn(1, grid * grid, sd["pos_embed.proj.weight"].shape[0]),
           "y_embedder.y_embedding": torch.randn(6, model.config.caption_channels),
           "final_layer.scale_shift_table": sd.pop("scale_shift_table")}
    _rename(sd, out, {"pos_embed.proj": "x_embedder.proj", "caption_projection.linear_1": "y_embedder.y_proj.fc1",
                      "caption_projection.linear_2": "y_embedder.y_proj.fc2",
                      "adaln_single.emb.timestep_embedder.linear_1": "t_embedder.mlp.0",
                      "adaln_single.emb.timestep_embedder.linear_2": "t_embedder.mlp.2",
                      "adaln_single.linear": "t_block.1", "proj_out": "final_layer.linear"})
    for i in range(model.config.num_layers):
        b, o = f"transformer_blocks.{i}.", f"blocks.{i}."
        out[o + "scale_shift_table"] = sd.pop(b + "scale_shift_table")
        _fuse(sd, out, [b + "attn1.to_q", b + "attn1.to_k", b + "attn1.to_v"], o + "attn.qkv")
        _fuse(sd, out, [b + "attn2.to_k", b + "attn2.to_v"], o + "cross_attn.kv_linear")
        _rename(sd, out, {b + "attn1.to_out.0": o + "attn.proj", b + "ff.net.0.proj": o + "mlp.fc1",
                          b + "ff.net.2": o + "mlp.fc2", b + "attn2.to_q": o + "cross_attn.q_linear",
                          b + "attn2.to_out.0": o + "cross_attn.proj"})
    assert not sd, f"unmapped PixArt keys: {list(sd)[:5]}"
    return out


def tiny_clip(width: int, projection: bool, seed: int = 0, vocab: int = 300, act: str = "quick_gelu") -> Any:
    """A one-layer CLIP text model ``width`` wide (64-wide heads, like CLIP's)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(vocab_size=vocab, hidden_size=width, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=width // 64, max_position_embeddings=77, projection_dim=width,
                         hidden_act=act, bos_token_id=0, eos_token_id=2, pad_token_id=1)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg).eval()


def tiny_t5(seed: int = 0, width: int = 32, ff: int = 48, layers: int = 2) -> Any:
    """A T5 v1.1-style encoder (gated GELU), ``width`` wide, ``layers`` deep."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=40, d_model=width, d_kv=8, d_ff=ff, num_layers=layers, num_heads=4,
                   feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)
    return T5EncoderModel(cfg).eval()


def t5_file_state(model: Any) -> dict[str, torch.Tensor]:
    """A T5 encoder's weights as T5-XXL files hold them: the tied embedding once, as ``shared.weight``."""
    return {k: v for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}


def open_clip_layout(model: Any) -> dict[str, torch.Tensor]:
    """A CLIPTextModelWithProjection's weights in OpenCLIP's layout (resblocks, fused in_proj)."""
    sd = {k.removeprefix("text_model."): v for k, v in model.state_dict().items() if "position_ids" not in k}
    out = {"token_embedding.weight": sd.pop("embeddings.token_embedding.weight"),
           "positional_embedding": sd.pop("embeddings.position_embedding.weight"),
           "ln_final.weight": sd.pop("final_layer_norm.weight"), "ln_final.bias": sd.pop("final_layer_norm.bias"),
           "text_projection": sd.pop("text_projection.weight").T.contiguous()}
    for i in range(model.config.num_hidden_layers):
        b, r = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for leaf in ("weight", "bias"):
            out[f"{r}attn.in_proj_{leaf}"] = torch.cat([sd.pop(f"{b}self_attn.{n}_proj.{leaf}") for n in "qkv"])
            for new, old in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                             ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[f"{r}{old}.{leaf}"] = sd.pop(f"{b}{new}.{leaf}")
    assert not sd, f"unmapped CLIP keys: {list(sd)[:5]}"
    return out


def write_t5_tokenizer(folder: Path) -> Path:
    """A tiny Unigram T5-style tokenizer (pad 0, eos 1, unk 2) saved as ``tokenizer.json``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(c, -1.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"pad_token": "<pad>", "eos_token": "</s>",
                                                              "unk_token": "<unk>"}))
    return folder


def tiny_vae16(seed: int = 3) -> Any:
    """A two-level 16-channel AutoencoderKL without quant convs (SD3/Flux's VAE, tiny)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(32, 32),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=32, use_quant_conv=False,
                         use_post_quant_conv=False).eval()


# Files the node contract test gives the transformer loaders: (node, input) → name.
DIT_FILES = {("load_diffusion_transformer", "model"): "tiny-flux.safetensors",
             ("load_sd3_text_encoders", "clip_l"): "tiny-clip-l.safetensors",
             ("load_sd3_text_encoders", "clip_g"): "tiny-clip-g.safetensors",
             ("load_sd3_text_encoders", "t5"): "tiny-t5.safetensors",
             ("load_flux_text_encoders", "clip_l"): "tiny-clip-l.safetensors",
             ("load_flux_text_encoders", "t5"): "tiny-t5.safetensors",
             ("load_pixart_text_encoder", "t5"): "tiny-t5.safetensors",
             ("load_dit_vae", "vae"): "tiny-vae16.safetensors"}


def write_dit_files(models: Path) -> None:
    """Tiny transformer, text-encoder and VAE files (original layouts) and a T5 tokenizer under ``models``."""
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    def save(sd: dict[str, torch.Tensor], path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))

    from test_diffusion_single_file import vae_to_ldm

    flux = seeded(FluxTransformer2DModel, **FLUX_TINY)
    save(flux_original(flux), models / "diffusion_models" / "tiny-flux.safetensors")
    save(tiny_clip(64, False, seed=1, vocab=49408).state_dict(), models / "text_encoders" / "tiny-clip-l.safetensors")
    save(open_clip_layout(tiny_clip(64, True, seed=2, vocab=49408, act="gelu")),
         models / "text_encoders" / "tiny-clip-g.safetensors")
    save(t5_file_state(tiny_t5()), models / "text_encoders" / "tiny-t5.safetensors")
    save({k.removeprefix("first_stage_model."): v for k, v in vae_to_ldm(tiny_vae16().state_dict(), 2).items()},
         models / "vae" / "tiny-vae16.safetensors")
    write_t5_tokenizer(models / "tokenizers" / "t5")


def sd3_all_in_one() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A tiny SD3 all-in-one checkpoint's tensors (Stability's layout) and the modules they came from."""
    from diffusers import SD3Transformer2DModel

    from test_diffusion_single_file import vae_to_ldm

    models = {"clip_l": tiny_clip(64, False, seed=1, vocab=49408), "clip_g": tiny_clip(64, True, 2, 49408, "gelu"),
              "t5": tiny_t5(width=160), "vae": tiny_vae16(),
              "transformer": seeded(SD3Transformer2DModel, **{**SD3_TINY, "in_channels": 16, "out_channels": 16,
                                                             "pooled_projection_dim": 128,
                                                             "joint_attention_dim": 160})}
    sd = {f"model.diffusion_model.{k}": v for k, v in sd3_original(models["transformer"]).items()}
    sd.update(vae_to_ldm(models["vae"].state_dict(), 2))
    for prefix, state in (("clip_l", models["clip_l"].state_dict()), ("clip_g", models["clip_g"].state_dict()),
                          ("t5xxl", t5_file_state(models["t5"]))):
        sd.update({f"text_encoders.{prefix}.transformer.{k}": v for k, v in state.items()})
    return sd, models
