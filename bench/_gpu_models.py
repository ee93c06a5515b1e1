"""Random-weight SD 1.5 / SDXL / Flux-architecture modules for bench/gpu.py, built from configs.

The SD 1.x and SDXL configs are the ones Loom ships (``loom_nodes/_lib/configs``): the real
architectures, random weights, nothing downloaded. ``tiny=True`` shrinks every module to a
few channels so that the whole benchmark can be dry-run on a CPU in seconds.

The same module objects are given to Loom (through the ``bench_gpu_model`` node, which hands
them out of :data:`MODELS`) and to diffusers' pipelines, so both compute with the same weights.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from loom import node
from loom.types import VAE, Denoiser, Image, TextEncoder
from loom_nodes._lib.diffusion.components import ClipPart, ClipTextEncoder, DiffusionDenoiser, DiffusionVAE
from loom_nodes._lib.diffusion.tiny import tiny_tokenizer

CONFIGS = Path(__file__).resolve().parent.parent / "nodes" / "loom_nodes" / "_lib" / "configs"
PROMPT, NEGATIVE = "a photo of a red fox in the snow, detailed", "blurry, low quality"


def graph(name: str, size: int, batch: int, steps: int, cfg: float, seed: int, scheduler: str,
          guidance: float | None = None) -> dict[str, Any]:
    """The benchmark graph (the shape of workflows/text_to_image.json); ``guidance``: Flux's, cfg 1."""
    def link(n: str, o: str) -> dict[str, str]:
        return {"node": n, "output": o}
    positive = link("p", "conditioning")
    nodes: dict[str, Any] = {
        "m": {"type": "bench_gpu_model", "inputs": {"name": name}},
        "p": {"type": "text_encode", "inputs": {"encoder": link("m", "text_encoder"), "text": PROMPT}},
        "n": {"type": "text_encode", "inputs": {"encoder": link("m", "text_encoder"), "text": NEGATIVE}},
        "e": {"type": "empty_latent", "inputs": {"width": size, "height": size, "batch": batch,
                                                 "vae": link("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": scheduler}},
        "d": {"type": "vae_decode", "inputs": {"vae": link("m", "vae"), "latent": link("s", "latent")}},
        "o": {"type": "bench_gpu_keep", "inputs": {"images": link("d", "image")}},
    }
    negative = link("n", "conditioning")
    if guidance is not None:  # cfg 1: the negative is not used, so it is not encoded either (as FluxPipeline)
        nodes["g"] = {"type": "flux_guidance", "inputs": {"conditioning": positive, "guidance": guidance}}
        positive = negative = link("g", "conditioning")
        del nodes["n"]
    nodes["s"] = {"type": "sample", "inputs": {
        "denoiser": link("m", "denoiser"), "positive": positive, "negative": negative,
        "latent": link("e", "latent"), "scheduler": link("sc", "scheduler"), "steps": steps,
        "cfg": 1.0 if guidance is not None else cfg, "seed": seed}}
    return {"nodes": nodes}


def count_flops(call: Any) -> float:
    """FLOPs of ``call()`` as torch's FlopCounterMode counts them (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        call()
    return float(counter.get_total_flops())


@dataclass
class Family:
    """One architecture's modules (on the device, in one dtype) and how to run it."""

    arch: str                     # "sd1" | "sdxl"
    unet: Any
    vae: Any
    encoders: list[Any]           # CLIP text models (SDXL: L, then G with projection)
    tokenizers: list[Any]
    scheduler_config: dict[str, Any]

    @property
    def modules(self) -> list[torch.nn.Module]:
        """Every torch module of the family."""
        return [self.unet, self.vae, *self.encoders]

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def bundle(self, unet: Any | None = None) -> "BenchModel":
        """Loom's wrappers around these modules (``unet`` replaces the family's)."""
        return loom_bundle(self, unet)

    def pipeline(self) -> Any:
        """diffusers' pipeline over the same modules."""
        return pipeline(self)

    def workflow(self, name: str, size: int, batch: int, steps: int, cfg: float, seed: int) -> dict[str, Any]:
        """Loom's graph: encode ×2 → empty latent → Euler → sample → decode."""
        return graph(name, size, batch, steps, cfg, seed, "euler")

    def run_pipeline(self, pipe: Any, size: int, batch: int, steps: int, cfg: float, seed: int) -> torch.Tensor:
        """The pipeline's images for the noise Loom draws for ``seed`` (CPU, float32)."""
        shape = (batch, self.unet.config.in_channels, size // 8, size // 8)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
        return pipe(prompt=PROMPT, negative_prompt=NEGATIVE, height=size, width=size, num_images_per_prompt=batch,
                    num_inference_steps=steps, guidance_scale=cfg, latents=noise.to(self.device, self.dtype),
                    output_type="pt").images

    def flops(self, batch: int, size: int) -> float:
        """FLOPs of one guided UNet call (batch 2 × ``batch``) at ``size``², counted by torch."""
        u, dev, dt = self.unet, self.device, self.dtype
        h = size // 8
        cross = u.config.cross_attention_dim
        kw: dict[str, Any] = {"encoder_hidden_states": torch.randn(2 * batch, 77, cross if isinstance(cross, int)
                                                                   else cross[0], device=dev, dtype=dt)}
        if self.arch == "sdxl":
            pooled = self.encoders[1].config.projection_dim
            kw["added_cond_kwargs"] = {"text_embeds": torch.randn(2 * batch, pooled, device=dev, dtype=dt),
                                       "time_ids": torch.zeros(2 * batch, 6, device=dev, dtype=dt)}
        x = torch.randn(2 * batch, u.config.in_channels, h, h, device=dev, dtype=dt)
        return count_flops(lambda: u(x, torch.tensor(500, device=dev), **kw))

    def attention(self) -> str:
        """The attention processor the UNet uses (SDPA: ``AttnProcessor2_0``)."""
        return type(next(iter(self.unet.attn_processors.values()))).__name__

    def params(self) -> dict[str, int]:
        """Parameter count per module."""
        out = {"unet": sum(p.numel() for p in self.unet.parameters()),
               "vae": sum(p.numel() for p in self.vae.parameters())}
        for i, e in enumerate(self.encoders):
            out[f"text_encoder{'' if i == 0 else f'_{i + 1}'}"] = sum(p.numel() for p in e.parameters())
        return out


def _config(arch: str, part: str) -> dict[str, Any]:
    cfg = json.loads((CONFIGS / arch / part / "config.json").read_text())
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def _tiny_unet(cfg: dict[str, Any], cross: int, pooled: int) -> dict[str, Any]:
    n = len(cfg["block_out_channels"])
    cfg.update(block_out_channels=[32] * n, layers_per_block=1, norm_num_groups=8,
               attention_head_dim=2 if isinstance(cfg.get("attention_head_dim"), int) else [2] * n,
               cross_attention_dim=cross)
    if cfg.get("transformer_layers_per_block") is not None:
        cfg["transformer_layers_per_block"] = 1
    if cfg.get("projection_class_embeddings_input_dim"):
        cfg.update(addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + pooled)
    return cfg


def _tiny_vae(cfg: dict[str, Any]) -> dict[str, Any]:
    n = len(cfg["block_out_channels"])
    cfg.update(block_out_channels=[8 * (i + 1) for i in range(n)], layers_per_block=1, norm_num_groups=8)
    return cfg


def _tiny_clip(cfg: dict[str, Any], width: int) -> dict[str, Any]:
    cfg.update(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2, num_attention_heads=2,
               projection_dim=width, vocab_size=128)
    return cfg


def build(arch: str, device: torch.device, dtype: torch.dtype, *, tiny: bool = False, seed: int = 0) -> Family:
    """SD 1.5 (``sd1``) or SDXL (``sdxl``) with random weights, built directly on ``device``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    ucfg, vcfg = _config(arch, "unet"), _config(arch, "vae")
    vcfg["force_upcast"] = False  # both sides decode in the compute dtype (the NaN guard is Loom's own)
    parts = ["text_encoder"] + (["text_encoder_2"] if arch == "sdxl" else [])
    width = 32 // len(parts)  # tiny CLIP widths: their states concatenate to the tiny UNet's cross dim
    if tiny:
        ucfg, vcfg = _tiny_unet(ucfg, 32, width), _tiny_vae(vcfg)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(ucfg).to(dtype).eval()
        vae = AutoencoderKL.from_config(vcfg).to(dtype).eval()
        encoders = []
        for i, part in enumerate(parts):
            ccfg = _config(arch, part)
            if tiny:
                ccfg = _tiny_clip(ccfg, width)
            ccfg.update(bos_token_id=0, eos_token_id=1, pad_token_id=1)  # the bench tokenizer's ids
            cls = CLIPTextModelWithProjection if i == 1 else CLIPTextModel
            encoders.append(cls(CLIPTextConfig(**ccfg)).to(dtype).eval())
    pads = ["<|endoftext|>", "!"]
    tokenizers = [tiny_tokenizer(pad=pads[i]) for i in range(len(parts))]
    sched = json.loads((CONFIGS / arch / "scheduler" / "scheduler_config.json").read_text())
    return Family(arch, unet, vae, encoders, tokenizers, sched)


def loom_bundle(fam: Family, unet: Any | None = None) -> "BenchModel":
    """Loom's wrappers around ``fam``'s modules (``unet`` replaces the family's, e.g. a compiled copy)."""
    if fam.arch == "sdxl":
        parts = [ClipPart(fam.tokenizers[0], fam.encoders[0], "penultimate"),
                 ClipPart(fam.tokenizers[1], fam.encoders[1], "penultimate", pooled=True)]
        te = ClipTextEncoder(parts, "sdxl", "bench-sdxl")
    else:
        te = ClipTextEncoder([ClipPart(fam.tokenizers[0], fam.encoders[0])], "clip", "bench-sd1")
    vae = DiffusionVAE(fam.vae, f"bench-{fam.arch}")
    den = DiffusionDenoiser(unet if unet is not None else fam.unet, fam.scheduler_config, vae.family,
                            f"bench-{fam.arch}", vae.latent_channels, vae.downscale)
    return BenchModel(den, te, vae)


def pipeline(fam: Family) -> Any:
    """diffusers' pipeline over the same modules, with an Euler scheduler from the same config."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    sched = EulerDiscreteScheduler.from_config(fam.scheduler_config)
    if fam.arch == "sdxl":
        pipe = StableDiffusionXLPipeline(vae=fam.vae, text_encoder=fam.encoders[0], text_encoder_2=fam.encoders[1],
                                         tokenizer=fam.tokenizers[0], tokenizer_2=fam.tokenizers[1],
                                         unet=fam.unet, scheduler=sched)
    else:
        pipe = StableDiffusionPipeline(vae=fam.vae, text_encoder=fam.encoders[0], tokenizer=fam.tokenizers[0],
                                       unet=fam.unet, scheduler=sched, safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def cpu_copy(fam: Family) -> Family:
    """The same weights on the CPU in float32 (for the CPU/GPU determinism check)."""
    return Family(fam.arch, copy.deepcopy(fam.unet).float().cpu(), copy.deepcopy(fam.vae).float().cpu(),
                  [copy.deepcopy(e).float().cpu() for e in fam.encoders], fam.tokenizers, fam.scheduler_config)


class BenchModel(NamedTuple):
    denoiser: Denoiser
    text_encoder: TextEncoder
    vae: VAE


MODELS: dict[str, BenchModel] = {}  # what the bench_gpu_model node hands out, by name


@node(id="bench_gpu_model", category="bench", cache=False)
def bench_gpu_model(name: str) -> BenchModel:
    """Benchmark input: the in-memory modules registered under ``name`` in bench/_gpu_models.MODELS."""
    return MODELS[name]


@node(id="bench_gpu_keep", category="bench", output=True)
def bench_gpu_keep(images: Image) -> Image:
    """Benchmark output: hand the decoded images back."""
    return images
