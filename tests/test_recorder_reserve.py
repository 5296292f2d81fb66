"""Reading LSTM states out of cuDNN's reserve space, with a CPU stand-in for cuDNN.

The stand-in computes the LSTM from its equations and lays the states out as the H100 run of
``demos/gpu_check.py`` found cuDNN 9 does; the tests check the slicing, the equation check
that guards every call, and that a layout which fails the check is never used again.
``demos/gpu_check.py`` checks the real thing on a GPU.
"""

import pytest
import torch
from torch import nn

import workbench
from workbench.recorder import _cudnn, _reserve, _rnn
from workbench.recorder._kept import KeptWhileAlive
from workbench.recorder._names import LSTM_QUANTITIES


def _fake_cudnn_rnn(order="ifgo"):
    def run(x, w, stride, buf, h0, c0, mode, H, proj, L, bf, dropout, train, bidir, bs, ds):
        assert train and not bidir and proj == 0 and not bs
        T, B, _ = x.shape
        inp, hs, cs, gs, hn, cn = x, [], [], [], [], []
        for layer in range(L):
            w_ih, w_hh, b_ih, b_hh = w[layer * stride : layer * stride + 4]
            h, c = h0[layer], c0[layer]
            outs, cells, gates = [], [], []
            for t in range(T):
                z = inp[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
                i, f, g, o = z.chunk(4, -1)
                i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                c = f * c + i * g
                h = o * c.tanh()
                outs.append(h)
                cells.append(c)
                by = {"i": i, "f": f, "g": g, "o": o}
                gates.append(torch.stack([by[k] for k in order], 1))
            inp = torch.stack(outs)
            hs.append(inp)
            cs.append(torch.stack(cells))
            gs.append(torch.stack(gates))
            hn.append(h)
            cn.append(c)
        parts = [*hs[:-1], *cs, *gs, torch.zeros(64)]
        reserve = torch.cat([p.reshape(-1) for p in parts]).view(torch.uint8)
        return inp, torch.stack(hn), torch.stack(cn), reserve, buf

    return run


@pytest.fixture
def stand_in(monkeypatch):
    from torch.backends.cudnn import rnn as cudnn_rnn

    monkeypatch.setattr(_cudnn, "layer_weights", lambda params, *a: list(params))
    monkeypatch.setattr(cudnn_rnn, "get_cudnn_mode", lambda mode: 2)
    monkeypatch.setattr(_reserve, "_VERDICT", {})
    monkeypatch.setattr(_reserve, "_REASONS", [])

    def use(order="ifgo"):
        monkeypatch.setattr(torch, "_cudnn_rnn", _fake_cudnn_rnn(order), raising=False)

    return use


def _call(m, x, h0, c0):
    return _rnn.RnnCall(mode="lstm", x=x, batch_sizes=None, h0=h0, c0=c0,
                        params=list(m._flat_weights), has_biases=m.bias,
                        num_layers=m.num_layers, bidirectional=False)  # fmt: skip


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_reserve_states_match_the_unroll(stand_in, layers):
    stand_in()
    torch.manual_seed(layers)
    m = nn.LSTM(5, 7, layers).eval()
    x = torch.randn(9, 3, 5)
    h0, c0 = torch.randn(layers, 3, 7), torch.randn(layers, 3, 7)
    want = workbench.record(m, x, (h0, c0), strategy="unroll")
    wanted = {(layer, 0, q) for layer in range(layers) for q in LSTM_QUANTITIES}
    with torch.no_grad():
        out, h_n, c_n, rec, errors = _reserve.recover(_call(m, x, h0, c0), wanted)
    for (layer, _, q), v in rec.items():
        got = v.transpose(0, 1)
        assert (got - want[f"lstm.{layer}.fwd.{q}"]).abs().max().item() < 1e-5, (layer, q)
    assert len(rec) == len(wanted)
    assert errors["hidden"] < 1e-6 and errors["cell"] < 1e-5
    assert (out - want.output[0]).abs().max().item() < 1e-5
    assert _reserve._VERDICT == {_reserve._layout_key(_call(m, x, h0, c0)): True}


def test_a_small_selection_is_copied_out_of_the_reserve(stand_in):
    stand_in()
    m = nn.LSTM(4, 6, 2).eval()
    x, h0, c0 = torch.randn(8, 2, 4), torch.zeros(2, 2, 6), torch.zeros(2, 2, 6)
    with torch.no_grad():
        _, _, _, rec, _ = _reserve.recover(_call(m, x, h0, c0), {(0, 0, "cell")})
    (v,) = rec.values()
    assert v.is_contiguous() and v.untyped_storage().nbytes() == v.numel() * 4


@pytest.mark.parametrize("order", ["figo", "gfio"])
def test_a_layout_that_fails_the_checks_is_never_used_again(stand_in, order):
    # "figo": input and forget gates exchanged, the cell equation fails; "gfio": input gate
    # and cell input exchanged, which the equations cannot see (f c + i g is symmetric in
    # i and g) but the first step's gates from the weights do
    stand_in(order)
    torch.manual_seed(1)
    m = nn.LSTM(4, 6, 2).eval()
    x, h0, c0 = torch.randn(8, 2, 4), torch.randn(2, 2, 6), torch.randn(2, 2, 6)
    call = _call(m, x, h0, c0)
    with torch.no_grad():
        assert _reserve.recover(call, {(0, 0, "input_gate")}) is None
    assert _reserve._VERDICT[_reserve._layout_key(call)] is False
    assert ("equations" if order == "figo" else "first step") in _reserve._REASONS[-1]
    assert not _reserve.usable(call, grad=False)
    # the verdict is per shape: another batch size is judged on its own
    other = _call(m, torch.randn(8, 3, 4), torch.randn(2, 3, 6), torch.randn(2, 3, 6))
    assert _reserve._layout_key(other) not in _reserve._VERDICT


def test_check_none_trusts_a_layout_only_after_it_passed_once(stand_in, monkeypatch):
    stand_in()
    m = nn.LSTM(4, 6, 2).eval()
    x, h0, c0 = torch.randn(8, 2, 4), torch.zeros(2, 2, 6), torch.zeros(2, 2, 6)
    calls = []
    real = _reserve._equations
    monkeypatch.setattr(_reserve, "_equations", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        _reserve.recover(_call(m, x, h0, c0), {(1, 0, "cell")}, check=False)
        assert len(calls) == 2  # first time: checked although check=False
        _reserve.recover(_call(m, x, h0, c0), {(1, 0, "cell")}, check=False)
        assert len(calls) == 2
        _reserve.recover(_call(m, x, h0, c0), {(1, 0, "cell")}, check=True)
        assert len(calls) == 4


def test_kept_weight_copies_serve_inference_mode_and_normal_calls(monkeypatch):
    """Copies made under torch.inference_mode() are refreshed in place later, outside it."""
    from torch.backends.cudnn import rnn as cudnn_rnn

    monkeypatch.setattr(torch, "_cudnn_rnn_flatten_weight", lambda *a: None, raising=False)
    monkeypatch.setattr(cudnn_rnn, "get_cudnn_mode", lambda mode: 2)
    monkeypatch.setattr(_cudnn, "_CACHE", KeptWhileAlive(8))
    m = nn.LSTM(3, 4, 1)
    params = list(m._flat_weights)
    with torch.inference_mode():
        first = _cudnn.layer_weights(params, "lstm", 1, False, True)
    assert not any(w.is_inference() for w in first)
    with torch.no_grad():
        m.weight_hh_l0.mul_(2.0)
    again = _cudnn.layer_weights(params, "lstm", 1, False, True)
    assert again is first
    assert all(torch.equal(w, p) for w, p in zip(again, params, strict=True))
    with torch.inference_mode():
        assert _cudnn.layer_weights(params, "lstm", 1, False, True) is first
