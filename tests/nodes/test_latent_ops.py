"""Latent compositing, blending, cropping, batches and noise masks (pure tensor nodes + sampling)."""
from __future__ import annotations


import pytest
import torch

from node_test_helpers import loaded_tiny_sd
from loom import UserInputError
from loom.types import Latent
from loom_nodes import latents as ops
from loom_nodes._lib.diffusion.components import SchedulerChoice

pytestmark = pytest.mark.usefixtures("one_thread")


def lat(batch=1, h=8, w=8, seed=0, family="sd1", **kw):
    g = torch.Generator().manual_seed(seed)
    return Latent(torch.randn(batch, 4, h, w, generator=g), family, 8, **kw)


def frozen(latent):
    """A copy of the tensors to check later that a node did not change its inputs."""
    return latent.samples.clone(), None if latent.noise_mask is None else latent.noise_mask.clone()


def unchanged(latent, before):
    assert torch.equal(latent.samples, before[0])
    assert (latent.noise_mask is None) == (before[1] is None)
    if before[1] is not None:
        assert torch.equal(latent.noise_mask, before[1])


def test_composite_pastes_the_box_and_leaves_the_rest():
    dst, src = lat(h=16, w=16, seed=1), lat(h=4, w=6, seed=2)
    keep_d, keep_s = frozen(dst), frozen(src)
    out = ops.latent_composite(dst, src, x=16, y=40, feather=0).samples
    assert torch.equal(out[..., 5:9, 2:8], src.samples)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[5:9, 2:8] = True
    assert torch.equal(out[..., ~inside], dst.samples[..., ~inside])
    unchanged(dst, keep_d)
    unchanged(src, keep_s)
    # clipped at the destination's edge
    out = ops.latent_composite(dst, src, x=104, y=112, feather=0).samples
    assert torch.equal(out[..., 14:, 13:], src.samples[..., :2, :3])
    with pytest.raises(UserInputError) as err:
        ops.latent_composite(dst, src, x=128, y=0, feather=0)
    assert err.value.input == "x"


def test_composite_mask_and_feather():
    dst, src = lat(h=8, w=8, seed=1), lat(h=8, w=8, seed=2)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :, 32:] = 1  # the source's right half only
    out = ops.latent_composite(dst, src, 0, 0, 0, mask).samples
    assert torch.allclose(out[..., 4:], src.samples[..., 4:]) and torch.allclose(out[..., :3], dst.samples[..., :3])
    # feather: inner edges ramp in; edges on the destination's border stay sharp
    big = lat(h=16, w=16, seed=3)
    out = ops.latent_composite(big, src, x=32, y=0, feather=16).samples
    w_first = (out[..., 0, 4] - big.samples[..., 0, 4]) / (src.samples[..., 0, 0] - big.samples[..., 0, 4])
    assert torch.allclose(w_first, torch.full_like(w_first, 1 / 3), atol=1e-5)
    assert torch.allclose(out[..., 0, 6], src.samples[..., 0, 2])  # past the ramp: the source itself
    assert torch.equal(out[..., :, :4], big.samples[..., :, :4])


def test_composite_refuses_other_latent_spaces():
    with pytest.raises(UserInputError) as err:
        ops.latent_composite(lat(), lat(family="sdxl"), 0, 0, 0)
    assert err.value.input == "source" and "sdxl" in str(err.value)
    assert ops.latent_composite(lat(family="unknown"), lat(), 0, 0, 0).family == "sd1"


def test_blend():
    a, b = lat(seed=1), lat(seed=2)
    assert torch.equal(ops.latent_blend(a, b, 0.0).samples, a.samples)
    assert torch.allclose(ops.latent_blend(a, b, 1.0).samples, b.samples)
    assert torch.allclose(ops.latent_blend(a, b, 0.25).samples, 0.75 * a.samples + 0.25 * b.samples)
    with pytest.raises(UserInputError) as err:
        ops.latent_blend(a, lat(h=4), 0.5)
    assert err.value.input == "b"


