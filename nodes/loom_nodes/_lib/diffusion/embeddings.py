"""Textual-inversion embeddings named in prompts as ``embedding:name`` (A1111 / ComfyUI files).

A prompt word ``embedding:name`` (or ``embedding:name.safetensors``) refers to
``models/embeddings/<name>`` with ``.safetensors``, ``.pt`` or ``.bin`` added when the name has
none (the prefix and the name are case-sensitive, as in ComfyUI). Files: ``{"emb_params": T}``
(safetensors, A1111/kohya), ``{"string_to_param": {"*": T}, ...}`` (A1111 ``.pt``, read with
``weights_only``), ``{"clip_l": T, "clip_g": T}`` (SDXL) or diffusers' one-tensor
``{"<token>": T}``; ``T`` is (vectors, width) and each vector takes one token position.

The vectors never enter the cached text encoder: for one call each embedding gets ids after
the tokenizer's vocabulary (``len(tokenizer) + i``, the ids diffusers' ``load_textual_inversion``
gives them), and hooks on the token-embedding layer look those ids up in the file's vectors.
"""
from __future__ import annotations

import functools
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from loom import Settings, UserInputError, file_fingerprint, resolve_model

from .prompt import parse_weights

PREFIX = "embedding:"
EXTENSIONS = (".safetensors", ".pt", ".bin")
# at the start of a segment or after a space/comma; the name ends before a space or comma and
# never with sentence punctuation ("embedding:foo." names foo)
_REF = re.compile(r"(?<![^\s,])embedding:([^\s,]*[^\s,.;:!?])")
SDXL_KEYS = ("clip_l", "clip_g")


def references(prompt: str) -> list[str]:
    """Embedding names in a prompt (weighting syntax read first), each once, in order."""
    return list(dict.fromkeys(m.group(1) for text, _ in parse_weights(prompt) for m in _REF.finditer(text)))


def split(text: str) -> list[tuple[str, bool]]:
    """One weighting segment's ``text`` as (piece, is_embedding_name) pairs, in order (empty text pieces dropped)."""
    out: list[tuple[str, bool]] = []
    pos = 0
    for m in _REF.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], False))
        out.append((m.group(1), True))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def find(settings: Settings, name: str) -> Path | None:
    """The file an embedding name refers to under ``models/embeddings/`` (or None)."""
    names = [name] if name.lower().endswith(EXTENSIONS) else []
    names += [name + ext for ext in EXTENSIONS]
    for candidate in names:
        try:
            path = resolve_model(settings, "embeddings", candidate)
        except UserInputError:
            continue
        if path.is_file():
            return path
    return None


def fingerprint(settings: Settings, text: str) -> str:
    """Path, size and mtime of every embedding file a prompt names ("" when it names none)."""
    parts = []
    for name in references(text):
        path = find(settings, name)
        parts.append(file_fingerprint(path) if path is not None else f"{name}:missing")
    return "|".join(parts)


@dataclass(frozen=True, eq=False)
class Embedding:
    """One embedding file: its vectors (n, width) per text encoder (``*``, ``clip_l``, ``clip_g``)."""

    name: str
    path: Path
    vectors: dict[str, torch.Tensor]

    def for_part(self, index: int, count: int, width: int) -> torch.Tensor:
        """The vectors for text encoder ``index`` of ``count`` (SDXL: clip_l, clip_g), width-checked."""
        if count == 2:
            key = SDXL_KEYS[index]
            if key not in self.vectors:
                raise UserInputError(f"embedding {self.name!r} ({self.path.name}) has no {key!r} vectors: it "
                                     f"is not an SDXL embedding (it has {sorted(self.vectors)})", input="text")
            vec = self.vectors[key]
        else:
            fits = [v for k, v in self.vectors.items() if v.shape[-1] == width]
            vec = self.vectors.get("*", fits[0] if fits else next(iter(self.vectors.values())))
        if vec.shape[-1] != width:
            raise UserInputError(f"embedding {self.name!r} ({self.path.name}) has {vec.shape[-1]}-wide vectors "
                                 f"but this text encoder takes {width}: it was made for another model",
                                 input="text")
        return vec


