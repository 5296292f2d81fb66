"""PCA + UMAP maps of store states, cached in the store, with transform for new states."""

import numpy as np
import pytest
from test_store import SETTINGS, make_corpus, make_model

from workbench.store import StateStore, projection


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("proj") / "s"
    return StateStore.build(make_model(), make_corpus(n_docs=20), path, **SETTINGS)


def test_pca_map_cached_and_transform(store):
    name = "rnn.1.fwd.hidden"
    msgs = []
    p = store.projection(name, method="pca", sample=300, progress=msgs.append)
    assert p.embedding.shape == (300, 2)
    assert np.all(np.diff(p.sample) > 0) and p.sample[-1] < store.n_tokens
    rows = store.states(name)[:][p.sample[:5]]
    np.testing.assert_allclose(p.transform(rows), p.embedding[:5], atol=1e-4)
    again = store.projection(name, method="pca", sample=300, progress=msgs.append)
    assert any("cache" in m for m in msgs)
    np.testing.assert_array_equal(again.embedding, p.embedding)
    # a cached map still places new states
    np.testing.assert_allclose(again.transform(rows), p.embedding[:5], atol=1e-4)


def test_bad_states():
    with pytest.raises(ValueError, match="NaN"):
        projection.fit(np.full((10, 3), np.nan), method="pca")
    with pytest.raises(ValueError, match="method"):
        projection.fit(np.ones((10, 3)), method="tsne")


@pytest.mark.slow
def test_umap_map_and_transform(store):
    name = "rnn.1.fwd.hidden"
    msgs = []
    first = not projection._FITTED_IN_PROCESS  # the numba note comes with a process's first fit
    p = store.projection(name, sample=None, n_neighbors=10, progress=msgs.append)
    assert any(m.startswith("UMAP: fitting") for m in msgs)
    assert any("numba" in m for m in msgs) == first
    assert p.embedding.shape == (store.n_tokens, 2) and np.isfinite(p.embedding).all()
    doc = store.document(3)
    live = p.transform(doc.states(name))
    cached = store.projection(name, sample=None, n_neighbors=10, progress=msgs.append)
    placed = cached.transform(doc.states(name))
    assert live.shape == placed.shape == (len(doc), 2)
    # both placements land near the fitted positions of the same states
    fitted = p.embedding[doc.start : doc.end]
    spread = np.ptp(p.embedding, axis=0).max()
    assert np.median(np.linalg.norm(placed - fitted, axis=1)) < 0.2 * spread
    assert np.median(np.linalg.norm(live - fitted, axis=1)) < 0.2 * spread


def test_fast_settings():
    big, small = projection._LARGE + 1, projection._LARGE
    assert projection._umap_settings(big, 15, None, True, {})["n_epochs"] == 100
    assert "n_epochs" not in projection._umap_settings(small, 15, None, True, {})
    assert "n_epochs" not in projection._umap_settings(big, 15, None, False, {})
    given = projection._umap_settings(big, 15, 3, True, {"n_epochs": 7, "init": "spectral"})
    assert (given["n_epochs"], given["init"], given["random_state"]) == (7, "spectral", 3)
    assert projection._umap_settings(small, 15, None, False, {})["init"] == "pca"


@pytest.mark.slow
def test_fast_settings_keep_clusters_apart(monkeypatch):
    # the settings used above 10,000 points (100 epochs, PCA start, cheaper NN-descent),
    # exercised on a small set: two clusters stay apart, new states land in their cluster
    from sklearn.neighbors import NearestNeighbors

    monkeypatch.setattr(projection, "_LARGE", 300)
    rng = np.random.default_rng(0)
    label = np.repeat([0, 1], 400)
    x = (rng.normal(0, 1, (800, 20)) + 4 * label[:, None]).astype(np.float32)
    p = projection.fit(x, pca_dims=10, progress=False)
    assert p.model.n_epochs == 100 and p.model.init == "pca"
    assert p.embedding.shape == (800, 2) and np.isfinite(p.embedding).all()
    idx = NearestNeighbors(n_neighbors=11).fit(p.embedding).kneighbors(p.embedding)[1][:, 1:]
    assert (label[idx] == label[:, None]).mean() > 0.95
    new = (rng.normal(0, 1, (50, 20)) + 4).astype(np.float32)  # cluster 1
    placed = p.transform(new)
    centre = [p.embedding[label == c].mean(axis=0) for c in (0, 1)]
    near = np.linalg.norm(placed - centre[1], axis=1) < np.linalg.norm(placed - centre[0], axis=1)
    assert near.mean() > 0.95
