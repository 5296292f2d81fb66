"""Memory over time: connectivity, state gradients, time scales, horizon (workbench.memory).

References: central finite differences in float64, closed forms (the output head's gradient,
an AR(1) process's autocorrelation), a planted-lag LSTM trained on delayed recall
(tests/fixtures/delayed_recall, trained by demos/train_delayed_recall.py) and the shipped
parens model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench import memory
from workbench.memory._time_scales import autocorrelation, efold_lag, state_of, tau_of
from workbench.models.architectures import CharLM

FIXTURE = Path(__file__).parent / "fixtures" / "delayed_recall"


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return CharLM(vocab=7, embed=3, hidden=4, layers=2).double().eval()


def _score_with(model, ids, target, pos, dim, eps):
    """Last-step log-prob of ``target`` with embedding ``[:, pos, dim]`` moved by ``eps``."""

    def hook(module, args, out):
        out = out.clone()
        out[:, pos, dim] += eps
        return out

    handle = model.embed.register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits, _ = model(ids)
    finally:
        handle.remove()
    return torch.log_softmax(logits[:, -1], -1).gather(1, target[:, None])[:, 0]


def test_gradient_norm_per_lag_matches_finite_differences(tiny):
    ids = torch.tensor([[2, 5, 3, 6, 1, 4], [6, 6, 2, 0, 3, 5]])
    target = torch.tensor([3, 1])
    grad = memory.input_gradients(tiny, ids, target)  # [batch, time, feature]
    eps = 1e-6
    fd = torch.zeros_like(grad)
    for pos in range(ids.shape[1]):
        for dim in range(3):
            up = _score_with(tiny, ids, target, pos, dim, eps)
            down = _score_with(tiny, ids, target, pos, dim, -eps)
            fd[:, pos, dim] = (up - down) / (2 * eps)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-9)
    windows = torch.cat([ids, target[:, None]], 1)
    curve = memory.connectivity(tiny, windows)["gradient"]
    by_lag = fd.norm(dim=-1).flip(1).mean(0).numpy()
    np.testing.assert_allclose(curve.mean, by_lag, rtol=1e-6)
    assert (curve.low <= curve.mean).all() and (curve.mean <= curve.high).all()


def test_state_gradient_at_lag_zero_is_the_heads_closed_form(tiny):
    ids = torch.tensor([[2, 5, 3, 6, 1], [6, 6, 2, 4, 3]])
    nxt = torch.tensor([3, 1])
    curves = memory.state_gradients(tiny, torch.cat([ids, nxt[:, None]], 1))
    assert set(curves) == {f"rnn.{k}.fwd.{q}" for k in (0, 1) for q in ("hidden", "cell")}
    with torch.no_grad():
        logits, _ = tiny(ids)
        p = torch.softmax(logits[:, -1], -1)
        p[torch.arange(2), nxt] -= 1  # dL/dlogits of the cross-entropy
        dh = p @ tiny.head.weight  # dL/dh_T of the top layer
    np.testing.assert_allclose(curves["rnn.1.fwd.hidden"].mean[0], dh.norm(dim=-1).mean(), 1e-6)


def test_state_gradient_matches_finite_differences_of_an_edit(tiny):
    from workbench import intervene

    ids = torch.tensor([[2, 5, 3, 6, 1, 4]])
    nxt = torch.tensor([3])
    curve = memory.state_gradients(tiny, torch.cat([ids, nxt[:, None]], 1))["rnn.0.fwd.cell"]
    step, eps = 2, 1e-6  # lag 3 of 6 steps
    fd = []
    for u in range(4):
        losses = []
        for sign in (1, -1):

            def edit(value, t, u=u, sign=sign):
                if t != step:
                    return value
                value = value.clone()
                value[:, u] += sign * eps
                return value

            out = intervene(tiny, ids, edits={"rnn.0.fwd.cell": edit}).output[0]
            losses.append(-torch.log_softmax(out[:, -1], -1)[0, 3])
        fd.append((losses[0] - losses[1]) / (2 * eps))
    np.testing.assert_allclose(curve.mean[5 - step], torch.stack(fd).norm(), rtol=1e-5)


@pytest.mark.skipif(not FIXTURE.exists(), reason="delayed-recall fixture not trained")
def test_connectivity_peaks_at_the_planted_lag():
    from workbench.models.checkpoint import load

    bundle = load(FIXTURE)
    lag, steps = bundle.config["lag"], bundle.config["steps"]
    assert bundle.metrics["recall_accuracy"] > 0.9
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(2, bundle.config["arch"]["vocab"], (200, steps), generator=gen)
    windows = torch.cat([ids, ids[:, -1 - lag, None]], 1)  # target: the symbol lag steps back
    curves = memory.connectivity(bundle, windows, lrp=True)
    for c in curves.values():
        assert int(np.argmax(c.mean)) == lag, c.mean
        others = np.delete(c.mean, lag)
        assert c.low[lag] > others.max()  # the band at the peak clears every other lag


def _matching_open_windows(bundle, width=20, n=150):
    """Windows ending where the next token is a nonzero digit (the depth) and no digit stands
    since the matching "(": the depth can only be read from the brackets."""
    from workbench import data

    wins, lags = [], []
    for d in data.corpus("parens", "test"):
        toks, ids = d.tokens, bundle.tokenizer.encode(d.tokens)
        for t in range(width, len(toks) - 1):
            if not (toks[t + 1].isdigit() and toks[t + 1] != "0"):
                continue
            depth, pos = 0, None
            for j in range(t, t - width, -1):
                if toks[j] == ")":
                    depth += 1
                elif toks[j] == "(":
                    if depth == 0:
                        pos = j
                        break
                    depth -= 1
            if pos is None or t - pos < 2 or any(c.isdigit() for c in toks[pos : t + 1]):
                continue
            wins.append(ids[t - width + 1 : t + 2])
            lags.append(t - pos)
        if len(wins) >= n:
            break
    return torch.tensor(wins), np.array(lags)


def test_matching_bracket_stands_out_on_the_parens_model():
    from workbench.memory._connectivity import input_gradients
    from workbench.models.checkpoint import load

    bundle = load("parens")
    w, lags = _matching_open_windows(bundle)
    g = input_gradients(bundle.model, w[:, :-1], w[:, -1]).norm(dim=-1).flip(1).numpy()
    far = g[:, 2:]  # lags >= 2: the last steps' direct path left out
    at = g[np.arange(len(g)), lags]
    share_below = (far < at[:, None]).mean(1)  # 0.5 for a position picked at random
    rng = np.random.default_rng(0)
    control = far[np.arange(len(g)), rng.integers(0, far.shape[1], len(g))]
    assert share_below.mean() > 0.8
    assert (far < control[:, None]).mean(1).mean() < 0.65


def test_horizon_and_rate_on_a_geometric_curve():
    mean = 0.8 ** np.arange(40.0)
    assert memory.horizon(mean, 0.1) == int(np.ceil(np.log(0.1) / np.log(0.8)))
    assert memory.horizon(np.ones(5), 0.1) is None
    assert memory.rate(mean) == pytest.approx(0.8)
    peaked = np.r_[0.1, 0.5, 1.0, 0.5, 0.05]
    assert memory.horizon(peaked, 0.1) == 4


def test_bootstrap_band_agrees_with_the_standard_error():
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 0.5, (400, 3))
    se = memory.summarize("x", values, "se")
    boot = memory.summarize("x", values, "bootstrap", boot=300)
    np.testing.assert_allclose(boot.high - boot.low, se.high - se.low, rtol=0.2)
    again = memory.Curve.from_json(json.loads(json.dumps(se.to_json())))
    np.testing.assert_allclose(again.mean, se.mean)


def test_time_constants_from_gates_and_autocorrelation():
    np.testing.assert_allclose(tau_of(np.array([np.exp(-1 / 5), np.exp(-1 / 50)])), [5, 50])
    assert tau_of(np.array([1.0]))[0] == np.inf
    assert state_of("rnn.1.fwd.update_gate") == "rnn.1.fwd.hidden"
    rng = np.random.default_rng(1)
    rho, n = np.array([0.9, 0.5]), 40_000
    x = np.zeros((n, 2))
    for t in range(1, n):
        x[t] = rho * x[t - 1] + rng.normal(size=2)
    acf = autocorrelation(x, [0, n // 2, n], max_lag=10)
    np.testing.assert_allclose(acf[3], rho**3, atol=0.03)
    np.testing.assert_allclose(efold_lag(acf), -1 / np.log(rho), rtol=0.15)


def test_autocorrelation_leaves_out_pairs_across_documents():
    x = np.array([[1.0], [2.0], [3.0], [10.0], [20.0]])
    acf = autocorrelation(x, [0, 3, 5], max_lag=2)
    c = x[:, 0] - x.mean()
    var = (c * c).mean()
    lag1 = np.mean([c[0] * c[1], c[1] * c[2], c[3] * c[4]]) / var
    lag2 = c[0] * c[2] / var
    np.testing.assert_allclose(acf[1:, 0], [lag1, lag2])


@pytest.fixture(scope="module")
def parens_store(tmp_path_factory):
    from workbench import StateStore, data
    from workbench.models.checkpoint import load

    docs = data.corpus("parens", "test")[:40]
    path = tmp_path_factory.mktemp("memstore") / "s"
    return StateStore.build(load("parens"), docs, path, progress=False)


def test_time_scales_of_a_store_match_numpy(parens_store):
    gate = memory.keep_gates(parens_store.names)[0]
    ts = memory.time_scales(parens_store, gate, block_tokens=500)
    f = np.asarray(parens_store.states(gate).rows(0, parens_store.n_tokens), dtype=np.float64)
    np.testing.assert_allclose(ts.mean_gate, f.mean(0), rtol=1e-6)
    np.testing.assert_allclose(ts.tau, -1 / np.log(f.mean(0)), rtol=1e-6)
    assert ts.tau_blocks.shape == (-(-parens_store.n_tokens // 500), f.shape[1])
    assert ts.tau[ts.ranked(1)[0]] == ts.tau.max()


def test_windows_from_a_store_are_document_slices(parens_store):
    w = memory.from_store(parens_store, 30, 12, seed=3)
    ids = parens_store._column("tokens/token_id")
    b = parens_store.boundaries
    for row in w.numpy():
        hits = [
            s
            for d in range(len(b) - 1)
            for s in range(b[d], b[d + 1] - 12)
            if (ids[s : s + 13] == row).all()
        ]
        assert hits


def test_user_errors_name_the_fix(tiny):
    with pytest.raises(memory.MeasureError, match="windows must be between"):
        memory.from_sequences([[1, 2, 3] * 100], memory.MAX_WINDOWS + 1, 4)
    with pytest.raises(memory.MeasureError, match="ask for fewer steps"):
        memory.from_sequences([[1, 2, 3]], 5, 10)
    with pytest.raises(memory.MeasureError, match="score must be"):
        memory.connectivity(tiny, torch.ones(2, 4, dtype=torch.long), score="prob")


def test_memory_section_in_a_report_is_escaped(tmp_path):
    from workbench.memory._time_scales import TimeScales
    from workbench.reports import memory_section, report

    rng = np.random.default_rng(0)
    curve = memory.summarize(
        "input gradient norm", 0.7 ** np.arange(20.0) + rng.uniform(0, 1e-3, (6, 20))
    )
    f = rng.uniform(0.5, 0.99, (3, 5))
    ts = TimeScales("rnn.0.fwd.forget_gate", tau_of(f.mean(0)), tau_of(f), f.mean(0), 300, 100)
    section = memory_section({"<script>x</script>": curve}, [ts])
    assert section.table["rows"][0][4] == str(curve.horizon(0.1))
    out = report([section], tmp_path / "m.html").path.read_text()
    assert "<script>x</script>" not in out and "Memory over time" in out


def test_app_requests_are_capped_with_a_note():
    from workbench.app import _memory_logic as logic

    windows, steps, note = logic.bounded_request(100_000, 10)
    assert (windows, steps) == (logic.APP_MAX_WINDOWS, 10) and "capped at 500" in note
    assert logic.bounded_request(50, 64)[2] == ""
    with pytest.raises(logic.MemoryViewError, match="windows must be a number"):
        logic.bounded_request(None, 10)
