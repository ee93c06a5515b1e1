"""Architecture configs of single-file SD checkpoints, inferred from the tensors' shapes.

A checkpoint in the original (LDM) layout carries no config. Its family (SD 1.x, 2.x, XL) is
told by which text encoders it holds and how; the sizes (channels, blocks, depths, widths,
latent channels, ...) are read from the weights' shapes and override the family's shipped
config. What shapes cannot tell (attention head counts, GroupNorm groups, activations,
latent scaling) follows the family's config: SD 1.x keeps 8 UNet heads per block, SD 2.x and
SDXL keep 64-wide heads, CLIP keeps 64-wide heads. Every function raises ``ModelLoadError``
with what was not recognised instead of letting a shape mismatch surface later.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .loading import ModelLoadError

UNET_PREFIX = "model.diffusion_model."
UNET_KEY = UNET_PREFIX + "input_blocks.0.0.weight"
VAE_PREFIXES = ("first_stage_model.", "vae.")

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class TextLayout:
    """Where one text encoder sits in a checkpoint and how its keys are written."""

    subfolder: str       # config folder: text_encoder / text_encoder_2
    prefix: str          # key prefix in the checkpoint
    open_clip: bool      # OpenCLIP keys (resblocks, fused in_proj) rather than transformers' CLIP keys
    drop_last: int = 0   # final blocks the diffusers model leaves out (SD 2.x uses the penultimate)


FAMILIES: dict[str, tuple[TextLayout, ...]] = {
    "sd1": (TextLayout("text_encoder", "cond_stage_model.transformer.", False),),
    "sd2": (TextLayout("text_encoder", "cond_stage_model.model.", True, drop_last=1),),
    "sdxl": (TextLayout("text_encoder", "conditioner.embedders.0.transformer.", False),
             TextLayout("text_encoder_2", "conditioner.embedders.1.model.", True)),
}


def shapes_of(sd: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[int, ...]]:
    """``{key without prefix: shape}`` of the tensors whose key starts with ``prefix``."""
    n = len(prefix)
    return {k[n:]: tuple(v.shape) for k, v in sd.items() if k.startswith(prefix)}


def ids_after(keys: Iterable[str], prefix: str) -> list[int]:
    """Sorted distinct integers that directly follow ``prefix`` in ``keys``."""
    n, found = len(prefix), set()
    for k in keys:
        if k.startswith(prefix):
            head = k[n:].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def _has(keys: Iterable[str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def detect_family(sd: Mapping[str, Any]) -> str:
    """``sd1``, ``sd2`` or ``sdxl`` from the text-encoder layout, checked against the UNet."""
    if UNET_KEY not in sd:
        sample = ", ".join(list(sd)[:3])
        raise ModelLoadError("unknown checkpoint architecture: not a Stable Diffusion 1.x/2.x/XL "
                             f"checkpoint (no {UNET_KEY}; first keys: {sample})")
    keys = list(sd)
    if _has(keys, "conditioner.embedders.1.model.") and _has(keys, "conditioner.embedders.0.transformer."):
        family = "sdxl"
    elif _has(keys, "conditioner.embedders.0.model."):
        raise ModelLoadError("this looks like an SDXL refiner (one OpenCLIP encoder under "
                             "conditioner.embedders.0.model.), which is not supported yet")
    elif _has(keys, "cond_stage_model.model."):
        family = "sd2"
    elif _has(keys, "cond_stage_model.transformer."):
        family = "sd1"
    else:
        raise ModelLoadError("no text encoder recognised: expected cond_stage_model.transformer. "
                             "(SD 1.x), cond_stage_model.model. (SD 2.x) or conditioner.embedders.0/1 "
                             "(SDXL) weights beside the UNet")
    adm = UNET_PREFIX + "label_emb.0.0.weight" in sd
    if adm != (family == "sdxl"):
        what = "has no" if family == "sdxl" else "has an"
        raise ModelLoadError(f"the text encoders look like {family} but the UNet {what} SDXL "
                             "size/pooled embedding (label_emb): unrecognised UNet layout")
    conv_in, conv_out = sd[UNET_KEY].shape, sd.get(UNET_PREFIX + "out.2.weight")
    if conv_out is None:
        raise ModelLoadError(f"unrecognised UNet layout: no {UNET_PREFIX}out.2.weight")
    if conv_in[1] != conv_out.shape[0] and conv_in[1] != conv_out.shape[0] * 2 + 1:
        # in = out × 2 + 1 (latents + mask + masked-image latents) is an inpainting model
        raise ModelLoadError(f"the UNet takes {conv_in[1]} channels and gives {conv_out.shape[0]} "
                             "(an instruct-pix2pix or upscaler model): not supported yet")
    return family


def _set(cfg: dict[str, Any], changed: dict[str, Any], key: str, value: Any, default: Any = None) -> None:
    """Put ``value`` into ``cfg`` and note it in ``changed`` when it differs from the config's."""
    def norm(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v
    if norm(cfg.get(key, default)) != norm(value):
        cfg[key] = value
        changed[key] = value


def _groups(what: str, channels: Iterable[int], groups: int) -> None:
    bad = [c for c in channels if c % groups]
    if bad:
        raise ModelLoadError(f"{what} channels {bad} are not divisible by the family's {groups} "
                             "GroupNorm groups (group counts cannot be read from the weights)")


def _unet_level_blocks(u: Shapes, lpb_blocks: list[list[int]], part: str) -> list[tuple[int, int]]:
    """(channels, transformer depth) per level; every block of a level must agree."""
    out = []
    for level, blocks in enumerate(lpb_blocks):
        missing = [i for i in blocks if f"{part}.{i}.0.out_layers.3.weight" not in u]
        if missing:
            raise ModelLoadError(f"unrecognised UNet layout: {part}.{missing[0]} has no resnet (0.out_layers)")
        seen = {(u[f"{part}.{i}.0.out_layers.3.weight"][0], len(ids_after(u, f"{part}.{i}.1.transformer_blocks.")))
                for i in blocks}
        if len(seen) != 1:
            raise ModelLoadError(f"unrecognised UNet layout: the blocks of {part} level {level} differ "
                                 f"in channels or attention depth ({sorted(seen)})")
        out.append(seen.pop())
    return out


def _heads(base: dict[str, Any], channels: list[int], attention: list[bool]) -> int | list[int]:
    """UNet heads per level after the family's convention (fixed count, or fixed width)."""
    b = base.get("num_attention_heads") or base.get("attention_head_dim") or 8
    need = [c for c, a in zip(channels, attention) if a] + [channels[-1]]  # the mid block uses the last
    if isinstance(b, int):
        if any(c % b for c in need):
            raise ModelLoadError(f"UNet attention channels {need} cannot be split into the family's {b} heads")
        return b
    widths = {c // h for c, h in zip(base["block_out_channels"], b)}
    if len(widths) != 1:
        raise ModelLoadError(f"the base UNet config has no single attention head width ({b})")
    w = widths.pop()
    if any(c % w for c in need):
        raise ModelLoadError(f"UNet attention channels {need} are not multiples of the family's "
                             f"{w}-wide attention heads")
    return [max(1, c // w) for c in channels]


def infer_unet(sd: Mapping[str, Any], base: dict[str, Any], pooled_dim: int | None = None
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """UNet2DConditionModel config (``base`` overridden by the shapes) and what changed."""
    u = shapes_of(sd, UNET_PREFIX)
    cfg, changed = dict(base), {}
    inputs = ids_after(u, "input_blocks.")
    if inputs != list(range(len(inputs))) or len(inputs) < 2:
        raise ModelLoadError(f"unrecognised UNet layout: input_blocks numbered {inputs[:12]}")
    levels: list[list[int]] = [[]]
    for i in inputs[1:]:
        if f"input_blocks.{i}.0.op.weight" in u:
            levels.append([])
        elif f"input_blocks.{i}.0.out_layers.3.weight" in u:
            levels[-1].append(i)
        else:
            raise ModelLoadError(f"unrecognised UNet layout: input_blocks.{i} is neither a resnet nor a downsampler")
    lpb = {len(lv) for lv in levels}
    if len(lpb) != 1 or 0 in lpb:
        raise ModelLoadError(f"unrecognised UNet layout: resnets per level {[len(lv) for lv in levels]} "
                             "(one count for every level is needed)")
    per = lpb.pop()
    down = _unet_level_blocks(u, levels, "input_blocks")
    channels = [c for c, _ in down]
    attention = [d > 0 for _, d in down]
    outputs = ids_after(u, "output_blocks.")
    if outputs != list(range(len(levels) * (per + 1))):
        raise ModelLoadError(f"unrecognised UNet layout: {len(outputs)} output_blocks for {len(levels)} levels "
                             f"of {per} resnets (expected {len(levels) * (per + 1)})")
    up = _unet_level_blocks(u, [list(range(j * (per + 1), (j + 1) * (per + 1))) for j in range(len(levels))],
                            "output_blocks")
    if [c for c, _ in up] != channels[::-1]:
        raise ModelLoadError(f"unrecognised UNet layout: up-block channels {[c for c, _ in up]} do not "
                             f"mirror the down blocks {channels}")
    mid = len(ids_after(u, "middle_block.1.transformer_blocks."))
    if not mid or "middle_block.2.out_layers.3.weight" not in u:
        raise ModelLoadError("unrecognised UNet layout: the middle block is not resnet + attention + resnet")
    depth = [d if d else 1 for _, d in down]
    if not attention[-1]:
        depth[-1] = mid
    elif depth[-1] != mid:
        raise ModelLoadError(f"the UNet's middle attention depth {mid} differs from its last level's "
                             f"{depth[-1]}, which diffusers cannot build")
    rev = [d if d else depth[::-1][j] for j, (_, d) in enumerate(up)]
    attn_key = next((k for k in u if k.endswith("transformer_blocks.0.attn2.to_k.weight")), None)
    proj_in = next((k for k in u if k.endswith(".1.proj_in.weight")), None)
    if attn_key is None or proj_in is None:
        raise ModelLoadError("unrecognised UNet layout: no cross-attention (attn2.to_k / proj_in) weights")
    cross = {s[1] for k, s in u.items() if k.endswith("attn2.to_k.weight")}
    if len(cross) != 1:
        raise ModelLoadError(f"the UNet's attention blocks take different context widths {sorted(cross)}")
    _groups("UNet", channels, int(cfg.get("norm_num_groups", 32)))
    _set(cfg, changed, "in_channels", u["input_blocks.0.0.weight"][1])
    _set(cfg, changed, "out_channels", u["out.2.weight"][0])
    _set(cfg, changed, "conv_in_kernel", u["input_blocks.0.0.weight"][-1], 3)
    _set(cfg, changed, "conv_out_kernel", u["out.2.weight"][-1], 3)
    _set(cfg, changed, "block_out_channels", channels)
    _set(cfg, changed, "layers_per_block", per)
    _set(cfg, changed, "down_block_types", ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention])
    _set(cfg, changed, "up_block_types", ["CrossAttnUpBlock2D" if d else "UpBlock2D" for _, d in up])
    _set(cfg, changed, "mid_block_type", "UNetMidBlock2DCrossAttn", "UNetMidBlock2DCrossAttn")
    _set(cfg, changed, "cross_attention_dim", cross.pop())
    _set(cfg, changed, "use_linear_projection", len(u[proj_in]) == 2, False)
    _set(cfg, changed, "transformer_layers_per_block", 1 if set(depth) == {1} else depth, 1)
    if rev != depth[::-1]:
        _set(cfg, changed, "reverse_transformer_layers_per_block", rev)
    _set(cfg, changed, "attention_head_dim", _heads(base, channels, attention), 8)
    temb = u.get("time_embed.0.weight")
    if temb is None or temb[1] != channels[0]:
        raise ModelLoadError("unrecognised UNet layout: time_embed.0 does not take the first level's channels")
    _set(cfg, changed, "time_embedding_dim", None if temb[0] == 4 * channels[0] else temb[0])
    if "label_emb.0.0.weight" in u:
        proj = u["label_emb.0.0.weight"][1]
        if pooled_dim is None or (proj - pooled_dim) <= 0 or (proj - pooled_dim) % 6:
            raise ModelLoadError(f"the UNet's size/pooled embedding takes {proj} values, which is not "
                                 f"6 time ids plus the {pooled_dim}-dim pooled text embedding")
        _set(cfg, changed, "projection_class_embeddings_input_dim", proj)
        _set(cfg, changed, "addition_time_embed_dim", (proj - pooled_dim) // 6)
    return cfg, changed


def vae_prefix(keys: Iterable[str]) -> str:
    """The VAE's key prefix in a checkpoint (``first_stage_model.``, ``vae.`` or none)."""
    keys = list(keys)
    for p in VAE_PREFIXES:
        if _has(keys, p + "encoder.") and _has(keys, p + "decoder."):
            return p
    if _has(keys, "encoder.") and _has(keys, "decoder."):
        return ""
    raise ModelLoadError("no VAE recognised (no first_stage_model.encoder./decoder. weights)")


def infer_vae(sd: Mapping[str, Any], prefix: str, base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """AutoencoderKL config (``base`` overridden by the shapes) and what changed."""
    v = shapes_of(sd, prefix)
    cfg, changed = dict(base), {}
    levels = ids_after(v, "encoder.down.")
    if not levels or levels != list(range(len(levels))) or "decoder.conv_in.weight" not in v:
        raise ModelLoadError(f"unrecognised VAE layout: encoder.down levels {levels[:8]}")
    per = {len(ids_after(v, f"encoder.down.{i}.block.")) for i in levels}
    ups = {len(ids_after(v, f"decoder.up.{i}.block.")) for i in levels}
    if len(per) != 1 or ups != {per_n + 1 for per_n in per} or ids_after(v, "decoder.up.") != levels:
        raise ModelLoadError(f"unrecognised VAE layout: resnets per level {sorted(per)} (encoder) and "
                             f"{sorted(ups)} (decoder) do not match an AutoencoderKL")
    channels = [v[f"encoder.down.{i}.block.0.conv2.weight"][0] for i in levels]
    decoder = [v[f"decoder.up.{i}.block.0.conv2.weight"][0] for i in levels]
    if decoder != channels:
        raise ModelLoadError(f"unrecognised VAE layout: decoder channels {decoder} differ from encoder {channels}")
    latent = v["decoder.conv_in.weight"][1]
    if v.get("encoder.conv_out.weight", (0,))[0] != 2 * latent:
        raise ModelLoadError("unrecognised VAE layout: encoder.conv_out does not give mean and log-variance "
                             f"of {latent} latent channels")
    _groups("VAE", channels, int(cfg.get("norm_num_groups", 32)))
    n = len(levels)
    _set(cfg, changed, "in_channels", v["encoder.conv_in.weight"][1])
    _set(cfg, changed, "out_channels", v["decoder.conv_out.weight"][0])
    _set(cfg, changed, "latent_channels", latent)
    _set(cfg, changed, "block_out_channels", channels)
    _set(cfg, changed, "layers_per_block", per.pop())
    _set(cfg, changed, "down_block_types", ["DownEncoderBlock2D"] * n)
    _set(cfg, changed, "up_block_types", ["UpDecoderBlock2D"] * n)
    _set(cfg, changed, "mid_block_add_attention", "encoder.mid.attn_1.q.weight" in v, True)
    _set(cfg, changed, "use_quant_conv", "quant_conv.weight" in v, True)
    _set(cfg, changed, "use_post_quant_conv", "post_quant_conv.weight" in v, True)
    return cfg, changed


def infer_clip(sd: Mapping[str, Any], layout: TextLayout, base: dict[str, Any]
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """CLIPTextConfig values (``base`` overridden by the shapes) and what changed."""
    t = shapes_of(sd, layout.prefix)
    cfg, changed = dict(base), {}
    if layout.open_clip:
        names = ("token_embedding.weight", "positional_embedding", "transformer.resblocks.",
                 "transformer.resblocks.0.mlp.c_fc.weight")
    else:
        inner = "text_model." if "text_model.embeddings.token_embedding.weight" in t else ""
        names = (inner + "embeddings.token_embedding.weight", inner + "embeddings.position_embedding.weight",
                 inner + "encoder.layers.", inner + "encoder.layers.0.mlp.fc1.weight")
    tokens, positions, blocks, fc1 = names
    if tokens not in t or positions not in t or fc1 not in t:
        raise ModelLoadError(f"unrecognised text encoder layout under {layout.prefix} (no {tokens}, "
                             f"{positions} or {fc1})")
    layers = ids_after(t, blocks)
    if layers != list(range(len(layers))) or len(layers) <= layout.drop_last:
        raise ModelLoadError(f"unrecognised text encoder layout under {layout.prefix}: blocks {layers[:8]}")
    vocab, width = t[tokens]
    head = int(base["hidden_size"]) // int(base["num_attention_heads"])
    if width % head:
        raise ModelLoadError(f"text encoder width {width} is not a multiple of the family's {head}-wide heads")
    _set(cfg, changed, "vocab_size", vocab)
    _set(cfg, changed, "hidden_size", width)
    _set(cfg, changed, "num_attention_heads", width // head)
    _set(cfg, changed, "intermediate_size", t[fc1][0])
    _set(cfg, changed, "num_hidden_layers", len(layers) - layout.drop_last)
    _set(cfg, changed, "max_position_embeddings", t[positions][0])
    if layout.open_clip and "text_projection" in t:
        _set(cfg, changed, "projection_dim", t["text_projection"][1])
    elif not layout.open_clip and "text_projection.weight" in t:
        _set(cfg, changed, "projection_dim", t["text_projection.weight"][0])
    return cfg, changed
