"""LoRA / LyCORIS files: reading them, their key layouts, and matching keys to model layers.

Layouts understood (one file may mix UNet and text-encoder keys):

* kohya / LyCORIS: ``lora_unet_<module with _>.lora_down.weight`` / ``.lora_up.weight`` /
  ``.alpha``, text encoders ``lora_te_`` (SDXL ``lora_te1_``, ``lora_te2_``); UNet names are
  diffusers' (SD 1.x) or the original SGM/LDM ones (SDXL: ``input_blocks_4_1_…``). LyCORIS
  LoHa (``hada_w1_a``…) and LoKr (``lokr_w1``, ``lokr_w2``, ``lokr_w2_a``…) and full
  differences (``diff``, ``diff_b``) use the same names.
* diffusers: ``unet.<module>.lora.down.weight`` / ``lora_A.weight`` / ``lora_B.weight``,
  ``text_encoder(_2).<module>.lora_linear_layer.down.weight``, the old attention-processor
  form ``…attn1.processor.to_q_lora.down.weight``.
* PEFT: ``base_model.model.<module>.lora_A.weight`` / ``lora_B.weight`` (a folder may carry
  ``adapter_config.json``, whose ``lora_alpha`` sets the scale).

The scale of a low-rank delta is ``alpha / rank`` (no alpha: 1), as in kohya, PEFT and diffusers.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .patches import DIFF, LOHA, LOKR, LORA, Delta

log = logging.getLogger(__name__)

SUFFIXES: tuple[tuple[str, str], ...] = (
    (".lora_linear_layer.down.weight", "down"), (".lora_linear_layer.up.weight", "up"),
    (".lora_A.default.weight", "down"), (".lora_B.default.weight", "up"),
    (".lora_A.weight", "down"), (".lora_B.weight", "up"),
    (".lora_down.weight", "down"), (".lora_up.weight", "up"), (".lora_mid.weight", "lora_mid"),
    (".lora.down.weight", "down"), (".lora.up.weight", "up"),
    ("_lora.down.weight", "down"), ("_lora.up.weight", "up"),
    (".alpha", "alpha"), (".dora_scale", "dora_scale"), (".lora_magnitude_vector", "dora_scale"),
    (".hada_w1_a", "hada_w1_a"), (".hada_w1_b", "hada_w1_b"), (".hada_w2_a", "hada_w2_a"),
    (".hada_w2_b", "hada_w2_b"), (".hada_t1", "hada_t1"), (".hada_t2", "hada_t2"),
    (".lokr_w1_a", "lokr_w1_a"), (".lokr_w1_b", "lokr_w1_b"), (".lokr_w2_a", "lokr_w2_a"),
    (".lokr_w2_b", "lokr_w2_b"), (".lokr_w1", "lokr_w1"), (".lokr_w2", "lokr_w2"), (".lokr_t2", "lokr_t2"),
    (".diff_b", "diff_b"), (".diff", "diff"),
)
UNSUPPORTED = {"dora_scale": "DoRA (dora_scale)", "lora_mid": "LoCon with Tucker decomposition (lora_mid)",
               "hada_t1": "LoHa with Tucker decomposition (hada_t1)", "hada_t2": "LoHa with Tucker decomposition",
               "lokr_t2": "LoKr with Tucker decomposition (lokr_t2)"}
KINDS = {LORA: {"down", "up"}, LOHA: {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"},
         LOKR: {"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b"}, DIFF: {"diff", "diff_b"}}


class LoraError(ValueError):
    """A LoRA file that cannot be read or applied (the message is for the user)."""


@dataclass
class LoraFile:
    """A LoRA's tensors grouped by layer key (``stem``) and role (down, up, alpha, hada_w1_a…)."""

    groups: dict[str, dict[str, torch.Tensor]]
    alpha: float | None = None  # from a PEFT adapter_config.json
    name: str = ""


