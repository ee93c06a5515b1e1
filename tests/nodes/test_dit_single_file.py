"""Single-file SD3 / Flux / PixArt transformers and their text encoders: detected from the real key
layouts (tiny shapes), loaded into modules equal to the ones they were made from, fp8 included."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from dit_file_fixtures import (FLUX_TINY, PIXART_TINY, SD3_TINY, flux_original, open_clip_layout,
                               pixart_original, sd3_all_in_one, sd3_original, seeded, t5_file_state, tiny_clip, tiny_t5,
                               tiny_vae16, write_dit_files, write_t5_tokenizer)
from safetensors.torch import save_file
from test_diffusion_single_file import vae_to_ldm

from loom import Executor, Registry, Settings, Workflow, node, validate
from loom.model_manager import ModelManager
from loom.settings import SHIPPED_WORKFLOWS
from loom.types import Image
from loom_nodes._lib.diffusion import dit_single_file as dsf
from loom_nodes._lib.diffusion.dit_bundles import MissingTextEncoder, is_dit_checkpoint, load_dit_checkpoint_file
from loom_nodes._lib.diffusion.dit_encoders_file import (detect_text_encoder, load_text_encoder_file, t5_tokenizer,
                                                         t5_tokenizer_folders)
from loom_nodes._lib.diffusion.loading import ModelLoadError

FP8 = torch.float8_e4m3fn


def _save(sd: dict[str, torch.Tensor], path: Path, dtype: torch.dtype | None = None) -> Path:
    save_file({k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
               for k, v in sd.items()}, str(path))
    return path


def _rounded(model: Any, dtype: torch.dtype) -> Any:
    """``model`` with every weight rounded through ``dtype`` (what a file stored in it holds)."""
    with torch.no_grad():
        for p in [*model.parameters(), *model.buffers()]:
            if p.is_floating_point():
                p.copy_(p.to(dtype).float())
    return model


def _sd3(model: Any, x: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(1)
    cfg = model.config
    ctx, pooled = torch.randn(1, 5, cfg.joint_attention_dim), torch.randn(1, cfg.pooled_projection_dim)
    return model(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled,
                 timestep=torch.tensor([500.0])).sample


def _flux(model: Any) -> torch.Tensor:
    torch.manual_seed(1)
    cfg = model.config
    kw = dict(hidden_states=torch.randn(1, 16, cfg.in_channels),
              encoder_hidden_states=torch.randn(1, 5, cfg.joint_attention_dim),
              pooled_projections=torch.randn(1, cfg.pooled_projection_dim), timestep=torch.tensor([0.5]),
              img_ids=torch.zeros(16, 3),
              txt_ids=torch.zeros(5, 3), guidance=torch.tensor([3.5]) if model.config.guidance_embeds else None)
    return model(**kw).sample


def _pixart(model: Any) -> torch.Tensor:
    torch.manual_seed(1)
    return model(torch.randn(1, 4, 8, 8), encoder_hidden_states=torch.randn(1, 5, 24), timestep=torch.tensor([500]),
                 added_cond_kwargs={"resolution": None, "aspect_ratio": None}).sample


# --- detection from names and shapes ----------------------------------------------------------
def test_detects_sd3_all_in_one_from_shapes_alone() -> None:
    from diffusers import SD3Transformer2DModel

    ref = seeded(SD3Transformer2DModel, **SD3_TINY, qk_norm="rms_norm", dual_attention_layers=(0,))
    specs = {f"model.diffusion_model.{k}": (tuple(v.shape), "float8_e4m3fn") for k, v in sd3_original(ref).items()}
    specs.update({"first_stage_model.decoder.conv_in.weight": (512, 16, 3, 3),
                  "text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
                  "text_encoders.clip_g.transformer.text_model.embeddings.token_embedding.weight": (49408, 1280),
                  "text_encoders.t5xxl.transformer.shared.weight": (32128, 4096)})
    det = dsf.detect(specs)
    assert (det.family, det.layout, det.prefix) == ("sd3", "original", "model.diffusion_model.")
    assert det.parts == ("transformer", "vae", "clip_l", "clip_g", "t5")
    assert det.fp8 and det.storage == ("float8_e4m3fn",)
    want = {**SD3_TINY, "qk_norm": "rms_norm", "dual_attention_layers": (0,)}
    assert {k: det.config[k] for k in want} == want


@pytest.mark.parametrize("guidance", [True, False], ids=["dev", "schnell"])
def test_detects_flux_dev_and_schnell(guidance: bool) -> None:
    from diffusers import FluxTransformer2DModel

    ref = seeded(FluxTransformer2DModel, **{**FLUX_TINY, "guidance_embeds": guidance})
    original = {k: (tuple(v.shape), "bfloat16") for k, v in flux_original(ref).items()}
    assert any(k.startswith("guidance_in.") for k in original) == guidance
    for specs, layout in ((original, "original"), (ref.state_dict(), "diffusers")):
        det = dsf.detect(specs)
        assert (det.family, det.layout) == ("flux", layout)
        assert det.variant == ("Flux dev" if guidance else "Flux schnell")
        assert det.config == {**FLUX_TINY, "guidance_embeds": guidance, "out_channels": 64}


def test_detects_pixart_and_reads_the_sample_size() -> None:
    from diffusers import PixArtTransformer2DModel

    ref = seeded(PixArtTransformer2DModel, **PIXART_TINY)
    det = dsf.detect(pixart_original(ref))
    assert (det.family, det.layout, det.variant) == ("pixart", "original", "PixArt-Σ")
    assert det.config["sample_size"] == 16  # from the stored pos_embed grid
    assert dsf.detect(ref.state_dict(), "PixArt-Sigma-XL-2-512-MS.safetensors").config["sample_size"] == 64


REAL = {  # the published configs (diffusers' config.json of each), built on the meta device
    "Flux dev": ("FluxTransformer2DModel", dict(guidance_embeds=True), flux_original),
    "SD3.5 Large": ("SD3Transformer2DModel", dict(
        sample_size=128, patch_size=2, in_channels=16, num_layers=38, attention_head_dim=64, num_attention_heads=38,
        joint_attention_dim=4096, caption_projection_dim=2432, pooled_projection_dim=2048, out_channels=16,
        pos_embed_max_size=192, qk_norm="rms_norm"), sd3_original),
    "PixArt-Σ": ("PixArtTransformer2DModel", dict(
        sample_size=128, caption_channels=4096, use_additional_conditions=False), pixart_original)}


@pytest.mark.parametrize("variant", list(REAL))
def test_real_sizes_are_inferred_exactly(variant: str) -> None:
    import diffusers
    from accelerate import init_empty_weights

    cls, config, original = REAL[variant]
    with init_empty_weights():
        model = getattr(diffusers, cls)(**config)
    det = dsf.detect({k: tuple(v.shape) for k, v in original(model).items()})
    assert det.variant == variant
    built = dict(model.config)
    for key, value in det.config.items():
        want = built[key] if built[key] is not None or key != "out_channels" else built["in_channels"]
        assert (tuple(value) if isinstance(value, (list, tuple)) else value) == \
            (tuple(want) if isinstance(want, (list, tuple)) else want), key


def test_t5_xxl_config_is_inferred_exactly() -> None:
    from accelerate import init_empty_weights
    from transformers import T5Config, T5EncoderModel

    from loom_nodes._lib.diffusion.dit_encoders_file import t5_config

    real = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                feed_forward_proj="gated-gelu")
    with init_empty_weights():
        model = T5EncoderModel(T5Config(**real))
    got = t5_config(t5_file_state(model), "")
    assert {k: got[k] for k in real} == real


def test_an_unknown_file_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match="not a transformer checkpoint Loom knows.*models/checkpoints"):
        dsf.detect({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)})


# --- loading: equal outputs, fp8 and bf16 storage ---------------------------------------------
def test_sd3_original_fp8_file_equals_its_source(tmp_path: Path) -> None:
    from diffusers import SD3Transformer2DModel

    ref = seeded(SD3Transformer2DModel, **SD3_TINY)
    path = _save({f"model.diffusion_model.{k}": v for k, v in sd3_original(ref).items()},
                 tmp_path / "sd3_fp8.safetensors", FP8)
    module, family = dsf.load_transformer_file(path, torch.float32)
    assert family == "sd3" and next(module.parameters()).dtype == torch.float32
    x = torch.randn(1, 4, 8, 8)
    assert torch.equal(_sd3(module, x), _sd3(_rounded(ref, FP8), x))


@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_flux_bf16_file_equals_its_source(tmp_path: Path, layout: str) -> None:
    from diffusers import FluxTransformer2DModel

    ref = seeded(FluxTransformer2DModel, **FLUX_TINY)
    sd = flux_original(ref) if layout == "original" else ref.state_dict()
    module, family = dsf.load_transformer_file(_save(sd, tmp_path / "flux.safetensors", torch.bfloat16), torch.float32)
    assert family == "flux"
    assert torch.equal(_flux(module), _flux(_rounded(ref, torch.bfloat16)))


def test_pixart_original_file_equals_its_source(tmp_path: Path) -> None:
    from diffusers import PixArtTransformer2DModel

    ref = seeded(PixArtTransformer2DModel, **PIXART_TINY)
    path = tmp_path / "PixArt-Sigma-XL-2-256.pth"  # as published: a weights-only pickle
    torch.save({"state_dict": pixart_original(ref)}, str(path))
    module, family = dsf.load_transformer_file(path, torch.float32)
    assert family == "pixart"
    assert torch.equal(_pixart(module), _pixart(ref))


def test_fp8_storage_keeps_weights_in_fp8_and_computes_in_the_run_dtype(tmp_path: Path) -> None:
    from diffusers import FluxTransformer2DModel

    ref = seeded(FluxTransformer2DModel, **FLUX_TINY)
    path = _save(flux_original(ref), tmp_path / "flux-dev.safetensors")
    module, _ = dsf.load_transformer_file(path, torch.float32, storage="fp8_e4m3fn")
    assert module.transformer_blocks[0].attn.to_q.weight.dtype == FP8
    out, want = _flux(module), _flux(ref)
    assert out.dtype == torch.float32
    assert not torch.equal(out, want) and torch.allclose(out, want, atol=0.25 * want.abs().max().item())


def test_scaled_fp8_weights_are_multiplied_by_their_scales() -> None:
    w = torch.tensor([[1.0, -2.0]]).to(FP8)
    sd = dsf.dequantize({"a.weight": w, "a.scale_weight": torch.tensor(0.5), "a.bias": torch.ones(1),
                         "scaled_fp8": torch.empty(0, dtype=FP8)})
    assert set(sd) == {"a.weight", "a.bias"} and torch.equal(sd["a.weight"], torch.tensor([[0.5, -1.0]]))


# --- text-encoder files ------------------------------------------------------------------------
def test_clip_l_file_is_detected_by_width_and_pools_unprojected(tmp_path: Path) -> None:
    ref = tiny_clip(768, projection=False)
    path = _save(ref.state_dict(), tmp_path / "clip_l.safetensors", torch.float16)
    module, kind = load_text_encoder_file(path, torch.float32)
    assert kind == "clip_l"
    ids = torch.tensor([[0, 5, 9, 2, 1]])
    want, got = _rounded(ref, torch.float16)(ids), module(ids, output_hidden_states=True)
    assert torch.equal(got.last_hidden_state, want.last_hidden_state)
    assert torch.allclose(got.text_embeds, want.pooler_output, atol=1e-6)


@pytest.mark.parametrize("layout", ["open_clip", "hf"])
def test_clip_g_file_in_both_layouts(tmp_path: Path, layout: str) -> None:
    ref = tiny_clip(64, projection=True, act="gelu")
    sd = open_clip_layout(ref) if layout == "open_clip" else ref.state_dict()
    path = _save(sd, tmp_path / "clip_g.safetensors")
    module, kind = load_text_encoder_file(path, torch.float32, kind="auto" if layout == "open_clip" else "clip_g")
    assert kind == "clip_g"
    ids = torch.tensor([[0, 5, 9, 2, 1]])
    got, want = module(ids, output_hidden_states=True), ref(ids, output_hidden_states=True)
    assert torch.allclose(got.hidden_states[-2], want.hidden_states[-2], atol=1e-5)
    assert torch.allclose(got.text_embeds, want.text_embeds, atol=1e-5)


@pytest.mark.parametrize("storage", [FP8, torch.bfloat16, torch.float16], ids=str)
def test_t5_file_in_fp8_bf16_fp16(tmp_path: Path, storage: torch.dtype) -> None:
    ref = tiny_t5()
    path = _save(t5_file_state(ref), tmp_path / "t5xxl.safetensors", storage)
    module, kind = load_text_encoder_file(path, torch.float32)
    assert kind == "t5" and module.encoder.embed_tokens is module.shared
    ids = torch.tensor([[4, 7, 9, 1, 0]])
    assert torch.equal(module(ids).last_hidden_state, _rounded(ref, storage)(ids).last_hidden_state)


def test_a_file_of_another_kind_is_named(tmp_path: Path) -> None:
    path = _save(t5_file_state(tiny_t5()), tmp_path / "t5.safetensors")
    with pytest.raises(ModelLoadError, match="t5.safetensors: this is a t5 text encoder file, not clip_l"):
        load_text_encoder_file(path, torch.float32, kind="clip_l")
    with pytest.raises(ModelLoadError, match="not a CLIP or T5 text encoder"):
        detect_text_encoder({"foo.weight": (3, 3)})


def test_missing_t5_tokenizer_says_what_and_where(tmp_path: Path) -> None:
    t5_file = tmp_path / "models" / "text_encoders" / "t5xxl_fp16.safetensors"
    folders = t5_tokenizer_folders(t5_file, [tmp_path / "models"])
    with pytest.raises(ModelLoadError) as err:
        t5_tokenizer(folders)
    assert "put tokenizer.json" in str(err.value)
    assert str(tmp_path / "models" / "tokenizers" / "t5" / "tokenizer.json") in str(err.value)
    write_t5_tokenizer(tmp_path / "models" / "tokenizers" / "t5")
    tok = t5_tokenizer(folders)
    assert tok("a cat").input_ids[-1] == tok.eos_token_id == 1


# --- an SD3 all-in-one checkpoint ------------------------------------------------------------
def test_sd3_all_in_one_gives_every_part(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sd, m = sd3_all_in_one()
    clip_l, vae, ref = m["clip_l"], m["vae"], m["transformer"]
    home = tmp_path / "home"
    path = _save(sd, tmp_path / "sd3_medium_incl_clips_t5xxl.safetensors", torch.float16)
    assert is_dit_checkpoint(path)
    parts = dsf.load_checkpoint_parts(path, torch.float32)
    assert parts.detected.parts == ("transformer", "vae", "clip_l", "clip_g", "t5")
    assert parts.scheduler_config["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    img = torch.rand(1, 3, 16, 16)
    want = _rounded(vae, torch.float16).encode(img).latent_dist.mean
    assert torch.equal(parts.vae.encode(img).latent_dist.mean, want)
    assert parts.vae.config.scaling_factor == 1.5305 and parts.vae.config.shift_factor == 0.0609
    x = torch.randn(1, 16, 8, 8)
    assert torch.equal(_sd3(parts.transformer, x), _sd3(_rounded(ref, torch.float16), x))
    with pytest.raises(ModelLoadError, match="no T5 tokenizer found"):
        load_dit_checkpoint_file(path, torch.device("cpu"), torch.float32, path.name, [home / "models"])
    write_t5_tokenizer(home / "models" / "tokenizers" / "t5")
    loaded = load_dit_checkpoint_file(path, torch.device("cpu"), torch.float32, path.name, [home / "models"])
    assert loaded.denoiser.arch == "sd3" and loaded.vae.family == "sd3" and loaded.denoiser.family == "sd3"
    cond = loaded.text_encoder.encode("a cat", ModelManager(torch.device("cpu"), torch.float32), torch.device("cpu"))
    assert cond.embeds.shape == (1, 77 + 256, 160) and cond.pooled.shape == (1, 128)
    tok = loaded.text_encoder.clip_l.tokenizer
    ids = tok("a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    want = _rounded(clip_l, torch.float16)(ids).pooler_output
    assert torch.allclose(cond.pooled[:, :64], want, atol=1e-5), "CLIP-L's pooled output, unprojected"


def test_a_transformer_file_without_encoders_names_the_loaders(tmp_path: Path) -> None:
    from diffusers import SD3Transformer2DModel

    ref = seeded(SD3Transformer2DModel, **{**SD3_TINY, "in_channels": 16, "out_channels": 16})
    sd = {f"model.diffusion_model.{k}": v for k, v in sd3_original(ref).items()}
    path = _save(sd, tmp_path / "sd3.5_large.safetensors")
    with pytest.raises(ModelLoadError, match="no VAE: load it with load_diffusion_transformer"):
        load_dit_checkpoint_file(path, torch.device("cpu"), torch.float32, path.name, [])
    sd.update(vae_to_ldm(tiny_vae16().state_dict(), 2))
    loaded = load_dit_checkpoint_file(_save(sd, path), torch.device("cpu"), torch.float32, path.name, [])
    assert isinstance(loaded.text_encoder, MissingTextEncoder)
    with pytest.raises(Exception, match="load_sd3_text_encoders"):
        loaded.text_encoder.encode("a cat", None, torch.device("cpu"))


def test_flux_all_in_one_gives_flux_text_encoders(tmp_path: Path) -> None:
    from diffusers import FluxTransformer2DModel

    ref, clip_l, t5 = seeded(FluxTransformer2DModel, **FLUX_TINY), tiny_clip(64, False, 1, 49408), tiny_t5()
    sd = {f"model.diffusion_model.{k}": v for k, v in flux_original(ref).items()}
    sd.update(vae_to_ldm(tiny_vae16().state_dict(), 2))
    sd.update({f"text_encoders.clip_l.transformer.{k}": v for k, v in clip_l.state_dict().items()})
    sd.update({f"text_encoders.t5xxl.transformer.{k}": v for k, v in t5_file_state(t5).items()})
    path = _save(sd, tmp_path / "flux1-dev-fp8.safetensors", FP8)
    write_t5_tokenizer(tmp_path / "t5_tokenizer")  # beside the file
    loaded = load_dit_checkpoint_file(path, torch.device("cpu"), torch.float32, path.name, [])
    assert type(loaded.text_encoder).__name__ == "FluxTextEncoder" and loaded.vae.family == "flux"
    assert loaded.denoiser.arch == "flux" and loaded.denoiser.scheduler_config["use_dynamic_shifting"]
    assert torch.equal(_flux(loaded.denoiser.module), _flux(_rounded(ref, FP8)))
    cond = loaded.text_encoder.encode("a fox", ModelManager(torch.device("cpu"), torch.float32), torch.device("cpu"))
    assert cond.embeds.shape == (1, 512, 32) and cond.pooled.shape == (1, 64)


# --- the loader nodes end to end -------------------------------------------------------------
@node(id="dit_keep_image", output=True)
def keep_image(image: Image) -> Image:
    """Hand the decoded image back as a run output (test helper)."""
    return image


def test_flux_files_run_through_the_nodes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_dit_files(tmp_path / "models")
    reg = Registry.default(Settings(home=tmp_path))
    reg.add_module(__name__)
    ex = Executor(reg, settings=Settings(home=tmp_path))
    enc = {"node": "enc", "output": "text_encoder"}
    wf = {"nodes": {
        "model": {"type": "load_diffusion_transformer", "inputs": {"model": "tiny-flux.safetensors"}},
        "enc": {"type": "load_flux_text_encoders",
                "inputs": {"clip_l": "tiny-clip-l.safetensors", "t5": "tiny-t5.safetensors"}},
        "vae": {"type": "load_dit_vae", "inputs": {"vae": "tiny-vae16.safetensors", "latent_space": "flux"}},
        "pos": {"type": "text_encode", "inputs": {"encoder": enc, "text": "a red fox"}},
        "g": {"type": "flux_guidance", "inputs": {"conditioning": {"node": "pos", "output": "conditioning"}}},
        "neg": {"type": "text_encode", "inputs": {"encoder": enc, "text": ""}},
        "lat": {"type": "empty_latent", "inputs": {"width": 32, "height": 32, "vae": {"node": "vae", "output": "vae"}}},
        "sched": {"type": "scheduler", "inputs": {"name": "flow_euler"}},
        "sample": {"type": "sample", "inputs": {
            "denoiser": {"node": "model", "output": "denoiser"}, "positive": {"node": "g", "output": "conditioning"},
            "negative": {"node": "neg", "output": "conditioning"}, "latent": {"node": "lat", "output": "latent"},
            "scheduler": {"node": "sched", "output": "scheduler"}, "steps": 2, "cfg": 1.0}},
        "dec": {"type": "vae_decode", "inputs": {"vae": {"node": "vae", "output": "vae"},
                                                 "latent": {"node": "sample", "output": "latent"}}},
        "out": {"type": "dit_keep_image", "inputs": {"image": {"node": "dec", "output": "image"}}}}}
    with caplog.at_level(logging.INFO):
        image = ex.run(wf).outputs["out"]["image"]
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()
    assert "Flux dev transformer (original layout, stored as float32)" in caplog.text


# --- templates -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,files", [
    ("sd3_template.json", ["checkpoints/sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors"]),
    ("flux_template.json", ["diffusion_models/flux1-dev.safetensors", "text_encoders/clip_l.safetensors",
                            "text_encoders/t5xxl_fp16.safetensors", "vae/ae.safetensors"])])
def test_templates_name_the_files_to_put(tmp_path: Path, name: str, files: list[str]) -> None:
    settings = Settings(home=tmp_path)
    problems = validate(Workflow.load(SHIPPED_WORKFLOWS / name), Registry.default(settings), settings)
    assert {p.code for p in problems} == {"missing_model"}
    messages = " ".join(p.message for p in problems)
    for f in files:
        assert f"put it at {tmp_path / 'models' / f}" in messages
