"""``compat="lstmvis"``: selection and match against a slow reading of LSTMVis's rules."""

import lstmvis_reference as ref
import numpy as np
import pytest
from test_store import SETTINGS, make_corpus, make_model

from workbench.store import StateStore, _lstmvis_compat
from workbench.store.search import SearchError, match, select_cells


def raw_states(rng, time, units, p_flip=0.2, dtype=np.float32):
    """Telegraph units with raw (pre-tanh) magnitudes around the thresholds' arctanh."""
    flips = rng.random((time, units)) < p_flip
    state = np.cumsum(flips, axis=0) % 2
    return (state * 0.9 - 0.2 + rng.normal(0, 0.25, (time, units))).astype(dtype)


def as_tuples(m):
    return list(
        zip(
            m.start.tolist(), m.length.tolist(), m.intersection.tolist(), m.union.tolist(),
            strict=True,
        )
    )  # fmt: skip


def brushed_cells(rng, states, threshold, pad, tries=200):
    """Cells LSTMVis selects for some random brush (non-empty)."""
    time = states.shape[0]
    for _ in range(tries):
        a = int(rng.integers(1, time - 4))
        b = a + int(rng.integers(1, 4))
        cells = ref.select(states, a, b, threshold, pad)
        if cells:
            return cells
    return [0, 1]


# ------------------------------------------------------------------ selection
@pytest.mark.parametrize("seed", range(5))
def test_select_equals_lstmvis_client(seed):
    rng = np.random.default_rng(seed)
    states = raw_states(rng, 60, 24)
    for _ in range(25):
        start = int(rng.integers(0, 59))
        end = int(rng.integers(start + 1, min(start + 6, 60) + 1))
        t = float(rng.choice([0.1, 0.3, 0.45, -0.2]))
        pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        got = select_cells(states, start, end, t, pad, compat="lstmvis")
        assert got.tolist() == ref.select(states, start, end, t, pad), (start, end, t, pad)


def test_select_thresholds_the_shown_tanh_rounded_to_5_digits():
    # raw 0.52: tanh 0.4777 < 0.5, so LSTMVis does not select it; the default (raw) does
    states = np.array([[0.0], [0.52], [0.52], [0.0]], np.float32)
    assert select_cells(states, 1, 3, 0.5).tolist() == [0]
    assert select_cells(states, 1, 3, 0.5, compat="lstmvis").tolist() == []
    # tanh 0.299996 is shown as 0.3 (on at 0.3), tanh 0.299994 as 0.29999 (off)
    x, y = np.arctanh(np.array([0.299996, 0.299994], np.float32))
    assert round(float(np.tanh(x)), 5) == 0.3 and round(float(np.tanh(y)), 5) == 0.29999
    states = np.array([[0.0, 0.0], [x, y], [x, y], [0.0, 0.0]], np.float32)
    assert select_cells(states, 1, 3, 0.3, compat="lstmvis").tolist() == [0]


def test_select_padding_outside_the_stream_selects_nothing():
    states = np.full((5, 3), 2.0, np.float32)
    states[0] = -2.0
    assert select_cells(states, 1, 3, pad=(1, 0), compat="lstmvis").tolist() == [0, 1, 2]
    assert select_cells(states, 0, 2, pad=(1, 0), compat="lstmvis").tolist() == []
    assert select_cells(states, 3, 5, pad=(0, 1), compat="lstmvis").tolist() == []
    assert select_cells(states, 3, 5, pad=(0, 0), compat="lstmvis").tolist() == [0, 1, 2]


def test_shown_cut_is_the_rounding_boundary():
    for t in (0.3, 0.5, -0.2, 0.123456, 0.0, 1.0):
        c = _lstmvis_compat.shown_cut(t)
        below = np.nextafter(c, np.float32(-np.inf))
        assert round(float(c), 5) >= t > round(float(below), 5)


