"""A planted-signal task: the label is set by one token at a random position.

Classes: 0 = no planted token, 1 = a POS token somewhere, 2 = a NEG token somewhere; the
rest is random filler. (With a "none" class, neither planted class is the model's default,
so each planted token really carries its label.) A small bidirectional LSTM learns it to
100 % in seconds on CPU; a faithful explanation of the label's logit puts the planted token
first. Used by the tests and by ``workbench bench explain``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PAD, POS, NEG = 0, 1, 2


class PlantedClassifier(nn.Module):
    """Embedding -> packed bidirectional LSTM -> both final states -> linear (3 classes)."""

    def __init__(self, vocab: int = 24, emb: int = 16, hidden: int = 12) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb, padding_idx=PAD)
        self.rnn = nn.LSTM(emb, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, 3)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, 3]`` for ids ``[batch, time]`` and lengths ``[batch]``."""
        packed = nn.utils.rnn.pack_padded_sequence(
            self.emb(ids), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, (h, _) = self.rnn(packed)
        return self.fc(torch.cat([h[-2], h[-1]], -1))


@dataclass
class PlantedData:
    """ids ``[batch, time]``, lengths ``[batch]``, labels ``[batch]``, positions ``[batch]``."""

    ids: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor


def planted_data(
    n: int,
    *,
    vocab: int = 24,
    min_len: int = 8,
    max_len: int = 16,
    seed: int = 0,
    none: bool = False,
) -> PlantedData:
    """Random filler with one POS (label 1) or NEG (label 2) token at a random place.

    With ``none=True`` a third of the sequences have no planted token (label 0, position -1).
    """
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g)
    ids = torch.randint(3, vocab, (n, max_len), generator=g)
    ids[torch.arange(max_len)[None] >= lengths[:, None]] = PAD
    labels = torch.randint(0 if none else 1, 3, (n,), generator=g)
    positions = (torch.rand(n, generator=g) * lengths).long()
    planted = labels > 0
    rows = torch.arange(n)[planted]
    ids[rows, positions[planted]] = torch.where(labels[planted] == 1, POS, NEG)
    positions[~planted] = -1
    return PlantedData(ids, lengths, labels, positions)


def train_planted(
    *, n_train: int = 1500, epochs: int = 12, seed: int = 0
) -> tuple[PlantedClassifier, float]:
    """Train a :class:`PlantedClassifier`; returns ``(model in eval mode, test accuracy)``."""
    torch.manual_seed(seed)
    model = PlantedClassifier()
    data = planted_data(n_train, seed=seed + 1, none=True)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=g)
        for s in range(0, n_train, 100):
            idx = perm[s : s + 100]
            loss = nn.functional.cross_entropy(
                model(data.ids[idx], data.lengths[idx]), data.labels[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    test = planted_data(500, seed=seed + 2, none=True)
    with torch.no_grad():
        acc = (model(test.ids, test.lengths).argmax(-1) == test.labels).float().mean().item()
    return model, acc


DEFAULT_SETTINGS = {
    "integrated_gradients": {"n_steps": 32},
    "shap": {"max_evals": 200},
    "lime": {"n_samples": 300},
}


def hit_rates(model: nn.Module, data: PlantedData, methods=None, settings=None) -> dict:
    """Fraction of sequences whose top-ranked position is the planted token, per method.

    Each sequence is explained for its true label's logit (``data`` from
    :func:`planted_data` with ``none=False``).
    """
    from workbench.explainers import METHODS, explain

    settings = {**DEFAULT_SETTINGS, **(settings or {})}
    out = {}
    for name in methods or sorted(METHODS):
        e = explain(
            model, data.ids, data.labels, name, lengths=data.lengths, **settings.get(name, {})
        )
        top = e.attributions.masked_fill(
            torch.arange(data.ids.shape[1])[None] >= data.lengths[:, None], -float("inf")
        ).argmax(1)
        out[name] = (top == data.positions).float().mean().item()
    return out
