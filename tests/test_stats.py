import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from workbench.store import stats


def test_gate_saturation_counts():
    x = np.array([[0.05, 0.5], [0.95, 0.5], [0.05, 0.95], [0.5, 0.91]])
    left, right = stats.gate_saturation(x)
    assert left.tolist() == [0.5, 0.0]
    assert right.tolist() == [0.25, 0.5]


def test_correlation_and_auc_against_references():
    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.3
    x = rng.normal(size=(3000, 6))
    x[:, 2] += 2 * y  # a detector
    x[:, 4] -= 1 * y  # an inverted one
    r = stats.track_correlation(x, y)
    ref_r = [np.corrcoef(x[:, u], y)[0, 1] for u in range(6)]
    np.testing.assert_allclose(r, ref_r, atol=1e-9)
    auc = stats.track_auc(x, y)
    np.testing.assert_allclose(auc, [roc_auc_score(y, x[:, u]) for u in range(6)], atol=1e-12)
    # sampled path agrees closely
    assert abs(stats.track_auc(x, y, max_steps=2000)[2] - auc[2]) < 0.03
    best = stats.best_cells(x, {"in_string": y, "depth": x[:, 1] * 3 + 1}, top=2)
    top = best[best.track == "in_string"].unit.tolist()
    assert top == [2, 4]
    assert best[best.track == "depth"].unit.iloc[0] == 1
    assert best[best.track == "depth"].score.iloc[0] == pytest.approx(1.0)


def test_constant_track_is_nan_not_error():
    x = np.random.default_rng(1).normal(size=(50, 3))
    assert np.isnan(stats.track_correlation(x, np.ones(50))).all()
    assert np.isnan(stats.track_auc(x, np.ones(50, bool))).all()


def test_mean_response():
    x = np.arange(12, dtype=float).reshape(6, 2)
    ids = np.array([0, 1, 0, 2, 2, 0])
    mean, count = stats.mean_response(x, ids, n_tokens=4)
    assert count.tolist() == [3, 1, 2, 0]
    np.testing.assert_allclose(mean[0], x[[0, 2, 5]].mean(axis=0))
    assert np.isnan(mean[3]).all()


def test_nmf_factors_shapes_and_nonnegative():
    rng = np.random.default_rng(0)
    x = np.tanh(rng.normal(size=(400, 10)))
    w, h = stats.nmf_factors(x, n_factors=3)
    assert w.shape == (400, 3) and h.shape == (3, 20)
    assert (w >= 0).all() and (h >= 0).all()