# ------------------------------------------------------------------ match
CASES = [
    # (pad, threshold, mode)
    ((1, 0), 0.3, "precise"),
    ((0, 0), 0.3, "precise"),
    ((1, 1), 0.2, "precise"),
    ((0, 2), 0.4, "fast"),
    ((3, 1), 0.3, "fast"),
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("pad,threshold,mode", CASES)
def test_match_equals_lstmvis_reference(seed, pad, threshold, mode):
    rng = np.random.default_rng(100 + seed)
    states = raw_states(rng, 400, 14, p_flip=0.3)
    cells = brushed_cells(rng, states, threshold, pad)
    m = match(states, cells, threshold, pad, top_k=50, compat="lstmvis", mode=mode)
    want, fuzzy, strict = ref.match(states, cells, threshold, pad, mode=mode)
    assert as_tuples(m) == want
    assert m.fuzzy_histogram.tolist() == fuzzy
    assert m.strict_histogram.tolist() == strict


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("keep", [7, 40, 150])
def test_match_candidate_cut_and_order_equal_lstmvis(seed, keep):
    """Small candidate caps: the heuristic sort and cut decide which spans are scored."""
    rng = np.random.default_rng(seed)
    states = raw_states(rng, 700, 12, p_flip=0.35)
    pad = [(1, 0), (1, 1), (0, 1)][seed % 3]
    cells = brushed_cells(rng, states, 0.3, pad)
    m = match(states, cells, 0.3, pad, top_k=60, max_candidates=keep, compat="lstmvis")
    want, fuzzy, strict = ref.match(states, cells, 0.3, pad, keep=keep, top_k=60)
    assert as_tuples(m) == want
    assert m.fuzzy_histogram.tolist() == fuzzy and m.strict_histogram.tolist() == strict


def test_fast_mode_searches_only_its_window(monkeypatch):
    rng = np.random.default_rng(3)
    states = raw_states(rng, 900, 10, p_flip=0.3)
    monkeypatch.setattr(_lstmvis_compat, "FAST", (300, 25))
    for pad in [(1, 0), (0, 1), (1, 1)]:
        cells = brushed_cells(rng, states, 0.3, pad)
        m = match(states, cells, 0.3, pad, top_k=40, compat="lstmvis", mode="fast")
        want, fuzzy, strict = ref.match(states, cells, 0.3, pad, window=300, keep=25, top_k=40)
        assert as_tuples(m) == want
        assert m.fuzzy_histogram.tolist() == fuzzy
        assert all(s < 300 for s in m.start.tolist())


def test_match_uses_arctanh_threshold_and_one_step_padding():
    # unit 0 on over [3, 6); unit 1 too, but also on at step 1 (two steps before the span)
    states = np.full((10, 2), -1.0, np.float32)
    states[3:6, :] = 0.35  # tanh 0.336 >= 0.3, raw >= arctanh(0.3) = 0.3095
    states[1, 1] = 0.35
    m = match(states, [0, 1], 0.3, pad=(2, 0), compat="lstmvis")
    assert (m.start[0], m.length[0], m.intersection[0], m.union[0]) == (3, 3, 2, 2)
    d = match(states, [0, 1], 0.3, pad=(2, 0))  # default: the full padding rejects unit 1
    assert (d.start[0], d.intersection[0]) == (3, 1)
    # 0.305 >= 0.3 raw, but below arctanh(0.3): off for LSTMVis's match
    states[3:6, :] = 0.305
    assert len(match(states, [0, 1], 0.3, compat="lstmvis")) == 0
    assert len(match(states, [0, 1], 0.3)) == 1


def test_match_flat_stream_crosses_documents():
    states = np.full((12, 1), -1.0, np.float32)
    states[4:8] = 1.0  # one run over the document boundary at 6
    bounds = [0, 6, 12]
    m = match(states, [0], 0.3, boundaries=bounds, compat="lstmvis")
    assert m.spans()[0] == (4, 8) and m.document[0] == 0
    d = match(states, [0], 0.3, boundaries=bounds)
    assert sorted(d.spans()) == [(4, 6), (6, 8)]


def test_match_skips_spans_touching_the_corpus_edges():
    states = np.full((10, 1), -1.0, np.float32)
    states[0:3] = 1.0
    states[7:10] = 1.0
    assert len(match(states, [0], 0.3, pad=(0, 0), compat="lstmvis")) == 0
    assert len(match(states, [0], 0.3, pad=(0, 0))) == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(threshold=1.0, compat="lstmvis"),
        dict(threshold=-1.5, compat="lstmvis"),
        dict(threshold=0.3, mode="fast"),
        dict(threshold=0.3, mode="quick", compat="lstmvis"),
        dict(threshold=0.3, compat="lstmvis2"),
    ],
)
def test_match_bad_compat_input(kwargs):
    with pytest.raises(SearchError):
        match(np.zeros((10, 3), np.float32), [0], **kwargs)


# ------------------------------------------------------------------ a real store
@pytest.fixture(scope="module", params=["float32", "float16"])
def store(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("lvc") / "s"
    settings = dict(SETTINGS, dtype=request.param)
    return StateStore.build(make_model(), make_corpus(n_docs=10, seed=4), path, **settings)


def test_store_compat_equals_reference(store):
    name = "rnn.0.fwd.cell"
    flat = np.asarray(store.states(name)[:], dtype=np.float32)
    rng = np.random.default_rng(0)
    bounds = store.boundaries
    checked = 0
    for doc in range(store.n_docs):
        n = int(bounds[doc + 1] - bounds[doc])
        for a in range(0, max(n - 3, 0), 7):
            for pad in [(1, 0), (1, 1), (0, 0)]:
                got = store.select_cells(name, doc, a, a + 2, 0.2, pad, compat="lstmvis")
                g = int(bounds[doc]) + a
                assert got.tolist() == ref.select(flat, g, g + 2, 0.2, pad)
                if got.size and checked < 12 and rng.random() < 0.3:
                    checked += 1
                    m = store.match(name, got, 0.2, pad, compat="lstmvis", max_candidates=60)
                    want, fuzzy, _ = ref.match(flat, got.tolist(), 0.2, pad, keep=60)
                    assert as_tuples(m) == want
                    assert m.fuzzy_histogram.tolist() == fuzzy
    assert checked > 3


def test_heuristic_is_zero_without_padding_and_uses_neighbours_with_it():
    from workbench.store.search import _kernels

    count = np.array([0, 2, 2, 1, 2, 2, 0, 2, 2, 2, 1, 0], np.int16)
    runs = _kernels()["level_runs"]
    _, start, h, _, _ = _lstmvis_compat.candidates(count, 2, (0, 0), 2, 100, runs)
    assert h.tolist() == [0] * start.size
    length, start, h, level, _ = _lstmvis_compat.candidates(count, 2, (1, 1), 2, 100, runs)
    keys = zip(length.tolist(), start.tolist(), strict=True)
    got = dict(zip(keys, zip(h.tolist(), level.tolist(), strict=True), strict=True))
    assert got[(2, 1)] == (2 - 0 - 1, 2) and got[(2, 4)] == (2 - 1 - 0, 2)
    assert got[(5, 1)] == (1 - 0 - 0, 1) and got[(4, 7)] == (1 - 0 - 0, 1)
