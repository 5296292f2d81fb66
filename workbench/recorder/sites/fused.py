"""``nn.LSTM`` and ``nn.GRU``: one fused kernel call per forward."""

from __future__ import annotations

from torch import nn

from workbench.recorder._call import pack_output, parse_fused
from workbench.recorder.sites import SiteKind, register_site

LSTM_QUANTITIES = ("input_gate", "forget_gate", "cell_input", "output_gate", "cell", "hidden")
GRU_QUANTITIES = ("reset_gate", "update_gate", "new_gate", "hidden")


class FusedKind(SiteKind):
    """A module of stacked recurrent layers that calls one fused kernel."""

    hooking = "fused"
    parse = staticmethod(parse_fused)
    pack = staticmethod(pack_output)

    def check(self, site, module):
        if module.training and module.dropout > 0 and module.num_layers > 1:
            return (
                f"{site} is in training mode with dropout={module.dropout} between layers: "
                "its states would depend on a random dropout mask that cannot be reproduced. "
                "Call model.eval() before recording (gradients still work in eval mode)."
            )
        return None


class LSTMKind(FusedKind):
    """``nn.LSTM``: ``torch._VF.lstm``, padded or packed, with or without projection."""

    kind, modules, kernels, quantities = "lstm", (nn.LSTM,), ("lstm",), LSTM_QUANTITIES


class GRUKind(FusedKind):
    """``nn.GRU``: ``torch._VF.gru``, padded or packed."""

    kind, modules, kernels, quantities = "gru", (nn.GRU,), ("gru",), GRU_QUANTITIES


LSTM = register_site(LSTMKind(), builtin=True)
GRU = register_site(GRUKind(), builtin=True)
