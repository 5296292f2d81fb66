"""workbench.compare against direct float64 implementations of the papers' equations.

CKA: the HSIC of n x n Gram matrices (Kornblith et al. 2019, eq. 1-3); SVCCA: SVD of the
centred data, then CCA by QR of the reduced matrices (Raghu et al. 2017). The library computes
both from feature-space cross-products summed block by block, a different path.
"""

import numpy as np
import pytest
import torch

from workbench.compare import (
    aligned_steps,
    compare_stores,
    joint_moments,
    linear_cka,
    match_units,
    state_names,
    svcca,
)
from workbench.compare._cka import cka_from_moments


def _hsic(k, g):
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ g @ h) / (n - 1) ** 2


def cka_reference(x, y):
    """Linear CKA from the Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    k, g = x @ x.T, y @ y.T
    return _hsic(k, g) / np.sqrt(_hsic(k, k) * _hsic(g, g))


def svcca_reference(x, y, keep=0.99):
    """SVD-reduce each centred matrix to ``keep`` of its variance, then CCA by QR."""

    def reduce(a):
        a = a - a.mean(0)
        u, s, _ = np.linalg.svd(a, full_matrices=False)
        share = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.searchsorted(share, keep - 1e-12) + 1)
        return u[:, :k] * s[:k]

    qx, _ = np.linalg.qr(reduce(x))
    qy, _ = np.linalg.qr(reduce(y))
    return np.linalg.svd(qx.T @ qy, compute_uv=False)


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(0)
    n = 300
    z = rng.normal(size=(n, 6))  # shared signal
    x = z @ rng.normal(size=(6, 20)) + 0.5 * rng.normal(size=(n, 20)) + 3.0  # large mean
    y = np.tanh(z @ rng.normal(size=(6, 15))) + 0.3 * rng.normal(size=(n, 15))
    return x, y


def test_cka_matches_the_gram_matrix_definition(xy):
    x, y = xy
    ref = cka_reference(x, y)
    assert 0.05 < ref < 0.95
    assert linear_cka(x, y) == pytest.approx(ref, rel=1e-10)
    assert linear_cka(x, x) == pytest.approx(1.0, rel=1e-12)


def test_cka_invariances(xy):
    x, y = xy
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(20, 20)))
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x @ q, y) == pytest.approx(linear_cka(x, y), rel=1e-10)
    assert linear_cka(7.5 * x, y) == pytest.approx(linear_cka(x, y), rel=1e-10)
    assert linear_cka(x + 100.0, y) == pytest.approx(linear_cka(x, y), rel=1e-9)
    # not invariant to an arbitrary invertible map (the paper's point against CCA)
    a = np.random.default_rng(2).normal(size=(20, 20)) * np.linspace(0.1, 5, 20)
    assert abs(linear_cka(x @ a, y) - linear_cka(x, y)) > 1e-3


def test_blockwise_equals_one_block(xy):
    x, y = xy
    one = joint_moments({"x": x, "y": y}, block=len(x))
    many = joint_moments({"x": x, "y": y}, block=7)
    np.testing.assert_allclose(many.cross, one.cross, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(many.mean, x.mean(0).tolist() + y.mean(0).tolist(), rtol=1e-12)
    assert linear_cka(x, y, block=7) == pytest.approx(linear_cka(x, y, block=10_000), rel=1e-12)
    assert linear_cka(x, y, steps=200) == pytest.approx(cka_reference(x[:200], y[:200]), rel=1e-10)


def test_float16_store_like_input_is_summed_in_float64():
    rng = np.random.default_rng(3)
    x = (0.95 + 0.01 * rng.normal(size=(600, 8))).astype(np.float16)  # saturated gates
    y = (x.astype(np.float64) @ rng.normal(size=(8, 8))).astype(np.float16)
    ref = cka_reference(x.astype(np.float64), y.astype(np.float64))
    # float16 inputs: float32 products of the shifted block, float64 sums (float32 tolerance)
    assert linear_cka(x, y, block=64) == pytest.approx(ref, rel=1e-5)
    m = joint_moments({"x": x, "y": y}, block=64, precision="float64")
    assert cka_from_moments(m, "x", "y") == pytest.approx(ref, rel=1e-8)
    assert m.cross.dtype == np.float64


def test_svcca_matches_svd_then_cca(xy):
    x, y = xy
    res = svcca(x, y, block=11)
    ref = svcca_reference(x, y)
    np.testing.assert_allclose(res.correlations, ref[: len(res.correlations)], atol=1e-9)
    assert res.similarity == pytest.approx(ref.mean(), abs=1e-9)
    # CCA is invariant to any invertible linear map of the kept directions
    q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(20, 20)))
    assert svcca(x @ q, y).similarity == pytest.approx(res.similarity, abs=1e-9)
    assert svcca(x, x).similarity == pytest.approx(1.0, abs=1e-9)


def test_match_units_finds_permuted_units(xy):
    x, _ = xy
    perm = np.random.default_rng(5).permutation(20)
    sign = np.where(np.arange(20) % 2, -1.0, 1.0)
    y = x[:, perm] * sign * 2.0
    m = joint_moments({"a": x, "b": y}, block=50)
    table = match_units(m, "a", "b").sort_values("unit")
    inverse = np.argsort(perm)
    np.testing.assert_array_equal(table["match"], inverse)
    np.testing.assert_allclose(table["r"], sign[inverse], atol=1e-12)
    # r against numpy's corrcoef for an unrelated pair
    z = np.random.default_rng(6).normal(size=x.shape)
    m = joint_moments({"a": x, "b": z})
    r = np.corrcoef(x.T, z.T)[:20, 20:]
    table = match_units(m, "a", "b").sort_values("unit")
    best = np.abs(r).argmax(1)
    np.testing.assert_array_equal(table["match"], best)
    np.testing.assert_allclose(table["r"], r[np.arange(20), best], atol=1e-12)


def test_too_few_steps_is_one_clear_error():
    with pytest.raises(ValueError, match="common steps"):
        linear_cka(np.ones((1, 3)), np.ones((1, 3)))


# -- real stores on disk ----------------------------------------------------------------------


def _tiny(tmp, arch, hidden, seed):
    from workbench.models.architectures import build
    from workbench.models.checkpoint import load, save, shipped

    tok = load(shipped("python")).tokenizer
    torch.manual_seed(seed)
    spec = dict(vocab=len(tok), embed=8, hidden=hidden, layers=2, arch=arch, dropout=0.0)
    save(tmp / arch, build("charlm", **spec), "charlm", "python", spec, tok)
    return load(tmp / arch)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from workbench.data import corpus
    from workbench.store import StateStore

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: OpenMP threads only wait on each other
    tmp = tmp_path_factory.mktemp("compare")
    docs = corpus("python", "test", max_tokens=2500)
    out = {}
    for arch, hidden in (("lstm", 12), ("gru", 10), ("rnn", 9)):
        bundle = _tiny(tmp, arch, hidden, seed=hidden)
        out[arch] = StateStore.build(bundle, docs, tmp / f"store-{arch}", progress=False)
    torch.set_num_threads(before)
    return out


def test_compare_stores_against_direct_computation(stores):
    a, b = stores["lstm"], stores["gru"]
    assert state_names(a) == [
        "rnn.0.fwd.hidden",
        "rnn.0.fwd.cell",
        "rnn.1.fwd.hidden",
        "rnn.1.fwd.cell",
    ]
    res = compare_stores(a, b, block=1000)
    n = a.n_tokens
    assert res.steps == n == aligned_steps(a, b)
    assert res.cka.shape == (4, 2)
    for i, na in enumerate(res.names_a):
        for j, nb in enumerate(res.names_b):
            x = np.asarray(a.states(na)[:n], dtype=np.float64)
            y = np.asarray(b.states(nb)[:n], dtype=np.float64)
            x, y = x - x.mean(0), y - y.mean(0)  # the feature-space form, all steps at once
            direct = np.sum((y.T @ x) ** 2) / np.linalg.norm(x.T @ x) / np.linalg.norm(y.T @ y)
            assert res.cka[i, j] == pytest.approx(direct, rel=1e-5)  # float32 block products
    head = compare_stores(a, b, steps=300, block=64)  # the Gram-matrix definition
    x = np.asarray(a.states(head.names_a[0])[:300], dtype=np.float64)
    y = np.asarray(b.states(head.names_b[1])[:300], dtype=np.float64)
    assert head.steps == 300 and head.cka[0, 1] == pytest.approx(cka_reference(x, y), rel=1e-5)
    assert res.pair == ("rnn.1.fwd.hidden", "rnn.1.fwd.hidden")
    # each track's best cell from the summed products == the store's own second pass
    from workbench.store import stats

    for side, store, col in ((0, a, "a"), (1, b, "b")):
        states = np.asarray(store.states(res.pair[side])[:n], dtype=np.float64)
        for row in res.cells.itertuples():
            r = stats.track_correlation(states, store.meta(row.track)[:n])
            best = int(np.nanargmax(np.abs(r)))
            assert getattr(row, f"unit_{col}") == best, row.track
            assert getattr(row, f"score_{col}") == pytest.approx(r[best], abs=1e-5)
    assert len(res.matches) == 12 and res.matches["match"].between(0, 9).all()
    assert set(res.cells["track"]) == {
        "in_string",
        "in_literal",
        "in_comment",
        "depth",
        "depth_paren",
        "depth_curly",
    }  # no square brackets in this text: a constant track has no best cell
    assert np.ptp(a.meta("depth_square")[:n]) == 0
    assert set(res.saturation_a["name"]) == {
        f"rnn.{k}.fwd.{g}" for k in (0, 1) for g in ("input_gate", "forget_gate", "output_gate")
    }
    assert set(res.saturation_b["name"]) == {
        f"rnn.{k}.fwd.{g}" for k in (0, 1) for g in ("reset_gate", "update_gate")
    }
    # nn.RNN (tanh): states are the hidden ones, no gates
    r = compare_stores(a, stores["rnn"], steps=1000)
    assert r.steps == 1000 and r.names_b == ["rnn.0.fwd.hidden", "rnn.1.fwd.hidden"]
    assert r.saturation_b.empty
    same = compare_stores(a, a, steps=800)
    np.testing.assert_allclose(np.diag(same.cka[:, :]), 1.0, atol=1e-6)
    assert (same.matches["unit"] == same.matches["match"]).all()
    assert same.cells["same"].all()


def test_different_text_or_tokenizer_is_one_clear_error(stores, tmp_path):
    from workbench.data import corpus
    from workbench.store import StateStore

    torch.set_num_threads(1)
    other = corpus("python", "valid", max_tokens=800)
    bundle = _tiny(tmp_path, "gru", 10, seed=10)
    b = StateStore.build(bundle, other, tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="different text"):
        compare_stores(stores["lstm"], b)
    b.manifest["vocab"] = ["x"]
    with pytest.raises(ValueError, match="different tokenizers"):
        compare_stores(stores["lstm"], b)


def test_report_section_and_widget_use_the_same_figures(stores, tmp_path):
    import workbench
    from workbench.reports import comparison_section
    from workbench.widgets import show

    res = compare_stores(stores["lstm"], stores["gru"], steps=500)
    sec = comparison_section(res, "lstm", "gru", bpc=[("lstm", 2.0), ("gru", 2.1)])
    assert len(sec.figures) == 5 and "SVCCA" in sec.text[0]
    out = workbench.report([sec], tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Compare lstm and gru" in html and out is not None
    widget = show(res)
    assert widget is not None


def test_two_checkpoints_of_one_model_permuted_units_are_found_the_same(stores, tmp_path):
    """A checkpoint vs a copy whose units are permuted (the same function, another order).

    The training-history path (early vs late checkpoint of one model) with a known answer:
    CKA 1 for each layer against itself, every unit matched to its permuted place with r 1.
    """
    from workbench.data import corpus
    from workbench.models.checkpoint import load, save
    from workbench.store import StateStore

    bundle = _tiny(tmp_path, "lstm", 12, seed=12)  # the weights of stores["lstm"]
    model, h = bundle.model, 12
    rng = np.random.default_rng(5)
    perms = [rng.permutation(h) for _ in range(2)]
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    for layer, p in enumerate(perms):
        rows = np.concatenate([g * h + p for g in range(4)])  # gates i, f, g, o
        for k in ("weight_ih", "bias_ih", "bias_hh"):
            sd[f"rnn.{k}_l{layer}"] = sd[f"rnn.{k}_l{layer}"][rows]
        sd[f"rnn.weight_hh_l{layer}"] = sd[f"rnn.weight_hh_l{layer}"][rows][:, p]
    sd["rnn.weight_ih_l1"] = sd["rnn.weight_ih_l1"][:, perms[0]]
    sd["head.weight"] = sd["head.weight"][:, perms[1]]
    model.load_state_dict(sd)
    arch = bundle.config["arch"]
    save(tmp_path / "late", model, "charlm", "python", arch, bundle.tokenizer)
    docs = corpus("python", "test", max_tokens=2500)
    late = StateStore.build(load(tmp_path / "late"), docs, tmp_path / "late-store", progress=False)
    early = stores["lstm"]
    res = compare_stores(early, late)
    assert res.names_a == res.names_b
    np.testing.assert_allclose(np.diag(res.cka), 1.0, atol=1e-4)
    assert (res.cka[~np.eye(4, dtype=bool)] < 0.999).all()  # other layers are not the same
    table = res.matches.sort_values("unit")
    inverse = np.argsort(perms[1])  # early unit u is late unit inverse[u]
    np.testing.assert_array_equal(table["match"], inverse)
    np.testing.assert_allclose(table["r"], 1.0, atol=1e-3)
    # each track's best cell: the same score in both, A's cell matched to its permuted place
    np.testing.assert_array_equal(res.cells["match_of_a"], inverse[res.cells["unit_a"]])
    np.testing.assert_allclose(res.cells["score_a"], res.cells["score_b"], atol=1e-3)
    assert res.cells["same"].all()
