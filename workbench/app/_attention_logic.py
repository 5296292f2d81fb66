"""The Attention page's computation: decode one word with an encoder-decoder, bounded input.

The checks and the decoding live in :mod:`workbench.models.g2p_decode` (shared with the
widget and the report section); this module finds the models the page serves.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

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


def _config(path: Path) -> dict:
    """The checkpoint folder's ``config.json`` ({} when missing or not JSON)."""
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def is_seq2seq(path: Path) -> bool:
    """Whether the checkpoint folder holds an encoder-decoder (``kind`` ``g2p``)."""
    return _config(path).get("kind") == "g2p"


def _served_or_shipped(ctx, wanted, name: str) -> dict[str, Path]:
    """The served checkpoints ``wanted(path)`` accepts, else the shipped ``name`` (or none)."""
    found = {n: p for n, p in ctx.models.items() if wanted(p)}
    if found:
        return found
    from workbench.models.checkpoint import CheckpointError, shipped

    try:
        return {name: shipped(name)}
    except CheckpointError:
        return {}


def models(ctx) -> dict[str, Path]:
    """Encoder-decoder checkpoints for the page: the served ones, else the shipped ``g2p``."""
    return _served_or_shipped(ctx, is_seq2seq, "g2p")


#: Longest text (in tokens) the pooling view reads.
MAX_POOL_TOKENS = 200


def is_pooling(path: Path) -> bool:
    """Whether the checkpoint is a classifier with attention pooling (``pool.weights``)."""
    cfg = _config(path)
    return cfg.get("kind") == "classifier" and bool(cfg.get("arch", {}).get("attention"))


def pool_models(ctx) -> dict[str, Path]:
    """Attention-pooling classifiers: the served ones, else the shipped ``sentiment``."""
    return _served_or_shipped(ctx, is_pooling, "sentiment")


def pool_attention(bundle, text) -> dict:
    """A classifier's attention-pooling weights over one typed text (``pool.weights``).

    Returns
    -------
    dict
        ``tokens`` (list of str), ``weights [1, tokens]`` (list of lists, summing to 1),
        ``label`` (predicted class), ``probs`` (``{label: probability}``).
    """
    from workbench import record

    if isinstance(text, str) and len(text) > 20 * MAX_POOL_TOKENS:
        raise AttentionInputError(
            f"the text has {len(text)} characters; the view reads at most {20 * MAX_POOL_TOKENS}"
        )
    tokens = bundle.tokenizer.tokenize(text.strip()) if isinstance(text, str) else []
    if not tokens:
        raise AttentionInputError("type a text, e.g. 'a wonderful, moving film'")
    if len(tokens) > MAX_POOL_TOKENS:
        raise AttentionInputError(
            f"the text has {len(tokens)} tokens; the view reads at most {MAX_POOL_TOKENS}"
        )
    ids = torch.tensor([bundle.tokenizer.encode(tokens)])
    with torch.no_grad():
        rec = record(bundle.model, ids, torch.tensor([len(tokens)]), names=["pool.weights"])
    w = rec["pool.weights"].reshape(1, -1)[:, : len(tokens)]
    probs = torch.softmax(rec.output[0], -1)
    labels = bundle.labels or [str(i) for i in range(len(probs))]
    return {
        "tokens": tokens,
        "weights": w.double().tolist(),
        "label": labels[int(probs.argmax())],
        "probs": {lab: float(p) for lab, p in zip(labels, probs.tolist(), strict=True)},
    }
