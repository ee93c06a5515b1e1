"""Single-file SD 1.x / 2.x / SDXL checkpoints through diffusers' single-file conversion.

The architecture configs ship in ``nodes/loom_nodes/_lib/configs/<arch>/`` so nothing is fetched.
Files load safely: ``.safetensors``, or ``torch.load(weights_only=True)`` for ``.ckpt``;
a checkpoint that needs arbitrary pickle code is refused.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch

from .components import ClipPart, ClipTextEncoder, DiffusionDenoiser, DiffusionVAE
from .loading import Loaded, ModelLoadError, load_tokenizer, loom_info, read_json

log = logging.getLogger(__name__)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ARCHS = ("sd1", "sd2", "sdxl")
UNET_KEY = "model.diffusion_model.input_blocks.0.0.weight"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.ckpt``/``.pt`` loaded with weights_only."""
    if not path.is_file():
        raise ModelLoadError(f"{path.name}: file not found")
    suffix = path.suffix.lower()
    if suffix in (".safetensors", ".sft"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"{path.name} is not a readable .safetensors file "
                                 f"(corrupt or incomplete download?): {exc}") from exc
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(f"{path.name} needs unsafe pickle code to load, which Loom refuses; "
                             "convert it to .safetensors") from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ModelLoadError(f"{path.name} is not a readable checkpoint: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelLoadError(f"{path.name} does not hold a state dict of tensors")
    return data


def detect_architecture(sd: dict[str, torch.Tensor]) -> str:
    """``sd1``, ``sd2`` or ``sdxl`` for an LDM-format checkpoint, else a clear error."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    if UNET_KEY not in sd:
        sample = ", ".join(list(sd)[:3])
        raise ModelLoadError("unknown checkpoint architecture: not a Stable Diffusion 1.x/2.x/XL "
                             f"checkpoint (no {UNET_KEY}; first keys: {sample})")
    kind = infer_diffusers_model_type(sd)
    mapping = {"v1": "sd1", "v2": "sd2", "xl_base": "sdxl"}
    if kind not in mapping:
        raise ModelLoadError(f"checkpoint architecture {kind!r} is not supported yet "
                             "(supported: SD 1.x, SD 2.x, SDXL base)")
    return mapping[kind]


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ModelLoadError:
        raise
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise ModelLoadError(f"cannot convert the {what} of this checkpoint: {exc}") from exc


def load_checkpoint_file(path: Path, device: torch.device, dtype: torch.dtype, name: str,
                         prediction: str = "auto", config_dir: Path | None = None) -> Loaded:
    """Denoiser + text encoder + VAE of a single-file checkpoint.

    ``config_dir`` overrides the shipped architecture configs (a folder with unet/, vae/,
    text_encoder/ [, text_encoder_2/], scheduler/ and optionally tokenizer folders).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    work = torch.float32 if device.type == "cpu" else dtype
    sd = read_state_dict(path)
    arch = detect_architecture(sd)
    cfg = config_dir or CONFIGS / arch
    info = loom_info(cfg)
    common = dict(config=str(cfg), local_files_only=True, torch_dtype=work)
    unet = _call("UNet", UNet2DConditionModel.from_single_file, sd, subfolder="unet", **common).eval()
    vae_m = _call("VAE", AutoencoderKL.from_single_file, sd, subfolder="vae", **common).eval()
    vae = DiffusionVAE(vae_m, name)
    pads = info.get("tokenizers", {})
    parts = []
    te_dirs = ["text_encoder", "text_encoder_2"] if (cfg / "text_encoder_2").is_dir() else ["text_encoder"]
    for i, sub in enumerate(te_dirs):
        arch_name = (read_json(cfg / sub / "config.json").get("architectures") or ["CLIPTextModel"])[0]
        cls = CLIPTextModelWithProjection if arch_name == "CLIPTextModelWithProjection" else CLIPTextModel
        model = _call("text encoder", create_diffusers_clip_model_from_ldm, cls, sd, subfolder=sub,
                      config=str(cfg), torch_dtype=work, local_files_only=True)
        tok_sub = "tokenizer" if i == 0 else "tokenizer_2"
        tok = load_tokenizer(cfg / tok_sub, pads.get(tok_sub, "<|endoftext|>"))
        sdxl = len(te_dirs) == 2
        parts.append(ClipPart(tok, model, "penultimate" if sdxl else "last", pooled=sdxl and i == 1))
    sched = read_json(cfg / "scheduler" / "scheduler_config.json")
    if prediction != "auto":
        sched["prediction_type"] = prediction
    elif arch == "sd2" and any(k.endswith("v_pred") for k in sd):
        sched["prediction_type"] = "v_prediction"
    den = DiffusionDenoiser(unet, sched, vae.family, name, vae.latent_channels, vae.downscale)
    te = ClipTextEncoder(parts, "sdxl" if len(parts) == 2 else "clip", name)
    del sd
    return Loaded(den, te, vae)


def load_vae_file(path: Path, dtype: torch.dtype, name: str, family: str = "auto") -> DiffusionVAE:
    """An SD VAE single file (LDM keys, with or without ``first_stage_model.``)."""
    from diffusers import AutoencoderKL

    sd = read_state_dict(path)
    if not any(k.startswith(("encoder.", "decoder.", "first_stage_model.")) for k in sd):
        raise ModelLoadError(f"{path.name} is not an SD VAE (no encoder./decoder. weights)")
    if family == "auto":
        family = "sdxl" if "xl" in path.name.lower() else "sd1"
    cfg = CONFIGS / ("sdxl" if family == "sdxl" else "sd1")
    vae = _call("VAE", AutoencoderKL.from_single_file, sd, config=str(cfg), subfolder="vae",
                local_files_only=True, torch_dtype=dtype).eval()
    return DiffusionVAE(vae, name)


def load_clip_file(path: Path, dtype: torch.dtype, name: str) -> ClipTextEncoder:
    """A CLIP text encoder single file in transformers key format (e.g. ``clip_l.safetensors``)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    sd = read_state_dict(path)
    key = next((k for k in sd if k.endswith("embeddings.token_embedding.weight")), None)
    if key is None:
        raise ModelLoadError(f"{path.name} is not a CLIP text encoder (no token embedding)")
    width = sd[key].shape[-1]
    table = {768: ("sd1", "text_encoder", CLIPTextModel, "<|endoftext|>"),
             1024: ("sd2", "text_encoder", CLIPTextModel, "!"),
             1280: ("sdxl", "text_encoder_2", CLIPTextModelWithProjection, "!")}
    if width not in table:
        raise ModelLoadError(f"{path.name}: CLIP width {width} is not CLIP-L, OpenCLIP-H or OpenCLIP-G")
    arch, sub, cls, pad = table[width]
    config = CLIPTextConfig(**read_json(CONFIGS / arch / sub / "config.json"))
    model = cls(config)
    prefix = key[: -len("embeddings.token_embedding.weight")]
    base = "text_model." if hasattr(model, "text_model") else ""
    state = {base + k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    state.update({k: v for k, v in sd.items() if k.startswith("text_projection")})
    missing, _ = model.load_state_dict(state, strict=False)
    if [m for m in missing if "position_ids" not in m]:
        raise ModelLoadError(f"{path.name}: weights missing for {missing[:3]}")
    model = model.to(dtype).eval()
    return ClipTextEncoder([ClipPart(load_tokenizer(None, pad), model, "last", pooled=width == 1280)],
                           "clip", name)
