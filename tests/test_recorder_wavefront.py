"""The GPU wavefront schedule of ``strategy="recover"``, run on the CPU against the reference.

On a GPU the layers' time chunks run on CUDA streams of their own; here the same schedule runs
in order (``configure(wavefront_cpu=True)``), which checks the chunking, the states handed from
chunk to chunk and the recovery per layer. ``demos/gpu_check.py`` checks the streams on CUDA.
"""

import numpy as np
import pytest
import torch
from reference import run as reference
from torch import nn

import workbench
from workbench.config import configure
from workbench.recorder import _wavefront


@pytest.fixture
def wavefront_on_cpu(monkeypatch):
    on = configure(wavefront_cpu=True)
    on.__enter__()
    calls = []
    real = _wavefront.recover

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_wavefront, "recover", spy)
    yield calls
    on.__exit__(None, None, None)


CASES = [
    ("lstm", dict(bias=True), 3, 40, True),
    ("lstm", dict(bias=False), 2, 37, False),
    ("lstm", dict(bias=True, proj_size=3), 2, 23, True),
    ("gru", dict(bias=True), 3, 33, True),
    ("gru", dict(bias=False), 2, 16, False),
]


@pytest.mark.parametrize(("mode", "kw", "layers", "steps", "init"), CASES)
def test_wavefront_matches_reference(wavefront_on_cpu, mode, kw, layers, steps, init):
    torch.manual_seed(steps)
    cls = nn.LSTM if mode == "lstm" else nn.GRU
    m = cls(5, 6, layers, **kw).eval()
    x = torch.randn(3, steps, 5)
    P = kw.get("proj_size") or 6
    h0 = torch.randn(layers, 3, P) if init else None
    c0 = torch.randn(layers, 3, 6) if init else None
    args = (x.transpose(0, 1),)
    if init:
        args += ((h0, c0) if mode == "lstm" else h0,)
    trace = workbench.record(m, *args, strategy="recover", check="full")
    assert wavefront_on_cpu, "the wavefront schedule did not run"
    ref = reference(m, x.numpy(), None, None if h0 is None else h0.numpy(),
                    None if c0 is None else c0.numpy())  # fmt: skip
    for (layer, _, q), v in ((k, v) for k, v in ref.items() if k != "output"):
        got = trace[f"{mode}.{layer}.fwd.{q}"].double().numpy()
        np.testing.assert_allclose(got, v, atol=1e-5, rtol=0, err_msg=f"{layer} {q}")
    with torch.no_grad():
        plain = m(*args)
    for a, b in zip(trace.output, plain, strict=True):
        if isinstance(a, tuple):
            for aa, bb in zip(a, b, strict=True):
                assert (aa - bb).abs().max().item() <= 1e-5
        else:
            assert (a - b).abs().max().item() <= 1e-5
    ex = trace.meta["exactness"][mode]
    assert ex["max_abs_error_hidden"] <= 1e-5
    assert ex.get("max_abs_error_cell", 0.0) <= 1e-5


def test_wavefront_records_a_lower_layer_only(wavefront_on_cpu):
    torch.manual_seed(0)
    m = nn.LSTM(4, 5, 3).eval()
    x = torch.randn(30, 2, 4)
    part = workbench.record(m, x, strategy="recover", names="lstm.0.*")
    whole = workbench.record(m, x, strategy="unroll")
    assert set(part.names) == {n for n in whole.names if n.startswith("lstm.0.")}
    for n in part.names:
        assert (part[n] - whole[n]).abs().max().item() <= 1e-5
    assert (part.output[0] - whole.output[0]).abs().max().item() <= 1e-5
    assert (part.output[1][1] - whole.output[1][1]).abs().max().item() <= 1e-5


def test_chunk_bounds_cover_every_step():
    for T in range(1, 200):
        b = _wavefront.bounds(T)
        assert b[0][0] == 0 and b[-1][1] == T
        assert all(s1 == e0 for (_, e0), (s1, _) in zip(b, b[1:], strict=False))
        assert all(e - s >= min(T, _wavefront._MIN_STEPS) for s, e in b)


def test_wavefront_skips_what_it_cannot_schedule(wavefront_on_cpu):
    torch.manual_seed(0)
    for m, T in ((nn.LSTM(4, 5, 2, bidirectional=True), 30), (nn.LSTM(4, 5, 1), 30),
                 (nn.LSTM(4, 5, 2), 10)):  # fmt: skip
        workbench.record(m.eval(), torch.randn(T, 2, 4), strategy="recover")
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(30, 2, 4), [30, 20])
    workbench.record(nn.LSTM(4, 5, 2).eval(), packed, strategy="recover")
    assert not wavefront_on_cpu
