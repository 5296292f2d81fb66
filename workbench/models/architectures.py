"""Demo architectures: plain torch modules the recorder sees unmodified.

Every model is built from a JSON-able ``arch`` dict by :func:`build`, which is how
checkpoints are loaded without pickle.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.recorder import HookPoint

_RNN = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}  # nn.RNN: tanh


class PeepholeCell(nn.Module):
    """LSTM cell with peephole connections (Gers & Schmidhuber 2000).

    Its gates are exposed through HookPoints that declare their layer, so the recorder names
    them like a fused ``nn.LSTM``'s: the cell ``rnn.cells.1`` records
    ``rnn.cells.1.fwd.input_gate`` ... ``rnn.cells.1.fwd.hidden``.
    """

    def __init__(self, input_size: int, hidden_size: int, layer: int = 0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.linear = nn.Linear(input_size + hidden_size, 4 * hidden_size)
        self.peephole = nn.Parameter(torch.zeros(3, hidden_size))
        self.input_gate = HookPoint(layer=layer)
        self.forget_gate = HookPoint(layer=layer)
        self.cell_input = HookPoint(layer=layer)
        self.output_gate = HookPoint(layer=layer)
        self.cell = HookPoint(layer=layer)
        self.hidden = HookPoint(layer=layer)

    def forward(self, x: torch.Tensor, state=None):
        """Run over ``x [batch, time, feature]``; returns ``(h [batch, time, units], (h, c))``."""
        b = x.shape[0]
        h, c = state if state is not None else (x.new_zeros(b, self.hidden_size),) * 2
        outs = []
        for t in range(x.shape[1]):
            zi, zf, zg, zo = self.linear(torch.cat([x[:, t], h], -1)).chunk(4, -1)
            i = self.input_gate(torch.sigmoid(zi + self.peephole[0] * c))
            f = self.forget_gate(torch.sigmoid(zf + self.peephole[1] * c))
            g = self.cell_input(torch.tanh(zg))
            c = self.cell(f * c + i * g)
            o = self.output_gate(torch.sigmoid(zo + self.peephole[2] * c))
            h = self.hidden(o * torch.tanh(c))
            outs.append(h)
        return torch.stack(outs, 1), (h, c)


class Stack(nn.Module):
    """Stacked recurrent layers: one fused module, or residual single layers.

    Parameters
    ----------
    arch : {"lstm", "gru", "peephole"}
    residual : bool
        Separate single-layer modules ``layers.0``, ``layers.1`` ... with ``x + f(x)`` between
        them (input and hidden sizes must match from the second layer on).
    """

    def __init__(
        self,
        arch: str,
        input_size: int,
        hidden: int,
        layers: int,
        dropout: float = 0.0,
        bidirectional: bool = False,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.arch, self.residual = arch, residual
        if arch == "peephole":
            self.cells = nn.ModuleList(
                PeepholeCell(input_size if k == 0 else hidden, hidden, layer=k)
                for k in range(layers)
            )
            self.drop = nn.Dropout(dropout)
        elif residual:
            self.layers = nn.ModuleList(
                _RNN[arch](input_size if k == 0 else hidden, hidden, batch_first=True)
                for k in range(layers)
            )
            self.drop = nn.Dropout(dropout)
        else:
            self.rnn = _RNN[arch](
                input_size,
                hidden,
                layers,
                batch_first=True,
                dropout=dropout if layers > 1 else 0.0,
                bidirectional=bidirectional,
            )

    def forward(self, x: torch.Tensor, state=None):
        """``x [batch, time, feature]`` -> ``(out [batch, time, units], state)``."""
        if self.arch == "peephole":
            states = []
            for k, cell in enumerate(self.cells):
                x, s = cell(x if k == 0 else self.drop(x), None if state is None else state[k])
                states.append(s)
            return x, states
        if self.residual:
            states = []
            for k, layer in enumerate(self.layers):
                y, s = layer(x, None if state is None else state[k])
                x = y if k == 0 else x + self.drop(y)
                states.append(s)
            return x, states
        return self.rnn(x, state)


def make_rnn(
    arch: str,
    input_size: int,
    hidden: int,
    layers: int,
    dropout: float = 0.0,
    bidirectional: bool = False,
    residual: bool = False,
) -> nn.Module:
    """The fused ``nn.LSTM``/``nn.GRU`` itself when possible, else a :class:`Stack`."""
    if arch in _RNN and not residual:
        return _RNN[arch](
            input_size,
            hidden,
            layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
    if arch not in (*_RNN, "peephole"):
        raise ValueError(f"unknown arch {arch!r}; use lstm, gru, rnn or peephole")
    return Stack(arch, input_size, hidden, layers, dropout, bidirectional, residual)


class CharLM(nn.Module):
    """Character language model: embedding -> stacked LSTM/GRU -> linear."""

    def __init__(
        self,
        vocab: int,
        embed: int,
        hidden: int,
        layers: int,
        arch: str = "lstm",
        dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = make_rnn(arch, embed, hidden, layers, dropout, residual=residual)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids: torch.Tensor, state=None):
        """``ids [batch, time]`` -> ``(logits [batch, time, vocab], state)``."""
        out, state = self.rnn(self.drop(self.embed(ids)), state)
        return self.head(self.drop(out)), state


class AttentionPool(nn.Module):
    """Additive attention pooling over time (Bahdanau-style scores, masked softmax)."""

    def __init__(self, units: int, attn: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(units, attn)
        self.score = nn.Linear(attn, 1, bias=False)
        self.weights = HookPoint()

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``states [batch, time, units]``, ``mask [batch, time]`` -> ``[batch, units]``."""
        scores = self.score(torch.tanh(self.proj(states))).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        alpha = self.weights(torch.softmax(scores, dim=-1)[:, :, None])
        return (alpha * states).sum(1)


