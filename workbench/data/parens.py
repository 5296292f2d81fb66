"""The parenthesis language of LSTMVis: nesting with digits that equal the current depth."""

from __future__ import annotations

import numpy as np

from workbench.data._document import Document

VOCAB = ["(", ")", "0", "1", "2", "3", "4"]


def generate(n_docs: int, length: int = 60, max_depth: int = 4, seed: int = 0) -> list[Document]:
    """Random sequences of brackets and digits; every digit equals the depth it stands at.

    Parameters
    ----------
    n_docs : int
        Number of sequences.
    length : int
        Tokens per sequence (each starts at depth 0; the parens model is trained on
        sequences from a zero state, not on their concatenation).
    max_depth : int
        Deepest nesting (LSTMVis uses 4).
    seed : int
        Random seed (the same seed gives the same documents).

    Returns
    -------
    list of Document
        With meta track ``depth`` ``[time]`` and ``is_digit``.
    """
    rng = np.random.default_rng(seed)
    docs = []
    for k in range(n_docs):
        depth, tokens, depths = 0, [], []
        for _ in range(length):
            r = rng.random()
            if r < 0.3 and depth < max_depth:
                depth += 1
                tokens.append("(")
            elif r < 0.6 and depth > 0:
                tokens.append(")")
                depth -= 1
            else:
                tokens.append(str(depth))
            depths.append(depth)
        meta = {
            "depth": np.array(depths, dtype=np.int16),
            "is_digit": np.array([t.isdigit() for t in tokens], dtype=np.int16),
        }
        docs.append(Document(f"parens/{seed}/{k}", tokens, meta))
    return docs
