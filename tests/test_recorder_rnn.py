"""nn.RNN and nn.RNNCell (tanh, relu) against a float64 reference of the Elman equations."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import draw_run_settings, rnn_step
from reference import run as reference
from torch import nn

import workbench

DIRS = ("fwd", "bwd")


@st.composite
def configs(draw):
    nonlinearity = draw(st.sampled_from(["tanh", "relu"]))
    return {"nonlinearity": nonlinearity, **draw_run_settings(draw, draw(st.integers(1, 6)))}


def build(cfg):
    torch.manual_seed(cfg["seed"])
    m = nn.RNN(
        cfg["input_size"], cfg["hidden"], cfg["layers"], nonlinearity=cfg["nonlinearity"],
        bias=cfg["bias"], batch_first=cfg["batch_first"], bidirectional=cfg["bidirectional"],
    ).eval()  # fmt: skip
    x = torch.randn(cfg["batch"], cfg["time"], cfg["input_size"])
    D = 2 if cfg["bidirectional"] else 1
    h0 = torch.randn(cfg["layers"] * D, cfg["batch"], cfg["hidden"]) if cfg["init_state"] else None
    return m, x, h0


def call_args(cfg, x, h0):
    lengths = cfg["lengths"] if cfg["packed"] else None
    inp = x if cfg["batch_first"] else x.transpose(0, 1)
    if lengths is not None:
        inp = nn.utils.rnn.pack_padded_sequence(
            inp, torch.tensor(lengths), batch_first=cfg["batch_first"], enforce_sorted=False
        )
    return ((inp,) if h0 is None else (inp, h0)), lengths


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_rnn_matches_reference(cfg):
    m, x, h0 = build(cfg)
    args, lengths = call_args(cfg, x, h0)
    expected = m(*args)
    trace = workbench.record(m, *args, strategy=cfg["strategy"], check="full", grad=cfg["grad"])
    ref = reference(m, x.numpy(), lengths, None if h0 is None else h0.numpy())
    time = max(lengths) if lengths else cfg["time"]
    keys = [k for k in ref if k != "output"]
    assert {f"rnn.{la}.{DIRS[d]}.{q}" for la, d, q in keys} == set(trace.names)
    for layer, d, q in keys:
        got = trace[f"rnn.{layer}.{DIRS[d]}.{q}"]
        v = ref[(layer, d, q)]
        assert got.shape == (v.shape[0], time, v.shape[2])
        np.testing.assert_allclose(got.detach().double().numpy(), v[:, :time], atol=1e-5, rtol=0)
    out, exp = trace.output[0], expected[0]
    if cfg["packed"]:
        out, exp = out.data, exp.data
    assert (out - exp).abs().max().item() <= 1e-5
    assert (trace.output[1] - expected[1]).abs().max().item() <= 1e-5
    ex = trace.meta["exactness"]["rnn"]
    assert ex["checked"] == "full" and ex["max_abs_error_hidden"] <= 1e-5
    assert trace.lengths.tolist() == list(lengths or [cfg["time"]] * cfg["batch"])
    if (~trace.mask).any():
        for name in trace.names:
            assert trace[name][~trace.mask].abs().max().item() == 0


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("strategy", ["unroll", "recover"])
def test_rnn_float64_exact_to_1e10(nonlinearity, strategy):
    m = nn.RNN(3, 4, 2, nonlinearity=nonlinearity, bidirectional=True).double().eval()
    x = torch.randn(5, 2, 3, dtype=torch.double)
    trace = workbench.record(m, x, check="full", strategy=strategy)
    ref = reference(m, x.transpose(0, 1).numpy())
    for (layer, d, q), v in ((k, v) for k, v in ref.items() if k != "output"):
        np.testing.assert_allclose(trace[f"rnn.{layer}.{DIRS[d]}.{q}"].numpy(), v, atol=1e-10)
    assert trace.meta["exactness"]["rnn"]["max_abs_error_hidden"] <= 1e-10


def _cell_weights(cell):
    def get(n):
        value = getattr(cell, n)
        return None if value is None else value.detach().double().numpy()

    return {n: get(n) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


class CellLoop(nn.Module):
    """An nn.RNNCell called step by step, its states projected."""

    def __init__(self, nonlinearity: str, bias: bool) -> None:
        super().__init__()
        self.cell = nn.RNNCell(3, 5, bias=bias, nonlinearity=nonlinearity)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        h, outs = None, []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outs.append(self.head(h))
        return torch.stack(outs, 1)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_rnn_cell_matches_reference(nonlinearity, bias, dtype, atol):
    torch.manual_seed(1)
    m = CellLoop(nonlinearity, bias).to(dtype).eval()
    x = torch.randn(3, 6, 3, dtype=dtype)
    trace = workbench.record(m, x, check="full")
    assert trace.names == ["cell.0.fwd.pre_activation", "cell.0.fwd.hidden"]
    assert (trace.output - m(x)).abs().max().item() <= atol
    w = _cell_weights(m.cell)
    for b in range(3):
        h = np.zeros(5)
        for t in range(6):
            h, q = rnn_step(w, x[b, t].double().numpy(), h, nonlinearity)
            for name, v in q.items():
                got = trace[f"cell.0.fwd.{name}"][b, t].double().numpy()
                np.testing.assert_allclose(got, v, atol=atol, rtol=0)
    assert trace.meta["exactness"]["cell"]["max_abs_error_hidden"] <= atol


@pytest.mark.parametrize("quantity", ["pre_activation", "hidden"])
def test_rnn_edits_continue_the_recurrence(quantity):
    torch.manual_seed(2)
    m = nn.RNN(3, 4, 2, batch_first=True).double().eval()
    x = torch.randn(2, 6, 3, dtype=torch.double)

    def edit(v, step):  # torch and numpy alike: units 1 and 2 zeroed from step 3 on
        if step >= 3:
            v = v * 1.0
            v[..., 1:3] = 0
        return v

    trace = workbench.intervene(m, x, edits={f"rnn.0.fwd.{quantity}": edit})
    ref = reference(m, x.numpy(), edits={(0, 0, quantity): edit})
    for (layer, _, q), v in ((k, v) for k, v in ref.items() if k != "output"):
        np.testing.assert_allclose(trace[f"rnn.{layer}.fwd.{q}"].numpy(), v, atol=1e-10)
    np.testing.assert_allclose(trace.output[0].numpy(), ref["output"], atol=1e-10)
    assert (trace.output[0] - m(x)[0]).abs().max() > 1e-3  # the edit changed the output


def test_rnn_gradients_reach_the_input():
    m = nn.RNN(3, 4, batch_first=True, nonlinearity="tanh").eval()
    x = torch.randn(2, 5, 3, requires_grad=True)
    trace = workbench.record(m, x, grad=True)
    trace["rnn.0.fwd.pre_activation"][0, 2].sum().backward()
    assert x.grad[0, :3].abs().sum() > 0
    assert x.grad[0, 3:].abs().sum() == 0 and x.grad[1].abs().sum() == 0
