"""Small models for the explanation tests (built here: no shipped checkpoints needed)."""

from __future__ import annotations

import torch
from torch import nn

_RNN = {
    "lstm": (nn.LSTM, {}),
    "gru": (nn.GRU, {}),
    "rnn_tanh": (nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
}
_CELLS = {
    "lstm": lambda e, h: nn.LSTMCell(e, h),
    "gru": lambda e, h: nn.GRUCell(e, h),
    "rnn_tanh": lambda e, h: nn.RNNCell(e, h, nonlinearity="tanh"),
    "rnn_relu": lambda e, h: nn.RNNCell(e, h, nonlinearity="relu"),
}


class Classifier(nn.Module):
    """Embedding -> packed (bi)LSTM/GRU/RNN -> last states or attention pooling -> linear."""

    def __init__(
        self,
        kind="lstm",
        bidirectional=True,
        layers=2,
        vocab=30,
        emb=8,
        hidden=6,
        classes=3,
        pool="last",
        bias=True,
    ):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb, padding_idx=0)
        rnn, extra = _RNN[kind]
        self.rnn = rnn(
            emb, hidden, num_layers=layers, bidirectional=bidirectional, batch_first=True,
            bias=bias, **extra,
        )  # fmt: skip
        d = 2 if bidirectional else 1
        self.pool = pool
        self.att = nn.Linear(d * hidden, 1)
        self.fc = nn.Linear(d * hidden, classes)

    def forward(self, ids, lengths):
        e = self.emb(ids)
        packed = nn.utils.rnn.pack_padded_sequence(
            e, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, h = self.rnn(packed)
        if isinstance(h, tuple):
            h = h[0]
        if self.pool == "last":
            z = torch.cat([h[-2], h[-1]], -1) if self.rnn.bidirectional else h[-1]
        else:
            out, _ = nn.utils.rnn.pad_packed_sequence(
                out, batch_first=True, total_length=ids.shape[1]
            )
            s = self.att(out).squeeze(-1)
            mask = torch.arange(ids.shape[1])[None] < lengths[:, None]
            w = torch.softmax(s.masked_fill(~mask, float("-inf")), 1)
            z = (w.unsqueeze(-1) * out).sum(1)
        return self.fc(z)


class Unpacked(nn.Module):
    """Time-major nn.LSTM/GRU without packing, last output step, explicit initial state."""

    def __init__(self, kind="gru", vocab=20, emb=5, hidden=4, classes=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        rnn, extra = _RNN[kind]
        self.rnn = rnn(emb, hidden, num_layers=2, bidirectional=True, **extra)
        self.fc = nn.Linear(2 * hidden, classes)
        self.kind = kind

    def forward(self, ids):
        x = self.emb(ids).transpose(0, 1)
        out, _ = self.rnn(x)
        return self.fc(torch.tanh(out[-1]))


class CellLoop(nn.Module):
    """nn.LSTMCell / nn.GRUCell / nn.RNNCell called step by step."""

    def __init__(self, kind="lstm", vocab=20, emb=5, hidden=4, classes=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.cell = _CELLS[kind](emb, hidden)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, ids):
        x = self.emb(ids)
        state = None
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
        h = state[0] if isinstance(state, tuple) else state
        return self.fc(h)


class Forecaster(nn.Module):
    """Float inputs [batch, time, feature] -> [batch, horizon]."""

    def __init__(self, features=2, hidden=6, horizon=3):
        super().__init__()
        self.rnn = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class LayerNormModel(nn.Module):
    """Has an operation LRP has no rule for."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.rnn = nn.LSTM(4, 4, batch_first=True)
        self.norm = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, ids):
        out, _ = self.rnn(self.emb(ids))
        return self.fc(self.norm(out[:, -1]))


def batch(vocab=30, lengths=(7, 3, 5, 1), seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    ids = torch.randint(1, vocab, (len(lengths), int(lengths.max())), generator=g)
    for i, n in enumerate(lengths.tolist()):
        ids[i, n:] = 0
    return ids, lengths
