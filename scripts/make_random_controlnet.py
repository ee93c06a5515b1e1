"""Write a small random ControlNet for the embedded shapes-ldm UNet, for the example workflow.

It is not trained: ``ControlNetModel.from_unet`` copies the UNet's encoder, and the layers that
diffusers starts at zero (the zero convolutions and the hint encoder's last conv) get small
random weights, so the hint changes the images — it only shows (and tests) the ControlNet
nodes on the offline model.

    python scripts/make_random_controlnet.py [--out models/embedded/shapes-controlnet-random] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch
from diffusers import ControlNetModel, UNet2DConditionModel

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("make_random_controlnet")

README = """# shapes-controlnet-random

A **random, untrained** ControlNet for the embedded `shapes-ldm` UNet (diffusers
`ControlNetModel` folder, fp16): made by `ControlNetModel.from_unet` (the UNet's encoder
copied), with hint-encoder channels {hint} and seed {seed}; the layers diffusers initialises to
zero (`controlnet_down_blocks`, `controlnet_mid_block`, `controlnet_cond_embedding.conv_out`)
hold small random weights (std {std}) instead. It exists only so that
`workflows/controlnet_canny.json` shows `load_controlnet` and `apply_controlnet` offline: the
hint changes the images, but the model was never taught to follow it.

Made by `python scripts/make_random_controlnet.py`. `loom.json` (`{{"kind": "controlnet"}}`)
lists it in the ControlNet combo as `embedded/shapes-controlnet-random`.
"""

ZERO_INIT = ("controlnet_down_blocks.", "controlnet_mid_block.", "controlnet_cond_embedding.conv_out.")


def make(unet: UNet2DConditionModel, hint: tuple[int, ...], std: float, seed: int) -> ControlNetModel:
    """A ControlNet from ``unet`` whose zero-initialised layers hold random weights of ``std``."""
    torch.manual_seed(seed)
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=hint)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in cn.named_parameters():
            if name.startswith(ZERO_INIT) and name.endswith("weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return cn.eval()


def main() -> None:
    """Parse the arguments and write the ControlNet folder."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / "models" / "embedded" / "shapes-ldm")
    p.add_argument("--out", type=Path, default=REPO / "models" / "embedded" / "shapes-controlnet-random")
    p.add_argument("--std", type=float, default=0.05, help="std of the formerly zero weights")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hint = (16, 32, 48, 64)
    unet = UNet2DConditionModel.from_pretrained(args.model / "unet", local_files_only=True)
    cn = make(unet, hint, args.std, args.seed).half()
    args.out.mkdir(parents=True, exist_ok=True)
    cn.save_pretrained(args.out)
    (args.out / "loom.json").write_text(json.dumps({"kind": "controlnet", "for": "embedded/shapes-ldm",
                                                    "random": True}, indent=2) + "\n")
    (args.out / "README.md").write_text(README.format(hint=list(hint), seed=args.seed, std=args.std))
    size = sum(f.stat().st_size for f in args.out.iterdir())
    log.info("wrote %s (%.1f MB)", args.out, size / 1e6)


if __name__ == "__main__":
    main()
