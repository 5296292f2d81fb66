"""Windows of token ids drawn from a corpus, for the memory measures.

A window is ``steps + 1`` consecutive ids of one document: the first ``steps`` are fed to
the model, the last one is the next token its output at the final step is scored on.
"""

from __future__ import annotations

import numpy as np
import torch

#: Caps on what one call may ask for (the app and CLI pass user numbers through these).
MAX_WINDOWS = 5000
MAX_STEPS = 1024


class MeasureError(ValueError):
    """A memory measure that cannot run; the message names the problem and the fix."""


def bounded(value, name: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``, else one clear error naming the cap."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MeasureError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not low <= value <= high:
        raise MeasureError(f"{name} must be between {low} and {high}, got {value}")
    return value


def from_sequences(sequences, windows: int, steps: int, seed: int = 0) -> torch.Tensor:
    """Draw windows uniformly over every position where one fits inside a sequence.

    Parameters
    ----------
    sequences : list of sequence of int
        Token ids per document.
    windows, steps : int
        How many windows, and steps fed to the model (each window holds ``steps + 1`` ids).
    seed : int
        Random seed (the same seed draws the same windows).

    Returns
    -------
    torch.Tensor
        ``[batch, steps + 1]`` int64 ids (``batch = windows``; drawn with replacement when
        the corpus holds fewer starts).

    Raises
    ------
    MeasureError
        When no sequence is longer than ``steps``.
    """
    windows = bounded(windows, "windows", 1, MAX_WINDOWS)
    steps = bounded(steps, "steps", 1, MAX_STEPS)
    seqs = [np.asarray(s, dtype=np.int64) for s in sequences]
    room = np.array([max(len(s) - steps, 0) for s in seqs], dtype=np.int64)
    if room.sum() == 0:
        longest = max((len(s) for s in seqs), default=0)
        raise MeasureError(
            f"no document is longer than steps={steps} (the longest has {longest} tokens); "
            "ask for fewer steps"
        )
    rng = np.random.default_rng(seed)
    flat = rng.choice(int(room.sum()), size=windows, replace=windows > room.sum())
    ends = np.cumsum(room)
    doc = np.searchsorted(ends, flat, side="right")
    start = flat - (ends[doc] - room[doc])
    out = np.stack([seqs[d][s : s + steps + 1] for d, s in zip(doc, start, strict=True)])
    return torch.from_numpy(out)


def from_store(store, windows: int, steps: int, seed: int = 0) -> torch.Tensor:
    """Windows of the token ids a :class:`~workbench.StateStore` was recorded on.

    Returns
    -------
    torch.Tensor
        ``[batch, steps + 1]`` ids; see :func:`from_sequences`.
    """
    ids = np.asarray(store._column("tokens/token_id"), dtype=np.int64)
    b = store.boundaries
    return from_sequences([ids[b[i] : b[i + 1]] for i in range(len(b) - 1)], windows, steps, seed)


def from_corpus(bundle, docs, windows: int, steps: int, seed: int = 0) -> torch.Tensor:
    """Windows of a list of :class:`~workbench.data.Document` encoded by a loaded model."""
    if bundle.tokenizer is None:
        raise MeasureError(f"the {bundle.kind} model {bundle.task!r} reads series, not tokens")
    return from_sequences([bundle.tokenizer.encode(d.tokens) for d in docs], windows, steps, seed)
