"""An offline CLIP tokenizer built from the BPE file that the PyPI package ``openai-clip`` ships.

Hugging Face's CLIP ``vocab.json``/``merges.txt`` are derived from OpenAI's
``bpe_simple_vocab_16e6.txt.gz``: the 256 byte symbols, the same with the end-of-word
marker, one entry per merge, then the two special tokens. Rebuilding them here gives the
exact token ids of SD 1.x / 2.x / SDXL without fetching anything.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # merges used by CLIP's tokenizer


def bpe_path() -> Path | None:
    """Path of ``bpe_simple_vocab_16e6.txt.gz`` from an installed ``openai-clip``, or None.

    Found without importing the package (its ``__init__`` needs torchvision).
    """
    spec = importlib.util.find_spec("clip")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc) / "bpe_simple_vocab_16e6.txt.gz"
        if p.is_file():
            return p
    return None


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte → printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def vocab_and_merges(path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The CLIP vocabulary (token → id) and merge rules from the gzipped BPE file."""
    lines = gzip.open(path).read().decode("utf-8").split("\n")[1:N_MERGES + 1]
    merges = [(a, b) for a, b in (line.split() for line in lines)]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab)}, merges


@functools.lru_cache(maxsize=4)
def clip_tokenizer(pad_token: str = "<|endoftext|>", max_length: int = 77):
    """A transformers ``CLIPTokenizer`` (SD 1.x pads with end-of-text; SD 2.x/SDXL-G with '!')."""
    from transformers import CLIPTokenizer

    path = bpe_path()
    if path is None:
        raise FileNotFoundError(
            "no CLIP tokenizer available offline: `pip install openai-clip` (it ships CLIP's BPE "
            "vocabulary), or put a Hugging Face tokenizer folder (vocab.json + merges.txt) next to "
            "the model")
    vocab, merges = vocab_and_merges(path)
    tok = CLIPTokenizer(vocab=vocab, merges=merges, pad_token=pad_token)
    tok.model_max_length = max_length
    return tok