def split_key(key: str) -> tuple[str, str] | None:
    """(layer stem, role) of a LoRA key, or None for a key of no known layout."""
    for suffix, role in SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], role
    return None


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix.lower() in (".safetensors", ".sft"):
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickles needing code, corrupt files
        raise LoraError(f"{path.name}: cannot read it as weights only ({exc}); convert it to .safetensors") from exc
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise LoraError(f"{path.name}: holds {type(data).__name__}, not a dictionary of tensors")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def read_lora(path: Path, convert: Callable[[dict[str, torch.Tensor], str], dict[str, torch.Tensor]] | None = None
              ) -> LoraFile:
    """Read a LoRA file, or a folder holding one (PEFT: adapter_model.safetensors + adapter_config.json).

    ``convert`` rewrites the tensors' keys first (e.g. kohya Flux names to diffusers ones)."""
    alpha = None
    if path.is_dir():
        cfg = path / "adapter_config.json"
        if cfg.is_file():
            try:
                info = json.loads(cfg.read_text())
                alpha = float(info["lora_alpha"]) if info.get("lora_alpha") is not None else None
            except (ValueError, TypeError, KeyError) as exc:
                raise LoraError(f"{path.name}/adapter_config.json is not valid: {exc}") from exc
        files = sorted(q for q in path.iterdir() if q.is_file() and q.suffix.lower() in
                       (".safetensors", ".sft", ".pt", ".pth", ".bin", ".ckpt"))
        preferred = [q for q in files if q.stem == "adapter_model"]
        if len(preferred) == 1:
            files = preferred
        if len(files) != 1:
            raise LoraError(f"folder {path.name} must hold exactly one weights file, found "
                            f"{[q.name for q in files] or 'none'}")
        path = files[0]
    tensors = _read_tensors(path)
    if convert is not None:
        tensors = convert(tensors, path.name)
    groups: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in tensors.items():
        split = split_key(key)
        if split is None:
            unknown.append(key)
            continue
        stem, role = split
        groups.setdefault(stem, {})[role] = value
    if not groups:
        raise LoraError(f"{path.name}: no LoRA/LyCORIS keys ({len(tensors)} tensors, e.g. {unknown[:4]})")
    if unknown:
        log.warning("%s: %d keys of no known LoRA layout are ignored, e.g. %s", path.name, len(unknown),
                    unknown[:4])
    return LoraFile(groups, alpha, path.name)


# --- module names ----------------------------------------------------------------------
_RESNET_LDM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_TOP_LDM = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
            "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
            "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _per_block(value: Any, n: int) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)] * n


def ldm_names(unet: torch.nn.Module) -> dict[str, str]:
    """diffusers UNet module name → the original SGM/LDM name (kohya's SDXL LoRAs use those)."""
    cfg = unet.config
    down_n = _per_block(cfg.layers_per_block, len(cfg.down_block_types))
    up_n = [n + 1 for n in reversed(down_n)]
    out: dict[str, str] = {}
    for name, _ in unet.named_modules():
        if name in _TOP_LDM:
            out[name] = _TOP_LDM[name]
            continue
        parts = name.split(".")
        if len(parts) < 4 or not parts[1].isdigit() or not parts[3].isdigit():
            continue
        b, kind, i, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        if kind == "resnets" and rest:
            rest = _RESNET_LDM.get(rest[0], rest[0]).split(".") + rest[1:]
        if parts[0] == "down_blocks":
            first = 1 + sum(n + 1 for n in down_n[:b])
            if kind == "downsamplers":
                ldm = [f"input_blocks.{first + down_n[b]}.0.op"] if rest == ["conv"] else None
            else:
                ldm = [f"input_blocks.{first + i}.{0 if kind == 'resnets' else 1}", *rest]
        elif parts[0] == "up_blocks":
            first = sum(up_n[:b])
            if kind == "upsamplers":
                attn = hasattr(unet.up_blocks[b], "attentions")
                ldm = [f"output_blocks.{first + up_n[b] - 1}.{2 if attn else 1}", *rest]
            else:
                ldm = [f"output_blocks.{first + i}.{0 if kind == 'resnets' else 1}", *rest]
        else:
            continue
        if ldm is not None:
            out[name] = ".".join(ldm)
    mid = {"mid_block.resnets.0": "middle_block.0", "mid_block.attentions.0": "middle_block.1",
           "mid_block.resnets.1": "middle_block.2"}
    for name, _ in unet.named_modules():
        for d, ldm in mid.items():
            if name == d or name.startswith(d + "."):
                rest = name[len(d) + 1:].split(".") if name != d else []
                if d.startswith("mid_block.resnets") and rest:
                    rest = _RESNET_LDM.get(rest[0], rest[0]).split(".") + rest[1:]
                out[name] = ".".join([ldm, *rest])
    return out