class Classifier(nn.Module):
    """Text classifier: embedding -> (bi)LSTM/GRU -> attention pooling or last state -> linear."""

    def __init__(
        self,
        vocab: int,
        embed: int,
        hidden: int,
        classes: int,
        arch: str = "lstm",
        layers: int = 1,
        bidirectional: bool = True,
        attention: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.rnn = _RNN[arch](
            embed,
            hidden,
            layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        units = hidden * (2 if bidirectional else 1)
        self.pool = AttentionPool(units) if attention else None
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(units, classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``ids [batch, time]``, ``lengths [batch]`` -> ``logits [batch, classes]``."""
        packed = nn.utils.rnn.pack_padded_sequence(
            self.drop(self.embed(ids)), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, h_n = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        if self.pool is not None:
            mask = torch.arange(ids.shape[1], device=ids.device)[None] < lengths[:, None].to(
                ids.device
            )
            pooled = self.pool(out, mask)
        else:
            h = h_n[0] if isinstance(h_n, tuple) else h_n
            pooled = torch.cat([h[-2], h[-1]], -1) if self.rnn.bidirectional else h[-1]
        return self.head(self.drop(pooled))


class Forecaster(nn.Module):
    """Series forecaster: LSTM/GRU -> linear on the last step."""

    def __init__(
        self,
        features: int,
        hidden: int,
        horizon: int = 1,
        arch: str = "lstm",
        layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.rnn = make_rnn(arch, features, hidden, layers, dropout)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [batch, time, feature]`` -> ``y [batch, horizon]``."""
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def _keras(**arch) -> nn.Module:
    from workbench.models.keras_stack import KerasStack

    return KerasStack(**arch)


def _g2p(**arch) -> nn.Module:
    from workbench.models.seq2seq import G2P

    return G2P(**arch)


_CLASSES = {
    "charlm": CharLM,
    "classifier": Classifier,
    "forecaster": Forecaster,
    "g2p": _g2p,  # encoder-decoder with attention (grapheme-to-phoneme)
    "keras": _keras,  # a converted Keras model (workbench convert model.keras)
}
KINDS = tuple(_CLASSES)  # the model kinds a checkpoint's config.json may name


def build(kind: str, **arch) -> nn.Module:
    """Build a model from its kind and JSON architecture settings."""
    if kind not in _CLASSES:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(_CLASSES)}")
    return _CLASSES[kind](**arch)
