"""Conditioning nodes (combine, concat, average, zero out, area, mask) on a tiny random SD model."""
from __future__ import annotations


import pytest
import torch

from node_test_helpers import loaded_tiny_sd
from loom import UserInputError
from loom.types import Conditioning, Latent
from loom_nodes import conditioning as cn
from loom_nodes import sampling
from loom_nodes._lib.diffusion import conds, sampler
from loom_nodes._lib.diffusion.components import SchedulerChoice

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    registry, ctx, models = loaded_tiny_sd(tmp_path_factory.mktemp("home"), seed=8)
    enc = lambda text: registry["text_encode"].fn(ctx, models.text_encoder, text)  # noqa: E731
    return registry, ctx, models, enc


def run(sd, positive, negative, cfg=4.0, name="euler"):
    registry, ctx, models, _ = sd
    return registry["sample"].fn(ctx, models.denoiser, positive, negative, Latent(torch.zeros(1, 4, 8, 8), "sd1"),
                                 SchedulerChoice(name), steps=3, cfg=cfg, seed=2, denoise=1.0, mask=None).samples


def predict(sd, positive, negative, cfg=4.0):
    """One guided prediction of the denoiser at t = 500 on fixed latents."""
    _, _, models, _ = sd
    den = models.denoiser
    g = sampling._guidance(den, positive, negative, cfg, 1, (8, 8), torch.device("cpu"), torch.float32)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    cond = sampler._cat(g.uncond, g.cond) if g.guided else g.cond
    return g.combine(den(torch.cat([x] * g.calls()), torch.tensor(500), cond))


def test_combine_with_itself_is_the_single_prompt(sd):
    *_, enc = sd
    a, neg = enc("a red circle"), enc("blur")
    both = cn.conditioning_combine(a, a)
    assert len(conds.parts(both)) == 2 and len(conds.parts(a)) == 1
    diff = (run(sd, both, neg) - run(sd, a, neg)).abs().max().item()
    assert diff <= 1e-5, diff
    b = enc("a green square")
    mixed = run(sd, cn.conditioning_combine(a, b), neg)
    assert not torch.allclose(mixed, run(sd, a, neg)) and not torch.allclose(mixed, run(sd, b, neg))
    # the combined prediction is the mean of the two predictions
    pa, pb, pab = predict(sd, a, neg, 1.0), predict(sd, b, neg, 1.0), predict(sd, cn.conditioning_combine(a, b), neg, 1.0)
    assert torch.allclose(pab, (pa + pb) / 2, atol=1e-5)


def test_combined_negative_and_unguided_runs(sd):
    *_, enc = sd
    a, n1, n2 = enc("a red circle"), enc("blur"), enc("noise")
    out = run(sd, a, cn.conditioning_combine(n1, n2))
    assert torch.isfinite(out).all() and not torch.allclose(out, run(sd, a, n1))
    assert torch.equal(run(sd, a, n1, cfg=1.0), run(sd, a, n2, cfg=1.0))


def test_zero_out_concat_average(sd):
    *_, enc = sd
    a, b = enc("a red circle"), enc("b")
    z = cn.conditioning_zero_out(a)
    assert torch.count_nonzero(z.embeds) == 0 and z.embeds.shape == a.embeds.shape
    assert torch.count_nonzero(a.embeds) > 0  # the input is untouched
    cat = cn.conditioning_concat(a, b)
    assert cat.embeds.shape[1] == a.embeds.shape[1] + b.embeds.shape[1]
    assert torch.equal(cat.embeds[:, :a.embeds.shape[1]], a.embeds)
    assert torch.equal(cn.conditioning_average(a, b, 1.0).embeds, a.embeds)
    assert torch.allclose(cn.conditioning_average(a, b, 0.0).embeds, b.embeds)
    half = cn.conditioning_average(a, b, 0.25).embeds
    assert torch.allclose(half, 0.25 * a.embeds + 0.75 * b.embeds, atol=1e-6)
    # every part of a combined conditioning is changed
    zz = cn.conditioning_zero_out(cn.conditioning_combine(a, b))
    assert all(torch.count_nonzero(p.embeds) == 0 for p in conds.parts(zz))
    with pytest.raises(UserInputError) as err:
        cn.conditioning_combine(a, Conditioning(torch.zeros(1, 4, 7)))
    assert err.value.input == "b"


def test_area_has_no_effect_outside_its_box(sd):
    *_, enc = sd
    whole, region, neg = enc("a blue sky"), enc("a red circle"), enc("blur")
    boxed = cn.set_area(region, x=16, y=16, width=24, height=24, strength=1.0)
    assert boxed.extras["area"] == (16, 16, 24, 24) and "area" not in region.extras
    both = cn.conditioning_combine(whole, boxed)
    ref, got = predict(sd, whole, neg), predict(sd, both, neg)
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[2:5, 2:5] = True
    assert torch.allclose(got[..., ~inside], ref[..., ~inside], atol=1e-5)
    assert not torch.allclose(got[..., inside], ref[..., inside], atol=1e-3)
    # in the box both prompts weigh equally: the mean of their predictions
    reg_pred = predict(sd, region, neg)
    assert torch.allclose(got[..., inside], ((ref + reg_pred) / 2)[..., inside], atol=1e-5)
    # a mask of the same box does the same
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:40, 16:40] = 1
    masked = predict(sd, cn.conditioning_combine(whole, cn.set_mask(region, mask, 1.0)), neg)
    assert torch.allclose(masked, got, atol=1e-5)
    # strength weighs the part against the others in its box
    strong = predict(sd, cn.conditioning_combine(whole, cn.set_area(region, 16, 16, 24, 24, 3.0)), neg)
    assert torch.allclose(strong[..., inside], ((ref + 3 * reg_pred) / 4)[..., inside], atol=1e-5)


def test_area_alone_leaves_the_negative_outside(sd):
    *_, enc = sd
    region, neg = enc("a red circle"), enc("blur")
    got = predict(sd, cn.set_area(region, 0, 0, 32, 64, 1.0), neg)
    uncond = predict(sd, neg, neg)  # cond == uncond: the negative's own prediction
    assert torch.allclose(got[..., 4:], uncond[..., 4:], atol=1e-5)
    assert torch.isfinite(run(sd, cn.set_area(region, 0, 0, 32, 64, 1.0), neg)).all()