def _as_vectors(t: Any, path: Path, key: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.ndim not in (1, 2) or not t.is_floating_point():
        raise UserInputError(f"{path.name}: {key!r} is not a (vectors × width) float tensor", input="text")
    return (t.unsqueeze(0) if t.ndim == 1 else t).detach().float().cpu()


def parse(data: Any, path: Path) -> dict[str, torch.Tensor]:
    """The vectors of an embedding file's contents, keyed ``*`` or by SDXL encoder."""
    if isinstance(data, torch.Tensor):
        return {"*": _as_vectors(data, path, "tensor")}
    if not isinstance(data, dict):
        raise UserInputError(f"{path.name} is not an embedding file", input="text")
    if isinstance(data.get("string_to_param"), dict) and data["string_to_param"]:
        return {"*": _as_vectors(next(iter(data["string_to_param"].values())), path, "string_to_param")}
    if "emb_params" in data:
        return {"*": _as_vectors(data["emb_params"], path, "emb_params")}
    if any(k in data for k in SDXL_KEYS):
        return {k: _as_vectors(data[k], path, k) for k in SDXL_KEYS if k in data}
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if len(tensors) == 1:  # diffusers' learned_embeds: {"<token>": T}
        k, v = next(iter(tensors.items()))
        return {"*": _as_vectors(v, path, k)}
    raise UserInputError(f"{path.name} is not a textual-inversion embedding: no emb_params, string_to_param, "
                         f"clip_l/clip_g or single tensor among its keys {sorted(map(str, data))[:8]}",
                         input="text")


@functools.lru_cache(maxsize=32)
def _read(path: str, version: str) -> dict[str, torch.Tensor]:
    p = Path(path)
    if p.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return parse(load_file(str(p)), p)
        except (OSError, ValueError, RuntimeError) as exc:
            raise UserInputError(f"cannot read the embedding {p.name}: {exc}", input="text") from exc
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle refuses arbitrary code with many error types
        raise UserInputError(f"cannot read the embedding {p.name} as a weights-only file ({exc}); "
                             "convert it to .safetensors", input="text") from exc
    return parse(data, p)


def load(settings: Settings, names: list[str]) -> dict[str, Embedding]:
    """The embeddings ``names`` refers to, in order; a missing one is an error saying where to put it."""
    out: dict[str, Embedding] = {}
    for name in names:
        path = find(settings, name)
        if path is None:
            where = settings.model_roots[0] / "embeddings"
            raise UserInputError(f"embedding {name!r} (in the prompt as {PREFIX}{name}) not found: put "
                                 f"{name}.safetensors (or .pt) in {where}", input="text")
        out[name] = Embedding(name, path, _read(str(path), file_fingerprint(path)))
    return out


def slots(embeddings: dict[str, Embedding], index: int, count: int, width: int,
          base: int) -> tuple[dict[str, list[int]], torch.Tensor | None]:
    """Token ids for each embedding (from ``base`` on, in order) and the vectors they stand for."""
    ids: dict[str, list[int]] = {}
    vectors = []
    for name, emb in embeddings.items():
        vec = emb.for_part(index, count, width)
        start = base + sum(v.shape[0] for v in vectors)
        ids[name] = list(range(start, start + vec.shape[0]))
        vectors.append(vec)
    return ids, (torch.cat(vectors) if vectors else None)


@contextmanager
def injected(model: torch.nn.Module, base: int, vectors: torch.Tensor | None) -> Iterator[None]:
    """Within the block, ids ≥ ``base`` fed to ``model``'s token embedding give ``vectors[id - base]``.

    Hooks on the lookup layer only; the model's weights are never changed.
    """
    if vectors is None:
        yield
        return
    layer = model.get_input_embeddings()
    seen: dict[str, torch.Tensor] = {}

    def before(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        ids = args[0]
        seen["ids"] = ids
        return (ids.masked_fill(ids >= base, 0),) + tuple(args[1:])

    def after(module: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        ids = seen["ids"]
        extra = ids >= base
        if not bool(extra.any()):
            return out
        out = out.clone()
        out[extra] = vectors.to(out.device, out.dtype)[ids[extra] - base]
        return out

    handles = [layer.register_forward_pre_hook(before), layer.register_forward_hook(after)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
