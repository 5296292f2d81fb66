"""Contract tests generated from the method registry, plus API and bad-input checks."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from explain_models import Classifier, Forecaster, batch
from torch import nn

import workbench
from workbench.explainers import METHODS, ExplainError, Explanation, Target, explain, registry

FAST = {
    "integrated_gradients": {"n_steps": 16},
    "shap": {"max_evals": 60},
    "lime": {"n_samples": 60},
}
ALL = sorted(METHODS)


def _clf():
    torch.manual_seed(0)
    return Classifier("lstm", bidirectional=True, layers=1).eval()


def test_registry_names():
    assert set(registry()) == {
        "integrated_gradients",
        "saliency",
        "input_x_gradient",
        "occlusion",
        "lrp",
        "shap",
        "lime",
    }
    assert callable(workbench.explain)  # a plain function (tests/test_public_api.py)
    model = _clf()
    ids, lengths = batch()
    e = workbench.explain(model, ids, 1, method="saliency", lengths=lengths)
    assert isinstance(e, Explanation)
    assert workbench.Explanation is Explanation
    assert workbench.Target is Target


@pytest.mark.parametrize("method", ALL)
def test_shapes_and_padding(method):
    model = _clf()
    ids, lengths = batch()
    e = explain(model, ids, 1, method, lengths=lengths, **FAST.get(method, {}))
    assert isinstance(e, Explanation) and e.method == method
    assert e.attributions.shape == ids.shape
    assert e.output.shape == (4,)
    with torch.no_grad():
        logits = model(ids, lengths)[:, 1]
    assert torch.allclose(e.output.double(), logits.double(), atol=1e-5)
    for row, n in enumerate(lengths.tolist()):
        assert e.attributions[row, n:].abs().sum() == 0
    assert torch.isfinite(e.attributions).all()
    assert e.attributions[0].abs().sum() > 0
    cls = METHODS[method]
    if cls.resolves_features:
        assert e.feature_attributions.shape == (*ids.shape, model.emb.embedding_dim)
    if cls.has_delta:
        assert e.delta.shape == (4,)
    assert (e.target == 1).all()
    assert set(e.settings) == set(cls.setting_names())


@pytest.mark.parametrize("method", ALL)
def test_deterministic(method):
    model = _clf()
    ids, lengths = batch()
    a = explain(model, ids, 0, method, lengths=lengths, **FAST.get(method, {}))
    b = explain(model, ids, 0, method, lengths=lengths, **FAST.get(method, {}))
    assert torch.equal(a.attributions, b.attributions)


@pytest.mark.parametrize("method", ALL)
def test_float_inputs(method):
    torch.manual_seed(0)
    model = Forecaster().eval()
    x = torch.randn(2, 10, 2)
    e = explain(model, x, 2, method, **FAST.get(method, {}))
    assert e.attributions.shape == (2, 10)
    assert torch.allclose(e.output.double(), model(x)[:, 2].double().detach(), atol=1e-5)


@pytest.mark.parametrize("method", ALL)
def test_bad_inputs(method):
    model = _clf()
    ids, lengths = batch()
    kw = FAST.get(method, {})
    with pytest.raises(ExplainError, match="out of range"):
        explain(model, ids, 3, method, lengths=lengths, **kw)
    with pytest.raises(ExplainError, match="empty"):
        explain(model, ids[:, :0], 0, method, lengths=lengths, **kw)
    with pytest.raises(ExplainError, match="no nn.Embedding"):
        explain(Forecaster().eval(), ids, 0, method, **kw)
    x = torch.randn(2, 5, 2)
    x[0, 1, 1] = float("nan")
    with pytest.raises(ExplainError, match="NaN"):
        explain(Forecaster().eval(), x, 0, method, **kw)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ExplainError, match="integrated_gradients.*lime|lime.*lrp"):
        explain(_clf(), *batch()[:1], 0, "deeplift")


def test_target_none_is_predicted_class_and_per_row_targets():
    model = _clf()
    ids, lengths = batch()
    e = explain(model, ids, None, "saliency", lengths=lengths)
    assert torch.equal(e.target, model(ids, lengths).argmax(-1))
    e2 = explain(model, ids, [0, 1, 2, 0], "input_x_gradient", lengths=lengths)
    assert e2.target.tolist() == [0, 1, 2, 0]
    with pytest.raises(ExplainError, match="targets given"):
        explain(model, ids, [0, 1], "saliency", lengths=lengths)


def test_embedding_path_and_ambiguity():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Embedding(10, 4)
            self.b = nn.Embedding(10, 4)
            self.rnn = nn.GRU(4, 3, batch_first=True)
            self.fc = nn.Linear(3, 2)

        def forward(self, ids):
            out, _ = self.rnn(self.a(ids) + self.b(ids))
            return self.fc(out[:, -1])

    ids = torch.randint(0, 10, (2, 4))
    with pytest.raises(ExplainError, match="several nn.Embedding"):
        explain(Two(), ids, 0, "saliency")
    e = explain(Two(), ids, 0, "saliency", embedding="a")
    assert e.feature_attributions.shape == (2, 4, 4)
    with pytest.raises(ExplainError, match="names no module"):
        explain(Two(), ids, 0, "saliency", embedding="nope")


def test_recorded_target():
    model = _clf()
    ids, lengths = batch()
    t = Target("rnn.0.fwd.cell", unit=3, step=-1)
    e = explain(model, ids, t, "integrated_gradients", lengths=lengths, n_steps=32)
    trace = workbench.record(model, ids, lengths)
    cell = trace["rnn.0.fwd.cell"]
    expected = cell[torch.arange(4), lengths - 1, 3]
    assert torch.allclose(e.output.float(), expected, atol=1e-5)
    assert e.target == t
    # completeness: attributions sum to F(x) - F(baseline)
    assert e.delta.abs().max() < 1e-2 * (e.output - e.extras["baseline_output"]).abs().max()
    occ = explain(
        model, ids, Target("rnn.0.bwd.hidden", unit=0, step=0), "occlusion", lengths=lengths
    )
    assert occ.attributions.shape == ids.shape
    with pytest.raises(ExplainError, match="matches nothing"):
        explain(model, ids, Target("rnn.5.fwd.cell", 0), "saliency", lengths=lengths)
    with pytest.raises(ExplainError, match="unit 99"):
        explain(model, ids, Target("rnn.0.fwd.cell", 99), "saliency", lengths=lengths)


def test_top_k_and_frame():
    model = _clf()
    ids, lengths = batch()
    toks = [[f"w{i}" for i in row] for row in ids.tolist()]
    e = explain(model, ids, 1, "occlusion", lengths=lengths, tokens=toks)
    top = e.top_k(2, index=2)
    assert len(top) == 2 and top[0][2] >= top[1][2] and top[0][1].startswith("w")
    assert all(p < 5 for p, _, _ in e.top_k(10, index=2))
    df = e.to_frame()
    assert isinstance(df, pd.DataFrame)
    assert len(df) == int(lengths.sum())
    assert {"sequence", "position", "token", "relevance"} <= set(df.columns)


def test_integrated_gradients_completeness_and_baselines():
    model = _clf()
    ids, lengths = batch()
    for base in ("pad", "unk", "zero", "mean", 5):
        e = explain(model, ids, 1, "integrated_gradients", lengths=lengths, baseline=base)
        gap = (e.output - e.extras["baseline_output"]).abs()
        assert (e.delta.abs() <= 1e-3 + 1e-2 * gap).all()
    with pytest.raises(ExplainError, match="unknown baseline"):
        explain(model, ids, 1, "integrated_gradients", lengths=lengths, baseline="bogus")


def test_lime_batches_model_calls():
    model = _clf()
    ids, lengths = batch()
    e = explain(model, ids[:1], 1, "lime", lengths=lengths[:1], n_samples=300, batch_size=64)
    assert e.extras["model_calls"] == 5
    assert e.extras["model_rows"] == 300
    e2 = explain(model, ids[:1], 1, "lime", lengths=lengths[:1], n_samples=300, seed=1)
    assert not torch.equal(e.attributions, e2.attributions)


def test_shap_permutation_and_windows():
    torch.manual_seed(0)
    model = Forecaster().eval()
    x = torch.randn(1, 12, 2)
    e = explain(model, x, 0, "shap", algorithm="permutation", window=3, max_evals=100)
    assert e.attributions.shape == (1, 12)
    # Shapley efficiency: values sum to F(x) - F(all windows at the baseline)
    base = x.mean(1, keepdim=True).expand_as(x)
    gap = (model(x)[0, 0] - model(base)[0, 0]).item()
    assert e.attributions.sum().item() == pytest.approx(gap, abs=1e-4)


def test_cudnn_and_train_mode_untouched():
    model = _clf()
    ids, lengths = batch()
    explain(model, ids, 1, "integrated_gradients", lengths=lengths, n_steps=4)
    assert not model.training
    assert torch.backends.cudnn.enabled
