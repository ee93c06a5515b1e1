"""Loading ControlNets from local files: diffusers folders and single files.

A folder holds a diffusers ``ControlNetModel`` (``config.json`` + weights, or a ``controlnet/``
subfolder). A single file (``.safetensors``, or a weights-only ``.ckpt``/``.pth``) is either in
the original layout (``control_model.input_blocks…``, ``zero_convs``, ``input_hint_block``,
``middle_block_out``; converted with diffusers' ``convert_controlnet_checkpoint``) or already
in diffusers' key layout. Its config is read from the tensors' shapes; what shapes cannot
tell follows the family's convention, as for checkpoints: SD 1.x keeps 8 attention heads,
SD 2.x (1024-dim text) and SDXL keep 64-wide heads, GroupNorm has 32 groups, and an SDXL
ControlNet's time-id embedding is 256 wide. T2I-Adapters (folders whose config names a
``T2IAdapter``, single files of adapter weights) are loaded by ``t2i_adapter.py`` and applied
the same way.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Union

import torch

from .controlnet import DiffusionControlNet
from .infer_config import ids_after
from .loading import ModelLoadError, loom_info, read_json
from .t2i_adapter import DiffusionT2IAdapter, folder_is_adapter, is_adapter_state, load_adapter_folder, \
    load_adapter_state_dict

log = logging.getLogger(__name__)

LDM_PREFIX = "control_model."
SDXL_TIME_EMBED = 256


def load_controlnet_path(path: Path, device: torch.device, dtype: torch.dtype,
                         name: str) -> Union[DiffusionControlNet, DiffusionT2IAdapter]:
    """A ControlNet or T2I-Adapter from a diffusers folder or a single file (CPU float32 on a CPU device)."""
    work = torch.float32 if device.type == "cpu" else dtype
    if path.is_dir():
        if folder_is_adapter(path):
            return load_adapter_folder(path, work, name)
        return DiffusionControlNet(_load_folder(path, work, name), name)
    from .single_file import read_state_dict

    sd = read_state_dict(path)
    try:
        if is_adapter_state(sd):
            return load_adapter_state_dict(sd, work, name)
        return DiffusionControlNet(load_state_dict(sd, work), name)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from exc


def _load_folder(folder: Path, dtype: torch.dtype, name: str) -> Any:
    from diffusers import ControlNetModel

    info = loom_info(folder)
    kind = info.get("kind")
    if kind is not None and kind != "controlnet" and "controlnet" not in (kind if isinstance(kind, list) else []):
        raise ModelLoadError(f"{name}: loom.json says kind {kind!r}, not a ControlNet")
    sub = folder / "controlnet" if (folder / "controlnet" / "config.json").is_file() else folder
    cls = read_json(sub / "config.json").get("_class_name")
    if cls != "ControlNetModel":
        raise ModelLoadError(f"{name}: {sub / 'config.json'} describes {cls or 'no model class'}, not a "
                             "ControlNetModel or T2IAdapter (ControlNet-LoRAs are not supported)")
    try:
        return ControlNetModel.from_pretrained(sub, local_files_only=True, torch_dtype=dtype).eval()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the ControlNet from {sub}: {exc}") from exc


def to_diffusers_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ControlNet state dict in diffusers' key layout, from the original or diffusers' layout."""
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    keys = list(sd)
    if "controlnet_cond_embedding.conv_in.weight" in sd:
        return dict(sd)
    if not any(k.startswith(LDM_PREFIX + "input_hint_block.") or k.startswith("input_hint_block.") for k in keys):
        sample = ", ".join(keys[:3])
        raise ModelLoadError(f"not a ControlNet: no input_hint_block or controlnet_cond_embedding weights "
                             f"(first keys: {sample}); ControlNet-LoRAs are not supported")
    if any(k.startswith(LDM_PREFIX) for k in keys):
        flat = {k[len(LDM_PREFIX):]: v for k, v in sd.items() if k.startswith(LDM_PREFIX)}
    else:
        flat = dict(sd)
    probe = {"layers_per_block": _ldm_layers_per_block(flat)}
    try:
        out = convert_controlnet_checkpoint(flat, probe)
    except (KeyError, ValueError, IndexError) as exc:
        raise ModelLoadError(f"unrecognised ControlNet layout: {exc}") from exc
    for a, b in (("add_embedding.linear_1", "label_emb.0.0"), ("add_embedding.linear_2", "label_emb.0.2")):
        for part in ("weight", "bias"):  # SDXL's size/pooled embedding, which diffusers' mapping leaves out
            if f"{b}.{part}" in flat:
                out[f"{a}.{part}"] = flat[f"{b}.{part}"]
    return {k: v for k, v in out.items() if v is not None}


