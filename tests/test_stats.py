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


# ------------------------------------------------------------ a real store: contrast, held out
def _mann_whitney(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC straight from its definition, in float64: P(pos > neg) + P(pos == neg) / 2."""
    pos, neg = pos.astype(np.float64)[:, None], neg.astype(np.float64)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def _python_docs(n_chars: int, legacy: bool = False):
    """Two training and two held-out documents of the python corpus, cut to ``n_chars``."""
    from workbench.data import Document, corpus

    out = []
    for split in ("train", "test"):
        for d in [d for d in corpus("python", split, max_tokens=40_000) if len(d) > n_chars][:2]:
            meta = {k: v[:n_chars] for k, v in d.meta.items()}
            if legacy:  # how stores kept flags before: int32
                meta = {k: v.astype(np.int16) for k, v in meta.items()}
            out.append(Document(d.doc_id, d.tokens[:n_chars], meta))
    return out


@pytest.fixture(scope="module")
def python_store(tmp_path_factory):
    import torch

    import workbench
    from workbench.models.checkpoint import shipped
    from workbench.store import StateStore

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        bundle = workbench.load(shipped("python"))
        path = tmp_path_factory.mktemp("py-store") / "s"
        return StateStore.build(bundle, _python_docs(900), path, progress=False), bundle
    finally:
        torch.set_num_threads(threads)


def test_contrast_cells_chosen_on_train_scored_held_out(python_store):
    store, _ = python_store
    name = "rnn.0.fwd.cell"
    best = store.best_cells(
        name, "in_literal", top=3, contrast="is_code", select_on=[0, 1], score_on=[2, 3]
    )
    assert best.method.tolist() == ["auc"] * 3
    x = np.asarray(store.states(name)[:], dtype=np.float64)
    lit, code = store.meta("in_literal"), store.meta("is_code")
    train = np.arange(store.n_tokens) < store.boundaries[2]
    assert lit[~train].any() and lit[train].any()
    for row in best.itertuples():
        u = row.unit
        held = _mann_whitney(x[~train & lit, u], x[~train & code, u])
        chosen = _mann_whitney(x[train & lit, u], x[train & code, u])
        assert row.score == pytest.approx(held, abs=1e-9)
        assert row.select_score == pytest.approx(chosen, abs=1e-9)
    # ranked on the training documents: no unit separates them better there
    from scipy.stats import mannwhitneyu

    u_stat = mannwhitneyu(x[train & lit], x[train & code], axis=0).statistic
    strength = np.abs(u_stat / (lit[train].sum() * code[train].sum()) - 0.5) * 2
    assert best.unit.iloc[0] == int(np.argmax(strength))
    # a numeric track within code characters: Pearson r on those steps only
    depth = store.best_cells(name, "depth_paren", top=1, within="is_code", select_on=[0, 1])
    u = int(depth.unit.iloc[0])
    on = ~train & code
    ref = np.corrcoef(x[on, u], store.meta("depth_paren")[on])[0, 1]
    assert depth.method.iloc[0] == "corr" and depth.score.iloc[0] == pytest.approx(ref, abs=1e-6)
    with pytest.raises(KeyError, match="no document 9"):
        store.best_cells(name, "in_literal", select_on=[9])


def test_bool_tracks_ranked_by_auc_also_in_stores_that_kept_them_as_int(python_store, tmp_path):
    """A store written before flags were stored as bool (int32 tracks) ranks them by AUC."""
    from workbench.store import StateStore

    store, bundle = python_store
    assert store.manifest["meta"]["in_string"] == "bool"
    old = StateStore.build(bundle, _python_docs(150, legacy=True), tmp_path / "old",
                           progress=False)  # fmt: skip
    assert old.manifest["meta"]["in_string"] == "int32"
    for s, tracks in ((store, ["in_string", "depth", "column"]), (old, ["in_string", "column"])):
        # (in the small old store, depth is 0 or 1 only: it would count as two-valued there)
        best = s.best_cells("rnn.1.fwd.cell", tracks, top=1)
        got = dict(zip(best.track, best.method, strict=True))
        assert got == {t: "auc" if t == "in_string" else "corr" for t in tracks}
        auc = stats.track_auc(s.states("rnn.1.fwd.cell"), s.meta("in_string"))
        assert best.unit.iloc[0] == int(np.nanargmax(np.abs(auc - 0.5)))


def test_new_python_tracks_reach_the_lstmvis_export(python_store, tmp_path):
    import yaml

    from workbench.data.python_source import TRACKS

    store, _ = python_store
    folder = store.export(tmp_path / "lstmvis", names=["rnn.0.fwd.cell"])
    meta = yaml.safe_load((folder / "lstm.yml").read_text())["meta"]
    assert list(meta) == list(TRACKS)
    assert meta["in_literal"]["vis"] == {"type": "discrete", "range": [0, 1]}
    assert meta["depth_curly"]["vis"]["type"] == "discrete"
