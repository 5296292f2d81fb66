"""The Attention page's computation: decode one word with an encoder-decoder, bounded input.

The checks and the decoding live in :mod:`workbench.models.g2p_decode` (shared with the
widget and the report section); this module finds the models the page serves.
"""

from __future__ import annotations

import json
from pathlib import Path

from workbench.models.g2p_decode import (  # noqa: F401  (the page's names)
    EXPLAIN_METHODS,
    MAX_BEAM,
    MAX_CHARS,
    MAX_IG_STEPS,
    MAX_TOPK,
    AttentionInputError,
    check_word,
    explain_output,
    what_if,
)
from workbench.models.g2p_decode import decode_word as analyse  # noqa: F401


def is_seq2seq(path: Path) -> bool:
    """Whether the checkpoint folder holds an encoder-decoder (``kind`` ``g2p``)."""
    try:
        return json.loads((Path(path) / "config.json").read_text()).get("kind") == "g2p"
    except (OSError, ValueError):
        return False


def models(ctx) -> dict[str, Path]:
    """Encoder-decoder checkpoints for the page: the served ones, else the shipped ``g2p``."""
    found = {n: p for n, p in ctx.models.items() if is_seq2seq(p)}
    if found:
        return found
    from workbench.models.checkpoint import CheckpointError, shipped

    try:
        return {"g2p": shipped("g2p")}
    except CheckpointError:
        return {}
