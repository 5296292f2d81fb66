"""Vocabularies: characters or words, with PAD = 0 and UNK = 1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

PAD, UNK = "<pad>", "<unk>"


class Tokenizer:
    """Maps tokens to ids and back.

    Parameters
    ----------
    vocab : list of str
        Id -> token; ``vocab[0]`` is PAD and ``vocab[1]`` UNK.
    level : {"char", "word"}
        How :meth:`tokenize` splits text.
    """

    pad_id, unk_id = 0, 1

    def __init__(self, vocab: list[str], level: str = "char") -> None:
        if vocab[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad>, <unk>")
        self.vocab = list(vocab)
        self.level = level
        self._index = {t: i for i, t in enumerate(self.vocab)}

    @classmethod
    def fit(
        cls, docs: Iterable[list[str]], level: str, max_size: int | None = None, min_count: int = 1
    ) -> Tokenizer:
        """Build a vocabulary from token lists (most frequent first, ties by token)."""
        counts = Counter(t for d in docs for t in d)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([PAD, UNK, *ranked], level)

    def __len__(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        """Split text the way the model was trained."""
        if self.level == "char":
            return list(text)
        from workbench.data.sentiment import tokenize

        return tokenize(text)

    def encode(self, tokens: list[str]) -> list[int]:
        """Token strings -> ids (unknown tokens -> UNK)."""
        return [self._index.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> token strings."""
        return [self.vocab[int(i)] for i in ids]

    def to_json(self) -> dict:
        return {"vocab": self.vocab, "level": self.level}

    @classmethod
    def from_json(cls, data: dict) -> Tokenizer:
        return cls(data["vocab"], data["level"])
