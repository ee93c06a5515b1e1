"""Pure diffusion helpers: prompt weighting and chunking, CLIP tokenizer, previews, tiling, schedulers,
and the model manager."""
from __future__ import annotations

import pytest
import torch

from loom.model_manager import ModelManager
from loom_nodes._lib.diffusion import preview, schedulers
from loom_nodes._lib.diffusion.components import ClipPart, ClipTextEncoder
from loom_nodes._lib.diffusion.prompt import apply_weights, chunk_tokens, parse_weights
from loom_nodes._lib.diffusion.tiling import tiled
from loom_nodes._lib.diffusion.tiny import tiny_models, tiny_tokenizer


@pytest.mark.parametrize("prompt,expected", [
    ("a cat", [("a cat", 1.0)]),
    ("a (red:1.3) cat", [("a ", 1.0), ("red", 1.3), (" cat", 1.0)]),
    ("((big)) dog", [("big", 1.21), (" dog", 1.0)]),
    ("[small] dog", [("small", round(1 / 1.1, 6)), (" dog", 1.0)]),
    ("(a (b:2) c:0.5)", [("a ", 0.5), ("b", 1.0), (" c", 0.5)]),
    (r"\(literal\) x", [("(literal) x", 1.0)]),
    ("x ) y ]", [("x ) y ]", 1.0)]),
    ("time: 12:30", [("time: 12:30", 1.0)]),
    ("", [("", 1.0)]),
])
def test_parse_weights(prompt, expected):
    assert parse_weights(prompt) == expected


def test_chunking_prefers_commas_and_keeps_every_token():
    ids = list(range(200))
    chunks = chunk_tokens(ids, [1.0] * 200, 75, frozenset({70}))
    assert [len(c[0]) for c in chunks] == [71, 75, 54]
    assert sum((c[0] for c in chunks), []) == ids
    assert chunk_tokens([], [], 75) == [([], [])]


def test_apply_weights_scales_tokens_and_keeps_the_mean():
    z = torch.randn(1, 5, 8) + 1.0
    assert apply_weights(z, torch.ones(1, 5)) is z
    w = torch.tensor([[1.0, 2.0, 1.0, 1.0, 1.0]])
    out = apply_weights(z, w)
    assert torch.allclose(out.mean(), z.mean(), atol=1e-5)
    assert not torch.allclose(out[:, 1], z[:, 1])


@pytest.fixture(scope="module")
def clip_encoder():
    models = tiny_models(seed=5)
    return ClipTextEncoder([ClipPart(tiny_tokenizer(), models["text_encoder"])], "clip")


def test_long_prompts_are_encoded_in_chunks(clip_encoder):
    mgr = ModelManager(torch.device("cpu"), torch.float32)
    short = clip_encoder.encode("a cat", mgr, torch.device("cpu"))
    long = clip_encoder.encode("abcdefghij " * 12, mgr, torch.device("cpu"))  # 132 letter tokens
    assert short.embeds.shape == (1, 77, 32)
    assert long.embeds.shape == (1, 154, 32)
    weighted = clip_encoder.encode("a (cat:1.4)", mgr, torch.device("cpu"))
    assert weighted.embeds.shape == short.embeds.shape and not torch.allclose(weighted.embeds, short.embeds)
    same = clip_encoder.encode("a (cat:1.0)", mgr, torch.device("cpu"))
    assert torch.allclose(same.embeds, short.embeds)


def test_offline_clip_tokenizer_matches_known_ids():
    from loom_nodes._lib.diffusion.clip_tokenizer import bpe_path, clip_tokenizer

    if bpe_path() is None:
        pytest.skip("openai-clip (ships CLIP's BPE vocabulary) is not installed")

    assert clip_tokenizer()("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    padded = clip_tokenizer("!")("a cat", padding="max_length", max_length=6)["input_ids"]
    assert padded == [49406, 320, 2368, 49407, 0, 0]


def test_preview_projection_known_fitted_and_fallback():
    lat = torch.randn(1, 4, 8, 8)
    img = preview.latent_to_rgb(lat, "sd1")
    assert img.shape == (1, 3, 64, 64) and 0 <= img.min() and img.max() <= 1
    fam = "test-family-fit"
    fallback = preview.latent_to_rgb(lat, fam)
    assert fallback.shape == (1, 3, 64, 64)
    w = torch.randn(4, 3) * 0.3
    lats = torch.randn(2, 4, 8, 8)
    rgb = (torch.einsum("bchw,cd->bdhw", lats, w) + 1) / 2
    images = torch.nn.functional.interpolate(rgb, scale_factor=8, mode="nearest")
    preview.fit(fam, lats, images)
    fw, fb = preview.projection(fam, 4)
    assert torch.allclose(fw, w, atol=1e-4) and torch.allclose(fb, torch.zeros(3), atol=1e-4)


def test_tiled_matches_untiled_for_a_local_function():
    x = torch.randn(1, 4, 20, 28)
    up = lambda t: torch.nn.functional.interpolate(t * 2, scale_factor=8, mode="nearest")  # noqa: E731
    assert torch.allclose(tiled(up, x, 8, 2, 8.0), up(x), atol=1e-5)
    down = lambda t: torch.nn.functional.avg_pool2d(t, 4)  # noqa: E731
    y = torch.randn(1, 3, 64, 96)
    assert torch.allclose(tiled(down, y, 32, 8, 0.25), down(y), atol=1e-5)
    assert tiled(up, x, 0, 0, 8.0).shape == (1, 4, 160, 224)


def test_vae_tiled_decode_is_close_to_full(clip_encoder):
    from loom_nodes._lib.diffusion.components import DiffusionVAE

    vae = DiffusionVAE(tiny_models(seed=6)["vae"])
    mgr = ModelManager(torch.device("cpu"), torch.float32)
    z = torch.randn(1, 4, 16, 16)
    full = vae.decode(z, mgr, torch.device("cpu"))
    tiles = vae.decode(z, mgr, torch.device("cpu"), tile=64)
    assert full.shape == tiles.shape == (1, 3, 128, 128)
    assert (full - tiles).abs().mean() < 0.1


def test_scheduler_options():
    cfg = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
           "beta_end": 0.012, "prediction_type": "v_prediction", "steps_offset": 1}
    s = schedulers.build("euler", cfg, sigmas="karras", spacing="trailing")
    assert s.config.use_karras_sigmas and s.config.timestep_spacing == "trailing"
    assert s.config.prediction_type == "v_prediction"
    with pytest.raises(ValueError, match="no karras"):
        schedulers.build("ddim", cfg, sigmas="karras")
    with pytest.raises(ValueError, match="not available"):
        schedulers.build("nope", cfg)


def test_model_manager_lists_offloads_and_forgets():
    mgr = ModelManager(torch.device("cpu"), torch.float32)
    lin = torch.nn.Linear(4, 4)
    got = mgr.load("k1", lambda: lin, "a linear")
    assert got is lin and mgr.load("k1", lambda: None) is lin
    with mgr.use(lin):
        pass
    rows = mgr.loaded()
    assert rows[0]["label"] == "a linear" and rows[0]["bytes"] == 80 and rows[0]["device"] == "cpu"
    assert mgr.stats()["loaded"] == 1
    mgr.offload_all()
    mgr.forget("k1")
    assert mgr.loaded() == []
