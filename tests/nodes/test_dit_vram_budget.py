"""The VRAM budget with transformer-sized models: whole modules offloaded (LRU), and a module
larger than the budget (T5-XXL) run layer by layer. This machine has no GPU: a fake device
records the manager's moves, so the tests check what moves where and when, and the budget."""
from __future__ import annotations

import logging

import pytest
import torch
from dit_file_fixtures import tiny_t5

from loom.model_manager import ModelManager, module_bytes


# --- VRAM budget: whole-module offload, and T5 layer by layer --------------------------------
class _FakeDevice:
    """Records the model manager's moves instead of making them (this machine has no GPU)."""

    def __init__(self, mgr: ModelManager) -> None:
        self.mgr, self.on, self.peak, self.moves = mgr, {}, 0, []

    def __call__(self, module: torch.nn.Module, device: torch.device, own_only: bool = False) -> None:
        size = _own_size(module) if own_only else module_bytes(module)
        self.moves.append((module, device.type))
        key = (id(module), own_only)
        if device.type == "cpu":
            self.on.pop(key, None)
        else:
            self.on[key] = size
        self.peak = max(self.peak, sum(self.on.values()))


def _own_size(module: torch.nn.Module) -> int:
    own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    return sum(t.numel() * t.element_size() for t in own)


def _fake_gpu(monkeypatch: pytest.MonkeyPatch, budget: int) -> tuple[ModelManager, _FakeDevice]:
    mgr = ModelManager(torch.device("cuda"), torch.float32, budget_bytes=budget)
    fake = _FakeDevice(mgr)
    monkeypatch.setattr(mgr, "_move", fake)
    return mgr, fake


def test_t5_larger_than_the_budget_runs_layer_by_layer(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    t5, ids = tiny_t5(), torch.tensor([[4, 7, 9, 1, 0]])
    want = t5(ids).last_hidden_state
    budget = module_bytes(t5) // 2
    mgr, fake = _fake_gpu(monkeypatch, budget)
    calls: list[str] = []
    for i, block in enumerate(t5.encoder.block):
        # runs before the manager's own forward hook, which moves the block back out
        block.register_forward_hook(lambda m, a, out, i=i: calls.append(
            f"block {i} on the " + ("device" if (id(m), False) in fake.on else "cpu")))
    with caplog.at_level(logging.INFO, logger="loom.model_manager"), mgr.use(t5):
        pieces = mgr.streaming(t5)
        got = t5(ids).last_hidden_state
    assert "T5EncoderModel" in caplog.text and "larger than the VRAM budget" in caplog.text
    assert "running it layer by layer" in caplog.text
    assert all(any(p is b for p in pieces) for b in t5.encoder.block)
    assert calls == ["block 0 on the device", "block 1 on the device"]  # moved in for its forward
    assert fake.on == {} and fake.peak <= budget, "everything leaves the device; never over budget"
    assert torch.equal(got, want)
    assert mgr.streaming(t5) is None and not t5.encoder.block[0]._forward_pre_hooks, "hooks removed after use"


def test_models_over_the_budget_together_are_offloaded_whole(monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    a, b = torch.nn.Linear(64, 64), torch.nn.Linear(64, 64)
    mgr, fake = _fake_gpu(monkeypatch, int(module_bytes(a) * 1.5))
    with caplog.at_level(logging.INFO, logger="loom.model_manager"):
        with mgr.use(a):
            pass
        with mgr.use(b):
            assert mgr.streaming(b) is None
    assert [(m is a or m is b, d) for m, d in fake.moves] == [(True, "cuda"), (True, "cpu"), (True, "cuda")]
    assert fake.moves[1][0] is a and "offloading Linear to CPU" in caplog.text
    assert fake.peak <= mgr.budget


def test_flux_text_encoder_under_a_budget_streams_only_t5(monkeypatch: pytest.MonkeyPatch, tmp_path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    from dit_file_fixtures import tiny_clip, write_t5_tokenizer

    from loom_nodes._lib.diffusion.components import ClipPart
    from loom_nodes._lib.diffusion.dit_encoders_file import clip_tokenizer_for, t5_tokenizer
    from loom_nodes._lib.diffusion.transformer_text import FluxTextEncoder, T5Part

    clip, t5 = tiny_clip(64, False, 1, 49408), tiny_t5(width=256, ff=2048, layers=4)  # blocks 6 MB each
    assert module_bytes(clip) < module_bytes(t5)
    enc = FluxTextEncoder(ClipPart(clip_tokenizer_for("clip_l"), clip),
                          T5Part(t5_tokenizer([write_t5_tokenizer(tmp_path / "t5")]), t5))
    cpu = torch.device("cpu")
    want = enc.encode("a red fox", ModelManager(cpu, torch.float32), cpu)
    mgr, fake = _fake_gpu(monkeypatch, budget=module_bytes(t5) - 1)
    with caplog.at_level(logging.INFO, logger="loom.model_manager"):
        got = enc.encode("a red fox", mgr, cpu)
    assert "T5EncoderModel" in caplog.text and "running it layer by layer" in caplog.text
    assert "CLIPTextModel" not in caplog.text, "CLIP-L fits beside T5's blocks: neither offloaded nor streamed"
    assert torch.equal(got.embeds, want.embeds) and torch.equal(got.pooled, want.pooled)
    assert fake.peak <= mgr.budget and mgr.streaming(t5) is None


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(64, 64), torch.nn.Linear(64, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


class _Stack(torch.nn.Module):
    """Weights of its own (kept on the device while streamed) and a ModuleList (never a piece)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.scale = torch.nn.Parameter(torch.rand(1024))
        self.blocks = torch.nn.ModuleList(_Block() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x) * self.scale[:64]
        return x


def test_own_weights_stay_on_the_device_and_count_against_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    stack, x = _Stack(), torch.randn(2, 64)
    want = stack(x)
    # a whole block fits the budget, but not beside the module's own 4 KB: the blocks split into layers
    mgr, fake = _fake_gpu(monkeypatch, budget=module_bytes(stack.blocks[0]) + 100)
    with mgr.use(stack):
        pieces = mgr.streaming(stack)
        assert (id(stack), True) in fake.on, "the module's own weights are on the device for the block"
        got = stack(x)
    assert [type(p).__name__ for p in pieces] == ["Linear"] * 6
    assert torch.equal(got, want) and fake.on == {} and fake.peak <= mgr.budget