@dataclass
class Target:
    """A model a LoRA may patch: its root module and the key prefixes that address it."""

    label: str                      # unet | transformer | text_encoder | text_encoder_2 | text_encoder_3
    root: torch.nn.Module
    kohya: tuple[str, ...]          # e.g. ("lora_unet_",)
    dotted: tuple[str, ...]         # e.g. ("unet.",)
    index: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = {n: m for n, m in self.root.named_modules()
                 if n and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}
        self.modules = names
        self.aliases: dict[str, str] = {}
        if self.label.startswith("text_encoder"):  # transformers 5's CLIPTextModel dropped the "text_model." level
            for n in names:
                alias = n[len("text_model."):] if n.startswith("text_model.") else "text_model." + n
                self.aliases.setdefault(alias, n)
        self.index = {n.replace(".", "_"): v for n, v in {**self.aliases, **{n: n for n in names}}.items()}
        if self.label == "unet" and hasattr(self.root, "config") and hasattr(self.root.config, "down_block_types"):
            for d, ldm in ldm_names(self.root).items():
                if d in names:
                    self.index.setdefault(ldm.replace(".", "_"), d)

    def find(self, dotted: str) -> str | None:
        """The module a dotted (diffusers/PEFT) name means here, or None."""
        for cand in _candidates(dotted):
            if cand in self.modules:
                return cand
            if cand in self.aliases:
                return self.aliases[cand]
        return None


