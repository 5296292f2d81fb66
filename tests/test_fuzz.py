"""Fuzzing: the recorder on 1,000 random LSTM/GRU set-ups, and the text input path.

Recorder: every configuration drawn by ``test_recorder_exact.configs`` (LSTM/GRU, 1-3
layers, uni/bidirectional, ``batch_first``, bias, projections, packed uneven lengths, initial
states, both strategies, with and without autograd), compared with the float64 reference of
``tests/reference.py`` to 1e-5. Sizes stay small (hidden <= 6, time <= 6): the reference is
numpy one step at a time, and 1,000 examples take about a minute on two cores.

Text: random unicode (control characters, combining marks, surrogates, NUL, very long
"words", whitespace) through the shipped models' ``tokenize`` / ``encode`` and then
``workbench.record`` and ``workbench.explain``: a clear ``ValueError`` for text with no token,
otherwise finite, well-shaped output. Never a crash.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import run as reference
from test_recorder_exact import DIRS, build, call_args, configs

import workbench

RECORDER_EXAMPLES = 1_000


def check_recording(cfg) -> None:
    """Record one configuration and compare every quantity with the reference."""
    m, x, h0, c0 = build(cfg)
    args, lengths = call_args(cfg, m, x, h0, c0)
    with torch.no_grad():
        expected = m(*args)
    trace = workbench.record(m, *args, strategy=cfg["strategy"], check="full", grad=cfg["grad"])
    ref = reference(m, x.numpy(), lengths, None if h0 is None else h0.numpy(),
                    None if c0 is None else c0.numpy())  # fmt: skip
    root = cfg["mode"]
    time = max(lengths) if lengths else cfg["time"]
    names = set()
    for (layer, d, q), v in ((k, v) for k, v in ref.items() if k != "output"):
        name = f"{root}.{layer}.{DIRS[d]}.{q}"
        names.add(name)
        got = trace[name].detach().double().numpy()
        assert got.shape == (v.shape[0], time, v.shape[2]), name
        np.testing.assert_allclose(got, v[:, :time], atol=1e-5, rtol=0, err_msg=name)
    assert names == set(trace.names)
    out, exp = trace.output[0], expected[0]
    if cfg["packed"]:
        out, exp = out.data, exp.data
    assert (out - exp).abs().max().item() <= 1e-5
    assert trace.lengths.tolist() == list(lengths or [cfg["time"]] * cfg["batch"])
    pad = ~trace.mask
    for name in trace.names:
        assert not pad.any() or trace[name][pad].abs().max().item() == 0


@settings(
    max_examples=RECORDER_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(configs())
def test_recorder_exact_on_1000_random_configurations(cfg):
    check_recording(cfg)


# ----------------------------------------------------------------------------- text input

_MODELS: dict = {}


def _bundle(name):
    if name not in _MODELS:
        _MODELS[name] = workbench.load(name)
    return _MODELS[name]


_CHARS = st.characters(codec=None, categories=None)  # every code point, surrogates included
texts = st.one_of(
    st.text(_CHARS, max_size=40),
    st.text(st.sampled_from(list(" \t\n\r\x00\x0b\x0c\u200b\u00a0\u3000")), max_size=20),
    st.builds(lambda c, n: c * n, st.text(_CHARS, min_size=1, max_size=3), st.integers(1, 3000)),
    st.lists(st.text(_CHARS, max_size=12), max_size=30).map(" ".join),
)


def _run_text(name: str, text: str, method: str) -> None:
    b = _bundle(name)
    tokens = b.tokenize(text)
    if not tokens:
        with pytest.raises(ValueError, match="empty"):
            b.encode(text)
        return
    ids, lengths = b.encode(text)
    assert ids.shape == (1, len(tokens)) and lengths.tolist() == [len(tokens)]
    assert 0 <= int(ids.min()) and int(ids.max()) < len(b.tokenizer)
    window = ids[:, :64]  # the model cost stays bounded; the path is the same
    kw = {"lengths": lengths.clamp(max=64)} if b.kind == "classifier" else {}
    with torch.no_grad():
        trace = workbench.record(b.model, window, **kw)
    assert trace.names and all(torch.isfinite(trace[n]).all() for n in trace.names)
    target = None if b.kind == "classifier" else workbench.Target(
        trace.names[-1], unit=0, step=window.shape[1] - 1
    )  # fmt: skip
    e = workbench.explain(b.model, window, target, method, **kw)
    assert e.attributions.shape == window.shape
    assert torch.isfinite(e.attributions).all()


@pytest.mark.parametrize("name", ["sentiment", "parens", "python"])
def test_text_input_never_crashes(name):
    # occlusion runs the model once per token: only on the two small models
    methods = ["saliency"] if name == "python" else ["saliency", "occlusion"]

    @settings(max_examples=25 if name == "python" else 40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(texts, st.sampled_from(methods))
    def run(text, method):
        _run_text(name, text, method)

    run()


@pytest.mark.parametrize("name", ["sentiment", "python"])
@pytest.mark.parametrize(
    "text",
    ["", " ", "\x00", "\ud800", "\U0010ffff" * 3, "a" * 50_000, "é\u0301" * 10, "\r\n\t"],
)
def test_text_edge_cases(name, text):
    _run_text(name, text, "saliency")
