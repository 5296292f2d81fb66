"""Backends behind one protocol: tried in order, a declining one falls through, all exact."""

import pytest
import torch
from torch import nn

import workbench
from workbench.recorder import backends


class Declining:
    """Usable for every recover call, declines each: the next backend must compute it."""

    name, strategy = "declining", "recover"

    def __init__(self) -> None:
        self.calls = 0

    def usable(self, call, needs_grad):
        return True

    def run(self, call, wanted, edits, how):
        self.calls += 1
        return None


class Reference:
    """The layers backend under another name, first in line for GRUs only."""

    name, strategy = "reference", "recover"

    def __init__(self) -> None:
        self.calls = 0

    def usable(self, call, needs_grad):
        return call.mode == "gru"

    def run(self, call, wanted, edits, how):
        self.calls += 1
        return backends.LayersBackend().run(call, wanted, edits, how)


@pytest.fixture
def registered():
    added = [backends.register_backend(Declining()), backends.register_backend(Reference())]
    yield added
    for b in added:
        backends.unregister_backend(b.name)


def test_backends_are_tried_in_order(registered):
    declining, reference = registered
    assert [b.name for b in backends.BACKENDS][:2] == ["reference", "declining"]
    x = torch.randn(7, 2, 3)
    gru, lstm = nn.GRU(3, 5, 2).eval(), nn.LSTM(3, 5).eval()
    plain = workbench.record(gru, x, strategy="unroll")
    got = workbench.record(gru, x, strategy="recover", check="full")
    assert reference.calls == 1 and declining.calls == 0
    for name in plain.names:
        assert (plain[name] - got[name]).abs().max() <= 1e-5
    workbench.record(lstm, x, strategy="recover")
    assert declining.calls == 1 and reference.calls == 1  # lstm: declined, then layers
    workbench.record(lstm, x, strategy="unroll")
    assert declining.calls == 1  # another strategy's backends are not asked


def test_registry_guards():
    with pytest.raises(ValueError, match="registered already"):
        backends.register_backend(backends.LayersBackend())
    with pytest.raises(ValueError, match="fallback"):
        backends.unregister_backend("unroll")
    assert [b.name for b in backends.BACKENDS] == ["reserve", "wavefront", "layers", "unroll"]
