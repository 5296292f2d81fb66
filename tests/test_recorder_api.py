"""Recorder API: names, cells, attention, HookPoint, interventions, cleanup, errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from reference import run as reference
from torch import nn

import workbench
from workbench.recorder import HookPoint, Recorder, RecordingError
from workbench.recorder.edits import clamp, set_to, zero


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.rnn = nn.LSTM(4, 6, 2, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(12, 5, batch_first=True)
        self.attn = nn.MultiheadAttention(5, 1, batch_first=True)
        self.out = nn.Linear(5, 3)

    def forward(self, ids):
        h, _ = self.rnn(self.embed(ids))
        g, _ = self.gru(h)
        a, _ = self.attn(g, g, g, need_weights=False)
        return self.out(a[:, -1])


REFERENCE_NAMES = (
    [
        f"rnn.{layer}.{d}.{q}"
        for layer in (0, 1)
        for d in ("fwd", "bwd")
        for q in ("input_gate", "forget_gate", "cell_input", "output_gate", "cell", "hidden")
    ]
    + [f"gru.0.fwd.{q}" for q in ("reset_gate", "update_gate", "new_gate", "hidden")]
    + ["attn.weights"]
)


def test_names_are_fixed_for_the_reference_model():
    model = Encoder().eval()
    trace = workbench.record(model, torch.randint(0, 10, (2, 7)))
    assert trace.names == REFERENCE_NAMES
    for name in REFERENCE_NAMES[:-1]:
        assert trace[name].shape[:2] == (2, 7)
    assert trace["attn.weights"].shape == (2, 1, 7, 7)
    assert trace.mask.all()


def test_output_is_the_models_output_and_filters_work():
    model = Encoder().eval()
    ids = torch.randint(0, 10, (3, 5))
    expected = model(ids)
    trace = workbench.record(model, ids, names=["rnn.0.*.cell", "gru.*.hidden"])
    assert trace.names == ["rnn.0.fwd.cell", "rnn.0.bwd.cell", "gru.0.fwd.hidden"]
    assert (trace.output - expected).abs().max() <= 1e-5
    trace = workbench.record(model, ids, names=lambda n: n.endswith("forget_gate"))
    assert trace.names == [n for n in REFERENCE_NAMES if n.endswith("forget_gate")]


def test_attention_returns_what_the_caller_asked_for():
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    q = torch.randn(2, 4, 8)
    out_avg, w_avg = mha(q, q, q)  # averaged by default
    with Recorder(mha) as rec:
        o1, w1 = mha(q, q, q)
        o2, w2 = mha(q, q, q, need_weights=False)
    assert w2 is None
    assert (w1 - w_avg).abs().max() < 1e-6
    assert (o1 - out_avg).abs().max() < 1e-6
    weights = rec.trace["multiheadattention.weights"]
    assert weights.shape == (2, 2, 8, 4)  # two calls concatenated along the query axis
    assert torch.allclose(weights[:, :, :4].mean(1), w_avg, atol=1e-6)


def test_cells_in_a_user_loop_form_a_time_axis():
    cell = nn.GRUCell(3, 4)
    x = torch.randn(5, 2, 3)
    with Recorder(cell) as rec:
        h = torch.zeros(2, 4)
        for t in range(5):
            h = cell(x[t], h)
    trace = rec.trace
    gru = nn.GRU(3, 4)
    gru.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    ref = reference(gru, x.transpose(0, 1).numpy())
    for q in ("reset_gate", "update_gate", "new_gate", "hidden"):
        np.testing.assert_allclose(
            trace[f"grucell.0.fwd.{q}"].detach().numpy(), ref[(0, 0, q)], atol=1e-5
        )
    assert trace.lengths.tolist() == [5, 5]
    assert trace.meta["exactness"]["grucell"]["max_abs_error_hidden"] <= 1e-5


class PeepholeCell(nn.Module):
    """A custom LSTM cell with peepholes; its gates are exposed through HookPoints."""

    def __init__(self, n_in, n):
        super().__init__()
        self.lin = nn.Linear(n_in + n, 4 * n)
        self.peep = nn.Parameter(torch.randn(3, n) * 0.1)
        self.input_gate = HookPoint()
        self.forget_gate = HookPoint()
        self.cell = HookPoint()
        self.hidden = HookPoint()

    def forward(self, x):
        b, t, _ = x.shape
        n = self.peep.shape[1]
        h = c = x.new_zeros(b, n)
        outs = []
        for s in range(t):
            zi, zf, zg, zo = self.lin(torch.cat([x[:, s], h], -1)).chunk(4, -1)
            i = self.input_gate(torch.sigmoid(zi + self.peep[0] * c))
            f = self.forget_gate(torch.sigmoid(zf + self.peep[1] * c))
            c = self.cell(f * c + i * torch.tanh(zg))
            h = self.hidden(torch.sigmoid(zo + self.peep[2] * c) * torch.tanh(c))
            outs.append(h)
        return torch.stack(outs, 1)


def test_hookpoints_record_and_edit_a_custom_cell():
    model = PeepholeCell(3, 4)
    x = torch.randn(2, 6, 3)
    trace = workbench.record(model, x)
    assert trace.names == ["input_gate", "forget_gate", "cell", "hidden"]
    assert trace["cell"].shape == (2, 6, 4)
    assert torch.allclose(trace["hidden"], trace.output)
    edited = workbench.intervene(model, x, edits={"cell": zero([1], start=2)})
    assert edited["cell"][:, 2:, 1].abs().max() == 0
    assert torch.allclose(edited["cell"][:, :2], trace["cell"][:, :2])
    assert not torch.allclose(edited.output[:, 3:], trace.output[:, 3:])


@pytest.mark.parametrize("quantity", ["cell", "hidden", "forget_gate", "cell_input"])
def test_intervention_continues_the_recurrence(quantity):
    m = nn.LSTM(3, 5, 2, batch_first=True).eval()
    x = torch.randn(2, 8, 3)
    units, start = [1, 3], 4

    def np_edit(v, t):
        v = v.copy()
        if t >= start:
            v[units] = 0.0
        return v

    edited = workbench.intervene(m, x, edits={f"lstm.0.fwd.{quantity}": zero(units, start=start)})
    ref = reference(m, x.numpy(), edits={(0, 0, quantity): np_edit})
    for q in ("cell", "hidden"):
        for layer in (0, 1):
            np.testing.assert_allclose(
                edited[f"lstm.{layer}.fwd.{q}"].numpy(), ref[(layer, 0, q)], atol=1e-5
            )
    np.testing.assert_allclose(edited.output[0].numpy(), ref["output"], atol=1e-5)
    # the autograd path agrees with the in-place path
    xg = x.clone().requires_grad_()
    edited_g = workbench.intervene(
        m, xg, edits={f"lstm.0.fwd.{quantity}": zero(units, start=start)}, grad=True
    )
    assert (edited_g.output[0] - edited.output[0]).abs().max() <= 1e-5


def test_edits_on_packed_batches_see_the_callers_order():
    m = nn.GRU(2, 3, batch_first=True).eval()
    x = torch.randn(3, 5, 2)
    packed = nn.utils.rnn.pack_padded_sequence(
        x, torch.tensor([2, 5, 3]), batch_first=True, enforce_sorted=False
    )

    def only_second(v, t):
        v = v.clone()
        v[1] = 0.5
        return v

    tr = workbench.intervene(m, packed, edits={"gru.0.fwd.hidden": only_second})
    h = tr["gru.0.fwd.hidden"]
    assert torch.all(h[1, :5] == 0.5)
    assert torch.all(h[0, 2:] == 0) and torch.all(h[2, 3:] == 0)  # padding stays zero
    assert not torch.any(h[0, :2] == 0.5)


def test_ready_made_edits():
    v = torch.ones(2, 4)
    assert set_to([0, 2], 3.0, start=1)(v, 0).equal(v)
    assert set_to([0, 2], 3.0, start=1)(v, 1)[:, [0, 2]].eq(3).all()
    assert clamp(1, high=0.5)(v, 0)[:, 1].eq(0.5).all()


def test_nothing_stays_attached_even_when_forward_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(2, 3)

        def forward(self, x):
            self.rnn(x)
            raise RuntimeError("boom")

    model = Boom().eval()
    with pytest.raises(RuntimeError, match="boom"):
        workbench.record(model, torch.randn(4, 1, 2))
    assert not model.rnn._forward_hooks and not model.rnn._forward_pre_hooks
    assert torch.overrides._get_current_function_mode_stack() == []
    assert set(vars(model.rnn)) == set(vars(nn.LSTM(2, 3)))  # no attribute written


def test_clear_errors():
    with pytest.raises(RecordingError, match="no module the recorder can see"):
        workbench.record(nn.Linear(2, 2), torch.randn(1, 2))
    with pytest.raises(RecordingError, match="matches nothing"):
        workbench.record(nn.LSTM(2, 3), torch.randn(4, 1, 2), names="decoder.*")
    lstm = nn.LSTM(2, 3, 2, dropout=0.5)  # training mode
    with pytest.raises(RecordingError, match="model.eval"):
        workbench.record(lstm, torch.randn(4, 1, 2))
    assert not lstm._forward_hooks
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D"):
        workbench.record(lstm.eval(), torch.randn(4, 1, 2, 2))
    assert not lstm._forward_hooks
    with pytest.raises(RecordingError, match="cannot edit"):
        workbench.intervene(lstm, torch.randn(4, 1, 2), edits={"lstm.5.fwd.cell": zero(0)})
    with pytest.raises(ValueError, match="shaped like its input"):
        workbench.intervene(
            lstm, torch.randn(4, 1, 2), edits={"lstm.0.fwd.cell": lambda v, t: v[:, :1]}
        )
    with pytest.raises(KeyError, match="was not recorded"):
        workbench.record(lstm, torch.randn(4, 1, 2))["lstm.0.fwd.celll"]


def test_trace_round_trips_without_pickle(tmp_path):
    model = Encoder().eval()
    trace = workbench.record(model, torch.randint(0, 10, (2, 7)))
    trace.tokens = [list("abcdefg"), list("<script>")[:7]]
    path = trace.save(tmp_path / "t.safetensors")
    assert path.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    back = workbench.Trace.load(path)
    assert back.names == trace.names
    for n in trace.names:
        assert torch.equal(back[n], trace[n].contiguous())
    assert torch.equal(back.output, trace.output)
    assert back.tokens == trace.tokens
    assert back.meta == trace.meta
    assert back.lengths.tolist() == [7, 7]
    with pytest.raises(FileNotFoundError):
        workbench.Trace.load(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a safetensors"):
        workbench.Trace.load(tmp_path / "bad.safetensors")


def test_import_workbench_is_light():
    heavy = "('torch', 'dash', 'shap', 'captum')"
    code = f"import sys, workbench; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_quickstart_demo_script_runs():
    script = Path(__file__).parent.parent / "demos" / "quickstart.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "round trip: True" in out.stdout
