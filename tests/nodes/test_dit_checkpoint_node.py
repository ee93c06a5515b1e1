"""`load_checkpoint` tells an SD3 all-in-one file from an SD one by its tensors and runs it in the usual graph."""
from __future__ import annotations

from pathlib import Path

import torch
from dit_file_fixtures import sd3_all_in_one, write_t5_tokenizer
from safetensors.torch import save_file

from loom import Executor, Registry, Settings, node
from loom.types import Image


@node(id="dit_ckpt_keep", output=True)
def keep(image: Image) -> Image:
    """Hand the image back (test output)."""
    return image


def _link(n: str, o: str) -> dict[str, str]:
    return {"node": n, "output": o}


def test_sd3_all_in_one_checkpoint_runs_through_load_checkpoint(tmp_path: Path) -> None:
    sd, _ = sd3_all_in_one()
    ckpt = tmp_path / "models" / "checkpoints" / "tiny-sd3.safetensors"
    ckpt.parent.mkdir(parents=True)
    save_file({k: v.to(torch.float16).contiguous() for k, v in sd.items()}, str(ckpt))
    write_t5_tokenizer(tmp_path / "models" / "tokenizers" / "t5")
    settings = Settings(home=tmp_path)
    reg = Registry.default(settings)
    reg.add_module(__name__)
    ex = Executor(reg, settings=settings)
    wf = {"nodes": {
        "m": {"type": "load_checkpoint", "inputs": {"checkpoint": "tiny-sd3.safetensors"}},
        "p": {"type": "text_encode", "inputs": {"encoder": _link("m", "text_encoder"), "text": "a red fox"}},
        "n": {"type": "text_encode", "inputs": {"encoder": _link("m", "text_encoder"), "text": ""}},
        "e": {"type": "empty_latent", "inputs": {"width": 32, "height": 32, "vae": _link("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": "flow_euler"}},
        "s": {"type": "sample", "inputs": {"denoiser": _link("m", "denoiser"), "positive": _link("p", "conditioning"),
                                           "negative": _link("n", "conditioning"), "latent": _link("e", "latent"),
                                           "scheduler": _link("sc", "scheduler"), "steps": 2, "cfg": 4.0,
                                           "seed": 3}},
        "d": {"type": "vae_decode", "inputs": {"vae": _link("m", "vae"), "latent": _link("s", "latent")}},
        "o": {"type": "dit_ckpt_keep", "inputs": {"image": _link("d", "image")}},
    }}
    out = ex.run(wf).outputs
    image = out["o"]["image"]
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()
    wf["nodes"]["s"]["inputs"]["seed"] = 4
    assert not torch.equal(ex.run(wf).outputs["o"]["image"], image)
