"""Site kinds behind one registry: HookPoints in the name grammar, outputs by path, user kinds."""

import pytest
import torch
from torch import nn

import workbench
from workbench.recorder import HookPoint, RecordingError, register_site
from workbench.recorder.sites import kind_of, kinds, unregister_site
from workbench.recorder.sites.output import OutputKind


class Peephole(nn.Module):
    """A peephole LSTM layer whose HookPoints declare layer, direction and quantity."""

    def __init__(self, n_in: int, n: int, layer: int, direction: str = "fwd") -> None:
        super().__init__()
        self.lin = nn.Linear(n_in + n, 4 * n)
        self.peep = nn.Parameter(torch.randn(3, n) * 0.1)
        self.i = HookPoint(layer=layer, direction=direction, quantity="input_gate")
        self.f = HookPoint(layer=layer, direction=direction, quantity="forget_gate")
        self.cell = HookPoint(layer=layer, direction=direction)
        self.hidden = HookPoint(layer=layer, direction=direction)

    def forward(self, x):
        b, t, _ = x.shape
        h = c = x.new_zeros(b, self.peep.shape[1])
        outs = []
        for s in range(t):
            zi, zf, zg, zo = self.lin(torch.cat([x[:, s], h], -1)).chunk(4, -1)
            i = self.i(torch.sigmoid(zi + self.peep[0] * c))
            f = self.f(torch.sigmoid(zf + self.peep[1] * c))
            c = self.cell(f * c + i * torch.tanh(zg))
            h = self.hidden(torch.sigmoid(zo + self.peep[2] * c) * torch.tanh(c))
            outs.append(h)
        return torch.stack(outs, 1)


class Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Peephole(3, 4, 0), Peephole(4, 4, 1)])
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def test_hookpoints_that_declare_their_layer_join_the_grammar():
    model = Stack()
    x = torch.randn(2, 5, 3)
    trace = workbench.record(model, x)
    assert trace.names == [
        f"layers.{k}.fwd.{q}"
        for k in range(2)
        for q in ("input_gate", "forget_gate", "cell", "hidden")
    ]
    assert trace["layers.1.fwd.hidden"].shape == (2, 5, 4)
    assert trace.lengths.tolist() == [5, 5]
    edited = workbench.intervene(model, x, edits={"layers.0.fwd.cell": lambda v, t: v * 0})
    assert edited["layers.0.fwd.cell"].abs().max() == 0
    assert not torch.allclose(edited.output, trace.output)


def test_hookpoint_declarations_are_checked():
    with pytest.raises(ValueError, match="direction"):
        HookPoint(layer=0, direction="up")
    with pytest.raises(ValueError, match="layer"):
        HookPoint(layer=-1)
    twice = nn.Module()
    twice.p = nn.ModuleList([HookPoint(layer=0, quantity="x"), HookPoint(layer=0, quantity="x")])
    with pytest.raises(RecordingError, match="would both record 'p.0.fwd.x'"):
        workbench.record(twice, torch.randn(2, 3))
    unnamed = nn.Module()
    unnamed.p = nn.ModuleList([HookPoint(layer=0)])
    with pytest.raises(RecordingError, match="pass quantity="):
        workbench.record(unnamed, torch.randn(2, 3))


def test_any_module_output_by_path():
    model = Stack()
    x = torch.randn(2, 5, 3)
    trace = workbench.record(model, x, names="*.output", extra=["head", "layers.1"])
    assert trace.names == ["head.output", "layers.1.output"]  # in the order asked
    assert torch.equal(trace["head.output"], trace.output)
    assert torch.equal(trace["layers.1.output"], workbench.record(model, x)["layers.1.fwd.hidden"])
    with pytest.raises(RecordingError, match="extra='nope' names no module"):
        workbench.record(model, x, extra=["nope"])


def test_outputs_of_a_step_loop_form_a_time_axis():
    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cell = nn.GRUCell(3, 4)
            self.proj = nn.Linear(4, 2)

        def forward(self, x):
            h, outs = None, []
            for t in range(x.shape[1]):
                h = self.cell(x[:, t], h)
                outs.append(self.proj(h))
            return torch.stack(outs, 1)

    model = Loop()
    trace = workbench.record(model, torch.randn(3, 6, 3), extra=["proj"])
    assert trace["proj.output"].shape == (3, 6, 2)
    assert torch.equal(trace["proj.output"], trace.output)


def test_a_registered_kind_is_matched_first_and_undone():
    class LinearOutputs(OutputKind):
        kind, modules = "linear", (nn.Linear,)

    model = Stack()
    kind = register_site(LinearOutputs())
    try:
        assert kind_of(model.head) is kind and kinds()[0] is kind
        trace = workbench.record(model, torch.randn(2, 5, 3), names="*.output")
        assert trace.names == ["layers.0.lin.output", "layers.1.lin.output", "head.output"]
        assert trace["layers.0.lin.output"].shape == (2, 5, 16)  # one step a call
    finally:
        unregister_site(kind)
    assert kind_of(model.head) is None
    with pytest.raises(TypeError, match="SiteKind"):
        register_site(nn.Linear)


def test_every_builtin_kind_is_registered():
    found = {k.kind for k in kinds()}
    assert {
        "lstm",
        "gru",
        "rnn",
        "lstm_cell",
        "gru_cell",
        "rnn_cell",
        "attention",
        "hookpoint",
    } <= found
    assert kind_of(nn.RNN(2, 3)).quantities == ("pre_activation", "hidden")
