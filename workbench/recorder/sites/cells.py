"""``nn.LSTMCell`` and ``nn.GRUCell``: one cell kernel call per step (layer 0, ``fwd``)."""

from __future__ import annotations

from torch import nn

from workbench.recorder._call import parse_cell
from workbench.recorder.sites import SiteKind, register_site
from workbench.recorder.sites.fused import GRU_QUANTITIES, LSTM_QUANTITIES


class CellKind(SiteKind):
    """A cell module called step by step: each call extends the time axis by one."""

    hooking = "cell"

    def parse(self, kernel: str, args: tuple):
        """The cell call as a one-step, one-layer :class:`RnnCall`."""
        return parse_cell(self.mode(kernel), args)

    @staticmethod
    def pack(call, h_n, c_n):
        """What the cell kernel returns: ``(h, c)`` for LSTM, else ``h`` ``[batch, units]``."""
        return (h_n[0], c_n[0]) if call.mode == "lstm" else h_n[0]


class LSTMCellKind(CellKind):
    """``nn.LSTMCell``: ``torch._VF.lstm_cell``."""

    kind, modules, kernels = "lstm_cell", (nn.LSTMCell,), ("lstm_cell",)
    quantities = LSTM_QUANTITIES


class GRUCellKind(CellKind):
    """``nn.GRUCell``: ``torch._VF.gru_cell``."""

    kind, modules, kernels = "gru_cell", (nn.GRUCell,), ("gru_cell",)
    quantities = GRU_QUANTITIES


LSTM_CELL = register_site(LSTMCellKind(), builtin=True)
GRU_CELL = register_site(GRUCellKind(), builtin=True)
