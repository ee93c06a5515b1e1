"""Prompt encoding: text → Conditioning, with (word:1.3) weighting and long-prompt chunking."""
from __future__ import annotations

from loom import Context, Input, UserInputError, node
from loom.types import Conditioning, TextEncoder


@node(category="conditioning")
def text_encode(ctx: Context, encoder: TextEncoder,
                text: str = Input("", multiline=True,
                                  help="(word:1.3) weights a word, (word) ×1.1, [word] ÷1.1; "
                                       "CLIP prompts longer than 75 tokens are encoded in chunks"),
                ) -> Conditioning:
    """Encode a prompt into conditioning for a denoiser."""
    encode = getattr(encoder, "encode", None)
    if encode is None:
        raise UserInputError(f"{type(encoder).__name__} cannot encode text", input="encoder")
    return encode(text, ctx.models, ctx.device)
