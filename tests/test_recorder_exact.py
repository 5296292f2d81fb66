"""Recorded quantities against a slow reference straight from the PyTorch equations."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import draw_run_settings
from reference import run as reference
from torch import nn

import workbench

DIRS = ("fwd", "bwd")


@st.composite
def configs(draw):
    mode = draw(st.sampled_from(["lstm", "gru"]))
    hidden = draw(st.integers(1, 6))
    proj = draw(st.integers(0, hidden - 1)) if mode == "lstm" and hidden > 1 else 0
    return {"mode": mode, "proj": proj, **draw_run_settings(draw, hidden)}


def build(cfg):
    torch.manual_seed(cfg["seed"])
    cls = nn.LSTM if cfg["mode"] == "lstm" else nn.GRU
    kw = {"proj_size": cfg["proj"]} if cfg["proj"] else {}
    m = cls(
        cfg["input_size"],
        cfg["hidden"],
        cfg["layers"],
        bias=cfg["bias"],
        batch_first=cfg["batch_first"],
        bidirectional=cfg["bidirectional"],
        **kw,
    ).eval()
    x = torch.randn(cfg["batch"], cfg["time"], cfg["input_size"])
    D = 2 if cfg["bidirectional"] else 1
    hout = cfg["proj"] or cfg["hidden"]
    h0 = torch.randn(cfg["layers"] * D, cfg["batch"], hout) if cfg["init_state"] else None
    c0 = torch.randn(cfg["layers"] * D, cfg["batch"], cfg["hidden"]) if cfg["init_state"] else None
    return m, x, h0, c0


def call_args(cfg, m, x, h0, c0):
    lengths = cfg["lengths"] if cfg["packed"] else None
    inp = x if cfg["batch_first"] else x.transpose(0, 1)
    if lengths is not None:
        inp = nn.utils.rnn.pack_padded_sequence(
            inp, torch.tensor(lengths), batch_first=cfg["batch_first"], enforce_sorted=False
        )
    if h0 is None:
        return (inp,), lengths
    return (inp, (h0, c0) if cfg["mode"] == "lstm" else h0), lengths


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_recorded_quantities_match_reference(cfg):
    m, x, h0, c0 = build(cfg)
    args, lengths = call_args(cfg, m, x, h0, c0)
    expected_out = m(*args)
    trace = workbench.record(m, *args, strategy=cfg["strategy"], check="full", grad=cfg["grad"])
    ref = reference(
        m,
        x.numpy(),
        lengths,
        None if h0 is None else h0.numpy(),
        None if c0 is None else c0.numpy(),
    )
    root = cfg["mode"]
    for (layer, d, q), v in ((k, v) for k, v in ref.items() if k != "output"):
        got = trace[f"{root}.{layer}.{DIRS[d]}.{q}"]
        time = max(lengths) if lengths else cfg["time"]  # a packed batch is as long as its longest
        assert got.shape == (v.shape[0], time, v.shape[2])
        assert np.all(v[:, time:] == 0)
        np.testing.assert_allclose(got.detach().double().numpy(), v[:, :time], atol=1e-5, rtol=0)
    # the model's output is the module's own, to float32 precision
    out, exp = trace.output[0], expected_out[0]
    if cfg["packed"]:
        out, exp = out.data, exp.data
    assert (out - exp).abs().max().item() <= 1e-5
    # exactness is measured against the fused kernel and written into the trace
    ex = trace.meta["exactness"][root]
    assert ex["checked"] == "full"
    assert ex["max_abs_error_hidden"] <= 1e-5
    assert ex.get("max_abs_error_cell", 0.0) <= 1e-5
    # lengths and zero padding
    expect_len = lengths or [cfg["time"]] * cfg["batch"]
    assert trace.lengths.tolist() == list(expect_len)
    for name in trace.names:
        assert trace[name][~trace.mask].abs().max().item() == 0 if (~trace.mask).any() else True


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_float64_exact_to_1e10(mode):
    cls = nn.LSTM if mode == "lstm" else nn.GRU
    m = cls(3, 4, 2, bidirectional=True).double().eval()
    x = torch.randn(5, 2, 3, dtype=torch.double)
    trace = workbench.record(m, x, check="full")
    ref = reference(m, x.transpose(0, 1).numpy())
    for (layer, d, q), v in ((k, v) for k, v in ref.items() if k != "output"):
        got = trace[f"{mode}.{layer}.{DIRS[d]}.{q}"].numpy()
        np.testing.assert_allclose(got, v, atol=1e-10, rtol=0)
    assert trace.meta["exactness"][mode]["max_abs_error_hidden"] <= 1e-10


def test_hidden_recomputed_from_gates_and_cells():
    m = nn.LSTM(5, 7, 2).eval()
    x = torch.randn(9, 3, 5)
    out, (h_n, c_n) = m(x)
    tr = workbench.record(m, x)
    for layer in range(2):
        o, c = tr[f"lstm.{layer}.fwd.output_gate"], tr[f"lstm.{layer}.fwd.cell"]
        h = o * torch.tanh(c)
        assert (h - tr[f"lstm.{layer}.fwd.hidden"]).abs().max() <= 1e-5
        assert (c[:, -1] - c_n[layer]).abs().max() <= 1e-5
        assert (h[:, -1] - h_n[layer]).abs().max() <= 1e-5
    assert (tr["lstm.1.fwd.hidden"].transpose(0, 1) - out).abs().max() <= 1e-5


def test_gradients_flow_from_recorded_quantity_to_input():
    m = nn.GRU(3, 4, batch_first=True).eval()
    x = torch.randn(2, 5, 3, requires_grad=True)
    tr = workbench.record(m, x, grad=True)
    tr["gru.0.fwd.update_gate"][0, 3, 1].backward()
    assert x.grad is not None
    assert x.grad[0, :4].abs().sum() > 0
    assert x.grad[0, 4:].abs().sum() == 0  # the future does not influence step 3
    assert x.grad[1].abs().sum() == 0


def test_weight_cache_never_serves_stale_weights():
    x = torch.randn(4, 2, 3)
    for _ in range(20):  # new modules of one shape may reuse the freed memory
        m = nn.LSTM(3, 4).eval()
        assert (workbench.record(m, x).output[0] - m(x)[0]).abs().max() <= 1e-5
    with torch.no_grad():
        m.weight_hh_l0.mul_(2)  # an in-place update bumps the version
    assert (workbench.record(m, x).output[0] - m(x)[0]).abs().max() <= 1e-5
