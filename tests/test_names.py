"""The one name type: parse/format round trips, kinds, gates, and the recorder's own names."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import workbench
from workbench.names import GATES, NameParseError, QuantityName, is_gate

IDENT = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from("abcxyz_"),
    st.text(alphabet="abc019_", max_size=6),
)
MODULE = st.lists(st.one_of(IDENT, st.integers(0, 12).map(str)), min_size=0, max_size=4).map(
    ".".join
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(MODULE, IDENT, st.integers(0, 20), st.sampled_from(["fwd", "bwd"]))
def test_recurrent_names_round_trip(module, quantity, layer, direction):
    name = QuantityName(module, quantity, layer, direction)
    assert QuantityName.parse(name.format()) == name
    assert name.kind == "recurrent" and name.is_recurrent
    assert name.direction_index == ("fwd", "bwd").index(direction)


@pytest.mark.parametrize(
    ("text", "module", "layer", "direction", "quantity", "kind"),
    [
        ("encoder.rnn.1.bwd.forget_gate", "encoder.rnn", 1, "bwd", "forget_gate", "recurrent"),
        ("rnn.layers.0.0.fwd.hidden", "rnn.layers.0", 0, "fwd", "hidden", "recurrent"),
        ("0.fwd.cell", "", 0, "fwd", "cell", "recurrent"),
        ("attn.weights", "attn", None, None, "weights", "attention"),
        ("cell.score", "cell", None, None, "score", "value"),
        ("encoder.proj.output", "encoder.proj", None, None, "output", "value"),
    ],
)
def test_parse(text, module, layer, direction, quantity, kind):
    n = QuantityName.parse(text)
    assert (n.module, n.layer, n.direction, n.quantity, n.kind) == (
        module, layer, direction, quantity, kind,
    )  # fmt: skip
    assert n.format() == text


def test_gates_and_bad_names():
    assert GATES == {"input_gate", "forget_gate", "output_gate", "reset_gate", "update_gate"}
    assert is_gate("rnn.0.fwd.update_gate") and not is_gate("rnn.0.fwd.cell_input")
    assert not is_gate("")  # not a name: no gate, no error
    for bad in ("", "rnn."):
        with pytest.raises(NameParseError):
            QuantityName.parse(bad)
    odd = QuantityName.parse("points.0")  # a HookPoint in a ModuleList: a value named "0"
    assert (odd.module, odd.quantity, odd.kind) == ("points", "0", "value")
    assert QuantityName.parse("rnn.0.fwd.0").kind == "value"
    with pytest.raises(NameParseError, match="direction"):
        QuantityName("rnn", "cell", 0, "up")


def test_every_recorded_name_parses_into_its_site():
    model = nn.ModuleDict(
        {
            "lstm": nn.LSTM(3, 4, 2, bidirectional=True),
            "gru": nn.GRU(3, 4),
            "rnn": nn.RNN(3, 4, 2, bidirectional=True),
            "cell": nn.RNNCell(3, 4),
            "attn": nn.MultiheadAttention(4, 2),
        }
    )
    from workbench.recorder._names import find_sites

    for site in find_sites(model):
        for name in site.quantity_names():
            parsed = QuantityName.parse(name)
            assert parsed.module == site.name
            assert parsed.kind == ("attention" if site.kind == "attention" else "recurrent")
            assert parsed.format() == name


def test_trace_names_from_the_recorder_parse():
    trace = workbench.record(nn.GRU(2, 3, 2, bidirectional=True), torch.randn(4, 1, 2))
    parsed = [QuantityName.parse(n) for n in trace.names]
    assert {(p.layer, p.direction) for p in parsed} == {
        (0, "fwd"),
        (0, "bwd"),
        (1, "fwd"),
        (1, "bwd"),
    }
    assert sum(p.is_gate for p in parsed) == 8