def _ldm_layers_per_block(flat: Mapping[str, torch.Tensor]) -> int:
    """Resnets per level in the original layout: the input blocks before the first downsampler."""
    for i in ids_after(flat, "input_blocks.")[1:]:
        if f"input_blocks.{i}.0.op.weight" in flat:
            return i - 1
    raise ModelLoadError("unrecognised ControlNet layout: no downsampler among the input blocks")


def infer_controlnet_config(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``ControlNetModel`` config from a diffusers-layout state dict's shapes."""
    shape = {k: tuple(v.shape) for k, v in sd.items()}
    levels = ids_after(shape, "down_blocks.")
    if not levels or levels != list(range(len(levels))):
        raise ModelLoadError(f"unrecognised ControlNet layout: down blocks numbered {levels[:8]}")
    channels, attention, depth = [], [], []
    per = len(ids_after(shape, "down_blocks.0.resnets."))
    for lv in levels:
        res = ids_after(shape, f"down_blocks.{lv}.resnets.")
        if len(res) != per or f"down_blocks.{lv}.resnets.0.conv2.weight" not in shape:
            raise ModelLoadError(f"unrecognised ControlNet layout: level {lv} has {len(res)} resnets, level 0 {per}")
        channels.append(shape[f"down_blocks.{lv}.resnets.0.conv2.weight"][0])
        attention.append(bool(ids_after(shape, f"down_blocks.{lv}.attentions.")))
        depth.append(len(ids_after(shape, f"down_blocks.{lv}.attentions.0.transformer_blocks.")) or 1)
    mid = len(ids_after(shape, "mid_block.attentions.0.transformer_blocks."))
    if not mid:
        raise ModelLoadError("unrecognised ControlNet layout: the middle block has no attention")
    if not attention[-1]:
        depth[-1] = mid
    cross = {s[1] for k, s in shape.items() if k.endswith("attn2.to_k.weight")}
    proj = next((s for k, s in shape.items() if k.endswith("attentions.0.proj_in.weight")), None)
    if len(cross) != 1 or proj is None:
        raise ModelLoadError(f"unrecognised ControlNet layout: cross-attention widths {sorted(cross)}")
    cross_dim = cross.pop()
    sdxl = "add_embedding.linear_1.weight" in shape
    hint = [shape["controlnet_cond_embedding.conv_in.weight"][0]]
    blocks = ids_after(shape, "controlnet_cond_embedding.blocks.")
    hint += [shape[f"controlnet_cond_embedding.blocks.{j}.weight"][0] for j in blocks[1::2]]
    if sdxl or cross_dim == 1024:
        heads: Any = [max(1, c // 64) for c in channels]   # SD 2.x / SDXL: 64-wide heads
    else:
        heads = 8                                          # SD 1.x: 8 heads per level
    temb = shape["time_embedding.linear_1.weight"][0]
    cfg: dict[str, Any] = {
        "in_channels": shape["conv_in.weight"][1],
        "conditioning_channels": shape["controlnet_cond_embedding.conv_in.weight"][1],
        "block_out_channels": channels, "layers_per_block": per,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "cross_attention_dim": cross_dim, "use_linear_projection": len(proj) == 2,
        "transformer_layers_per_block": depth if set(depth) != {1} else 1,
        "attention_head_dim": heads, "conditioning_embedding_out_channels": hint,
        "norm_num_groups": 32,
    }
    if temb != 4 * channels[0]:
        raise ModelLoadError(f"unrecognised ControlNet layout: time embedding {temb} for {channels[0]} channels")
    if sdxl:
        pooled = shape["add_embedding.linear_1.weight"][1]
        cfg.update(addition_embed_type="text_time", addition_time_embed_dim=SDXL_TIME_EMBED,
                   projection_class_embeddings_input_dim=pooled)
        if pooled <= 6 * SDXL_TIME_EMBED:
            raise ModelLoadError(f"the size/pooled embedding takes {pooled} values, fewer than SDXL's "
                                 f"6 × {SDXL_TIME_EMBED} time ids; load it as a diffusers folder with its config")
    bad = [c for c in channels if c % 32]
    if bad:
        raise ModelLoadError(f"ControlNet channels {bad} are not divisible by 32 GroupNorm groups; "
                             "load it as a diffusers folder with its config")
    return cfg


def load_state_dict(sd: Mapping[str, torch.Tensor], dtype: torch.dtype) -> Any:
    """A ``ControlNetModel`` built from a single file's tensors (any of the two key layouts)."""
    from diffusers import ControlNetModel

    from .single_file import build_module

    state = to_diffusers_keys(sd)
    cfg = infer_controlnet_config(state)
    log.info("ControlNet single file: %s levels of %s channels, %s text, %s", len(cfg["block_out_channels"]),
             cfg["block_out_channels"], cfg["cross_attention_dim"], "SDXL" if "addition_embed_type" in cfg else "SD")
    return build_module("ControlNet", lambda: ControlNetModel.from_config(cfg), lambda m: state, dtype)
