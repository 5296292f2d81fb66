"""Document: one sequence of a corpus with its meta tracks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Document:
    """One document of a corpus.

    Attributes
    ----------
    doc_id : str
        Stable identifier (file path, row hash...).
    tokens : list of str
        Token strings ``[time]`` (characters for the char LM, words for tweets).
    meta : dict of str to np.ndarray
        Per-token meta tracks ``[time]`` (LSTMVis "meta" rows).
    label : int or None
        Class label for classification corpora.
    values : np.ndarray or None
        ``[time, feature]`` values for series corpora.
    """

    doc_id: str
    tokens: list[str]
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    label: int | None = None
    values: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tokens)


class DataError(ValueError):
    """Corpus or data file that cannot be used; the message names the problem and the fix."""
