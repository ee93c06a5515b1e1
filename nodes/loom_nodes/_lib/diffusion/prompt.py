"""Prompt weighting ``(word:1.3)``, ``(word)``, ``[word]`` and chunking of long token lists.

Syntax: ``(text:1.3)`` multiplies the weight of ``text`` by 1.3; ``(text)`` by 1.1;
``[text]`` divides it by 1.1; groups nest and multiply. ``\\(`` and friends are literal
brackets. Unbalanced brackets are kept as text.
"""
from __future__ import annotations

import re

import torch

UP, DOWN = 1.1, 1 / 1.1
_TOKEN = re.compile(r"\\.|\(|\[|\]|:\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*\)|\)|[^\\()\[\]:]+|:", re.S)
_WEIGHT_CLOSE = re.compile(r":\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*\)")


def parse_weights(prompt: str) -> list[tuple[str, float]]:
    """Split ``prompt`` into (text, weight) segments; adjacent equal weights are merged."""
    parts: list[list] = []          # [text, weight]
    stack: list[tuple[int, str]] = []  # (index in parts where the group starts, bracket)

    def scale(start: int, factor: float) -> None:
        for p in parts[start:]:
            p[1] *= factor

    for tok in _TOKEN.findall(prompt):
        if tok.startswith("\\") and len(tok) == 2:
            parts.append([tok[1], 1.0])
        elif tok in ("(", "["):
            stack.append((len(parts), tok))
        elif tok == ")" and stack and stack[-1][1] == "(":
            scale(stack.pop()[0], UP)
        elif tok == "]" and stack and stack[-1][1] == "[":
            scale(stack.pop()[0], DOWN)
        elif (m := _WEIGHT_CLOSE.fullmatch(tok)) and stack and stack[-1][1] == "(":
            scale(stack.pop()[0], float(m.group(1)))
        else:
            parts.append([tok, 1.0])
    for start, bracket in reversed(stack):  # unclosed groups still weigh, as people expect
        scale(start, UP if bracket == "(" else DOWN)
    merged: list[tuple[str, float]] = []
    for text, w in parts:
        w = round(w, 6)
        if merged and merged[-1][1] == w:
            merged[-1] = (merged[-1][0] + text, w)
        elif text:
            merged.append((text, w))
    return merged or [("", 1.0)]


def plain_text(segments: list[tuple[str, float]]) -> str:
    """The prompt without weighting syntax."""
    return "".join(t for t, _ in segments)


def is_unweighted(segments: list[tuple[str, float]]) -> bool:
    """True when every weight is 1 (the plain encoder path can be used)."""
    return all(w == 1.0 for _, w in segments)


def chunk_tokens(ids: list[int], weights: list[float], size: int = 75,
                 break_ids: frozenset[int] = frozenset(), lookback: int = 20
                 ) -> list[tuple[list[int], list[float]]]:
    """Split token ids into chunks of at most ``size``; prefer breaking after a comma-like id.

    Always returns at least one (possibly empty) chunk.
    """
    chunks: list[tuple[list[int], list[float]]] = []
    i = 0
    while i < len(ids):
        end = min(i + size, len(ids))
        if end < len(ids) and break_ids:
            for j in range(end - 1, max(i, end - lookback) - 1, -1):
                if ids[j] in break_ids:
                    end = j + 1
                    break
        chunks.append((ids[i:end], weights[i:end]))
        i = end
    return chunks or [([], [])]


def apply_weights(states: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scale token states (B, T, D) by per-token weights (B, T), keeping the overall mean.

    A new tensor is returned; all-ones weights return ``states`` unchanged.
    """
    if bool((weights == 1).all()):
        return states
    mean = states.float().mean(dim=(-2, -1), keepdim=True)
    out = states.float() * weights.to(states.device, torch.float32).unsqueeze(-1)
    new_mean = out.mean(dim=(-2, -1), keepdim=True)
    ratio = torch.where(new_mean.abs() > 1e-8, mean / new_mean, torch.ones_like(mean))
    return (out * ratio).to(states.dtype)