def test_crop_crops_samples_and_noise_mask():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:32, 16:32] = 1
    src = lat(noise_mask=mask)
    before = frozen(src)
    out = ops.latent_crop(src, x=16, y=16, width=16, height=16)
    assert torch.equal(out.samples, src.samples[..., 2:4, 2:4])
    assert out.noise_mask.shape == (1, 1, 16, 16) and bool((out.noise_mask == 1).all())
    assert ops.latent_crop(src, 48, 0, 512, 512).samples.shape == (1, 4, 8, 2)  # clipped
    unchanged(src, before)
    with pytest.raises(UserInputError) as err:
        ops.latent_crop(src, 0, 64, 8, 8)
    assert err.value.input == "y"


def test_batches_pick_repeat_join():
    four = lat(batch=4)
    one = ops.latent_from_batch(four, 1, 2)
    assert torch.equal(one.samples, four.samples[1:3]) and one.batch_index == (1, 2)
    assert ops.latent_from_batch(four, 3, 5).samples.shape[0] == 1
    with pytest.raises(UserInputError) as err:
        ops.latent_from_batch(four, 4, 1)
    assert err.value.input == "index"
    rep = ops.repeat_latent_batch(one, 3)
    assert rep.samples.shape[0] == 6 and rep.batch_index == (1, 2, 4, 5, 7, 8)
    assert ops.repeat_latent_batch(lat(), 2).batch_index is None
    mask = torch.ones(1, 1, 8, 8)
    joined = ops.latent_batch(lat(batch=2, seed=1), lat(seed=2, noise_mask=mask))
    assert joined.samples.shape[0] == 3 and joined.noise_mask.shape == (3, 1, 8, 8)
    assert joined.batch_index is None
    assert ops.latent_batch(one, lat()).batch_index == (1, 2, 3)
    with pytest.raises(UserInputError):
        ops.latent_batch(lat(), lat(w=4))


def test_set_noise_mask_does_not_mutate():
    src = lat(batch=2)
    mask = torch.ones(1, 1, 64, 64)
    out = ops.set_latent_noise_mask(src, mask)
    assert src.noise_mask is None and out.noise_mask is not mask and torch.equal(out.noise_mask, mask)
    with pytest.raises(UserInputError) as err:
        ops.set_latent_noise_mask(src, torch.ones(3, 1, 8, 8))
    assert err.value.input == "mask"


# --- with the sampler ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    registry, ctx, models = loaded_tiny_sd(tmp_path_factory.mktemp("home"), seed=6)
    cond = registry["text_encode"].fn(ctx, models.text_encoder, "a cat")
    return registry, ctx, models, cond


def _sample(sd, latent, mask=None, name="ddim"):
    registry, ctx, models, cond = sd
    return registry["sample"].fn(ctx, models.denoiser, cond, cond, latent, SchedulerChoice(name), steps=3,
                                 cfg=2.0, seed=1, denoise=1.0, mask=mask)


def test_noise_mask_is_the_sample_mask(sd):
    src = Latent(torch.randn(1, 4, 8, 8), "sd1")
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :32, :] = 1
    via_latent = _sample(sd, ops.set_latent_noise_mask(src, mask)).samples
    via_input = _sample(sd, src, mask).samples
    assert torch.equal(via_latent, via_input)
    assert torch.allclose(via_latent[..., 4:, :], src.samples[..., 4:, :])
    other = torch.ones(1, 1, 64, 64)  # the linked mask wins over the latent's
    assert not torch.equal(_sample(sd, ops.set_latent_noise_mask(src, other), mask).samples,
                           _sample(sd, ops.set_latent_noise_mask(src, other)).samples)


def test_image_from_batch_gets_its_batch_noise(sd):
    four = Latent(torch.zeros(4, 4, 8, 8), "sd1")
    whole = _sample(sd, four, name="euler").samples
    third = _sample(sd, ops.latent_from_batch(four, 2, 1), name="euler").samples
    assert torch.allclose(third, whole[2:3], atol=1e-5), (third - whole[2:3]).abs().max()