_TE_PROC = {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"}


def _candidates(name: str) -> list[str]:
    """A dotted name and its spellings in the old diffusers processor layouts."""
    out = [name]
    if ".processor." in name:
        plain = name.replace(".processor.", ".")
        out += [plain, re.sub(r"\.to_out$", ".to_out.0", plain)]
    m = re.match(r"(.*\.self_attn)\.(to_q|to_k|to_v|to_out)$", name)
    if m:
        out.append(f"{m.group(1)}.{_TE_PROC[m.group(2)]}")
    return out


def _resolve(stem: str, targets: list[Target], prefixes: dict[str, str]) -> tuple[str | None, Target | None, str]:
    """(module name, target, how the key addresses a model) for one layer stem."""
    for prefix, label in prefixes.items():
        if stem.startswith(prefix):
            target = next((t for t in targets if t.label == label), None)
            rest = stem[len(prefix):]
            if target is None:
                return None, None, label
            name = target.index.get(rest) if prefix.startswith("lora_") else target.find(rest)
            return name, target, label
    rest = stem[len("base_model.model."):] if stem.startswith("base_model.model.") else stem
    for target in targets:
        name = target.find(rest)
        if name is not None:
            return name, target, target.label
    return None, None, "?"


PREFIXES = {"lora_unet_": "unet", "lora_transformer_": "transformer", "lora_te2_": "text_encoder_2",
            "lora_te1_": "text_encoder", "lora_te_": "text_encoder", "unet.": "unet", "transformer.": "transformer",
            "text_encoder_2.": "text_encoder_2", "text_encoder_3.": "text_encoder_3", "text_encoder.": "text_encoder"}


def _delta(stem: str, group: dict[str, torch.Tensor], weight: torch.Tensor, file_alpha: float | None) -> Delta:
    """The delta of one layer, its shapes checked against the layer's weight."""
    roles = set(group) - {"alpha"}
    bad = [UNSUPPORTED[r] for r in roles if r in UNSUPPORTED]
    if bad:
        raise LoraError(f"{stem}: {bad[0]} is not supported")
    kind = next((k for k, need in KINDS.items() if roles and roles <= need), None)
    if kind is None:
        raise LoraError(f"{stem}: incomplete or mixed LoRA weights {sorted(roles)}")
    t = {k: v.float() for k, v in group.items() if k != "alpha"}
    alpha = float(group["alpha"].item()) if "alpha" in group else file_alpha
    rank = None
    if kind == LORA:
        if "down" not in t or "up" not in t:
            raise LoraError(f"{stem}: needs both down (lora_A) and up (lora_B) weights, has {sorted(roles)}")
        if weight.ndim == 4:  # a conv layer: 1×1 when the file stores the matrices flat
            t["down"] = t["down"][:, :, None, None] if t["down"].ndim == 2 else t["down"]
            t["up"] = t["up"][:, :, None, None] if t["up"].ndim == 2 else t["up"]
        rank = t["down"].shape[0]
        ok = (t["up"].shape[0] == weight.shape[0] and t["up"].shape[1] == rank
              and t["down"].flatten(1).shape[1] == weight[0].numel())
    elif kind == LOHA:
        rank = t["hada_w1_b"].shape[0]
        ok = all(t[f"hada_w{i}_a"].shape[0] == weight.shape[0] and t[f"hada_w{i}_b"].shape[1] == weight[0].numel()
                 and t[f"hada_w{i}_a"].shape[1] == t[f"hada_w{i}_b"].shape[0] for i in (1, 2))
    elif kind == LOKR:
        low = t.get("lokr_w2_b", t.get("lokr_w1_b"))
        rank = low.shape[0] if low is not None else None
        if not ({"lokr_w1", "lokr_w1_a"} & roles and {"lokr_w2", "lokr_w2_a"} & roles):
            raise LoraError(f"{stem}: LoKr needs lokr_w1 and lokr_w2 (or their _a/_b halves), has {sorted(roles)}")
        w1 = (t["lokr_w1"].shape[0], t["lokr_w1"][0].numel()) if "lokr_w1" in t else (
            t["lokr_w1_a"].shape[0], t["lokr_w1_b"].shape[1])
        w2 = (t["lokr_w2"].shape[0], t["lokr_w2"][0].numel()) if "lokr_w2" in t else (
            t["lokr_w2_a"].shape[0], t["lokr_w2_b"].shape[1])
        ok = w1[0] * w2[0] == weight.shape[0] and w1[1] * w2[1] == weight[0].numel()
    else:
        ok = "diff" not in t or t["diff"].numel() == weight.numel()
        if "diff" not in t:
            t["diff"] = torch.zeros(weight.shape)
    scale = alpha / rank if alpha is not None and rank else 1.0
    if not ok:
        shapes = {k: tuple(v.shape) for k, v in group.items() if k != "alpha"}
        raise LoraError(f"{stem}: shapes {shapes} do not fit the layer's weight {tuple(weight.shape)} "
                        "(a LoRA for another model or model size?)")
    return Delta(kind, t, scale)


@dataclass
class Matched:
    """What a LoRA changes: (target label, module name, delta) per layer, and what it skipped."""

    layers: list[tuple[Target, str, Delta]]
    unmatched: list[str]
    absent: dict[str, int]  # target label → number of layers for a model that was not given


def match(lora: LoraFile, targets: list[Target]) -> Matched:
    """Match every layer of ``lora`` to a module of ``targets``; LoraError when nothing matches."""
    layers, unmatched, absent = [], [], {}
    for stem, group in lora.groups.items():
        if set(group) == {"alpha"}:
            continue
        name, target, label = _resolve(stem, targets, PREFIXES)
        if target is None and label != "?":
            absent[label] = absent.get(label, 0) + 1
            continue
        if name is None or target is None:
            unmatched.append(stem)
            continue
        layers.append((target, name, _delta(stem, group, target.modules[name].weight, lora.alpha)))
    if not layers:
        what = ", ".join(t.label for t in targets)
        few = ", ".join(sorted(lora.groups)[:5])
        if absent and not unmatched:
            raise LoraError(f"{lora.name}: it only changes {', '.join(absent)}, which is not linked")
        raise LoraError(f"{lora.name}: none of its {len(lora.groups)} layers matches a layer of the "
                        f"model ({what}); its keys are e.g. {few}")
    if unmatched:
        log.warning("%s: %d of its layers match no layer of the model and are ignored, e.g. %s",
                    lora.name, len(unmatched), unmatched[:4])
    return Matched(layers, unmatched, absent)
