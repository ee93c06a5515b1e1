"""Write a small random LoRA (kohya layout) for the embedded shapes-ldm UNet, for the example workflow.

It is random, not trained: it only shows (and tests) the load_lora node on the offline model.

    python scripts/make_random_lora.py [--out models/embedded/shapes-lora-random] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("make_random_lora")

README = """# shapes-lora-random

A **random, untrained** LoRA (kohya key layout: `lora_unet_<layer>.lora_down.weight`,
`.lora_up.weight`, `.alpha`) for the attention projections (`to_q`, `to_k`, `to_v`, `to_out.0`)
of every transformer block of the embedded `shapes-ldm` UNet: rank {rank}, alpha {alpha},
seed {seed}, fp16. It exists only so that `workflows/lora.json` shows the `load_lora` node
offline; it changes the images but teaches the model nothing.

Made by `python scripts/make_random_lora.py`. `loom.json` (`{{"kind": "loras"}}`) lists it in the
LoRA combo as `embedded/shapes-lora-random`.
"""


def make(unet: UNet2DConditionModel, rank: int, alpha: float, std: float, seed: int) -> dict[str, torch.Tensor]:
    """Random down/up pairs for the attention projections of ``unet``."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, module in unet.named_modules():
        if not isinstance(module, torch.nn.Linear) or not name.endswith((".to_q", ".to_k", ".to_v", ".to_out.0")):
            continue
        stem = "lora_unet_" + name.replace(".", "_")
        w = module.weight
        out[f"{stem}.lora_down.weight"] = (torch.randn(rank, w.shape[1], generator=gen) * std).half()
        out[f"{stem}.lora_up.weight"] = (torch.randn(w.shape[0], rank, generator=gen) * std).half()
        out[f"{stem}.alpha"] = torch.tensor(alpha).half()
    return out


def main() -> None:
    """Parse the arguments and write the LoRA folder."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / "models" / "embedded" / "shapes-ldm")
    p.add_argument("--out", type=Path, default=REPO / "models" / "embedded" / "shapes-lora-random")
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--alpha", type=float, default=4.0)
    p.add_argument("--std", type=float, default=0.12, help="std of the random down/up entries")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = json.loads((args.model / "unet" / "config.json").read_text())
    unet = UNet2DConditionModel.from_config(config)
    weights = make(unet, args.rank, args.alpha, args.std, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(args.out / "lora.safetensors"), metadata={"loom": "random LoRA for shapes-ldm"})
    (args.out / "loom.json").write_text(json.dumps({"kind": "loras", "for": "embedded/shapes-ldm",
                                                    "random": True}, indent=2) + "\n")
    (args.out / "README.md").write_text(README.format(rank=args.rank, alpha=args.alpha, seed=args.seed))
    log.info("wrote %d layers (%d tensors) to %s", len(weights) // 3, len(weights), args.out)


if __name__ == "__main__":
    main()
