"""Explainers under hostile settings: integer targets, bounded sizes, LRP's epsilon, dropout."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from explain_models import Classifier, batch
from torch import nn

import workbench
from workbench.explainers import (
    LIME,
    LRP,
    SHAP,
    ExplainError,
    IntegratedGradients,
    Occlusion,
    Target,
    _gradient,
)


def _model(**kw):
    torch.manual_seed(0)
    return Classifier(**kw).eval()


# ------------------------------------------------------------------------------ targets
@pytest.mark.parametrize("target", [1.7, [0, 1.5, 2, 1], torch.tensor([0.5] * 4), math.nan])
def test_non_integer_targets_are_refused_not_truncated(target):
    ids, lengths = batch()
    with pytest.raises(ExplainError, match="not an integer"):
        workbench.explain(_model(), ids, target, "saliency", lengths=lengths)


def test_integral_float_targets_are_the_same_as_ints():
    ids, lengths = batch()
    a = workbench.explain(_model(), ids, 2.0, "saliency", lengths=lengths)
    b = workbench.explain(_model(), ids, 2, "saliency", lengths=lengths)
    assert a.target.tolist() == b.target.tolist() == [2] * 4
    torch.testing.assert_close(a.attributions, b.attributions, rtol=0, atol=0)


@pytest.mark.parametrize("kw", [{"unit": 3.7}, {"unit": (1, 17.2)}, {"step": 1.5}, {"unit": True}])
def test_target_units_and_steps_must_be_integers(kw):
    with pytest.raises(ExplainError, match="must be an integer"):
        Target("rnn.0.fwd.cell", **kw)


def test_out_of_vocabulary_ids_name_the_ids_and_the_vocabulary():
    ids, lengths = batch()
    ids[1, 0] = 31
    with pytest.raises(ExplainError, match=r"token ids 31 .*'emb' \(30 ids, valid 0\.\.29\)"):
        workbench.explain(_model(), ids, 0, "saliency", lengths=lengths)


# -------------------------------------------------------------------------------- sizes
@pytest.mark.parametrize(
    "make",
    [
        lambda m: IntegratedGradients(m, n_steps=10**9),
        lambda m: IntegratedGradients(m, n_steps=0),
        lambda m: IntegratedGradients(m, n_steps=2.5),
        lambda m: IntegratedGradients(m, internal_batch_size=10**12),
        lambda m: LIME(m, n_samples=10**9),
        lambda m: SHAP(m, max_evals=10**9),
        lambda m: Occlusion(m, batch_size=10**9),
        lambda m: Occlusion(m, window=0),
        lambda m: Occlusion(m, stride=10**12),
        lambda m: LIME(m, kernel_width=math.inf),
    ],
)
def test_every_size_setting_is_bounded_up_front(make):
    with pytest.raises(ExplainError, match="must be"):
        make(_model())


def test_explain_refuses_a_huge_n_steps_before_running():
    with pytest.raises(ExplainError, match=r"n_steps must be between 1 and 10,000"):
        workbench.explain(_model(), *batch()[:1], 0, "integrated_gradients", n_steps=10**9)


def test_a_long_path_runs_in_pieces_with_the_same_result(monkeypatch):
    ids, lengths = batch()
    model = _model()
    whole = workbench.explain(model, ids, 1, "integrated_gradients", lengths=lengths, n_steps=20)
    monkeypatch.setattr(_gradient, "_MAX_PATH_VALUES", 4 * 7 * 8 * 3)  # 3 steps at a time
    parts = workbench.explain(model, ids, 1, "integrated_gradients", lengths=lengths, n_steps=20)
    # float32 sums in another grouping: float32 tolerances
    torch.testing.assert_close(parts.attributions, whole.attributions, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------- LRP
@pytest.mark.parametrize("eps", [0, 0.0, -1e-3, math.nan, math.inf, "1e-3", True])
def test_lrp_refuses_an_epsilon_that_is_not_a_positive_number(eps):
    with pytest.raises(ExplainError, match="epsilon must be"):
        LRP(_model(), epsilon=eps)


def test_lrp_with_a_small_epsilon_stays_finite():
    ids, lengths = batch()
    e = workbench.explain(_model(), ids, 0, "lrp", lengths=lengths, epsilon=1e-12)
    assert torch.isfinite(e.attributions).all()


# ------------------------------------------------------------------------------ dropout
class Dropped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = _model()
        self.drop = nn.Dropout(0.5)

    def forward(self, ids, lengths):
        return self.drop(self.net(ids, lengths))


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "occlusion"])
def test_training_mode_with_dropout_warns(method):
    ids, lengths = batch()
    model = Dropped().train()
    with pytest.warns(RuntimeWarning, match=r"training mode with dropout in drop.*model\.eval"):
        workbench.explain(model, ids, 0, method, lengths=lengths)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        workbench.explain(model.eval(), ids, 0, method, lengths=lengths)


def test_dropout_between_rnn_layers_in_training_mode_warns():
    ids, lengths = batch()
    model = _model()
    model.rnn.dropout = 0.3
    model.rnn.train()
    with pytest.warns(RuntimeWarning, match="dropout in rnn"):
        workbench.explain(model, ids, 0, "saliency", lengths=lengths)


def test_metric_sizes_are_bounded_too():
    from workbench.explainers.metrics import eraser, perturbation_curve

    ids, lengths = batch()
    model = _model()
    e = workbench.explain(model, ids, 0, "saliency", lengths=lengths)
    with pytest.raises(ExplainError, match="points must be between 2 and 10,000"):
        perturbation_curve(model, ids, e, points=10**9, lengths=lengths)
    with pytest.raises(ExplainError, match="batch_size must be between"):
        eraser(model, ids, e, batch_size=0, lengths=lengths)
