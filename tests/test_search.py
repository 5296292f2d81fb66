"""LSTMVis select / match: fast paths against slow references written straight from the rules."""

import numpy as np
import pytest

from workbench.store.search import SearchError, aggregate_meta, match, select_cells


# ------------------------------------------------------------------ slow references
def on_ref(x, t):
    return (not np.isnan(x)) and float(x) >= t


def shows_ref(states, u, start, end, t, left, right, d0, d1):
    """Unit u is on at every step of [start, end) and off left/right (outside doc = off)."""
    for s in range(start, end):
        if not on_ref(states[s, u], t):
            return False
    for s in range(start - left, start):
        if d0 <= s and on_ref(states[s, u], t):
            return False
    for s in range(end, end + right):
        if s < d1 and on_ref(states[s, u], t):
            return False
    return True


def select_ref(states, start, end, t=0.3, pad=(1, 0)):
    return [
        u
        for u in range(states.shape[1])
        if shows_ref(states, u, start, end, t, pad[0], pad[1], 0, states.shape[0])
    ]


def match_ref(states, cells, t=0.3, pad=(1, 0), min_length=2, max_candidates=10**9, bounds=None):
    time, units = states.shape
    bounds = [0, time] if bounds is None else list(bounds)
    cells = sorted(set(cells))
    k = len(cells)
    count = [sum(on_ref(states[s, c], t) for c in cells) for s in range(time)]
    cands = []
    for level in range(k, 0, -1):
        for d in range(len(bounds) - 1):
            s = bounds[d]
            while s < bounds[d + 1]:
                if count[s] >= level:
                    e = s
                    while e < bounds[d + 1] and count[e] >= level:
                        e += 1
                    if e - s >= min_length and (s, e - s) not in cands:
                        cands.append((s, e - s))
                    s = e
                else:
                    s += 1
        if len(cands) >= max_candidates:
            break
    scored = []
    for s, n in cands:
        d = max(i for i in range(len(bounds) - 1) if bounds[i] <= s)
        shows = {
            u
            for u in range(units)
            if shows_ref(states, u, s, s + n, t, pad[0], pad[1], bounds[d], bounds[d + 1])
        }
        inter = len(shows & set(cells))
        union = len(shows | set(cells))
        scored.append((-inter, union, -n, s, inter, d))
    scored.sort()
    return [(s, -mn, inter, union, d) for (_, union, mn, s, inter, d) in scored], cands


def telegraph(rng, time, units, p_flip=0.2):
    flips = rng.random((time, units)) < p_flip
    state = np.cumsum(flips, axis=0) % 2
    return (state * 0.6 + rng.normal(0, 0.1, (time, units))).astype(np.float32)


# ------------------------------------------------------------------ selection
@pytest.mark.parametrize("seed", range(6))
def test_select_matches_reference(seed):
    rng = np.random.default_rng(seed)
    states = telegraph(rng, 40, 30)
    for _ in range(20):
        start = int(rng.integers(0, 39))
        end = int(rng.integers(start + 1, 41))
        t = float(rng.choice([0.1, 0.3, 0.45]))
        pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        got = select_cells(states, start, end, t, pad)
        assert got.tolist() == select_ref(states, start, end, t, pad)
        assert got.dtype == np.int64


def test_select_exact_signature():
    states = np.zeros((6, 4), np.float32)
    states[2:4, 0] = 0.5  # off-on-on-off: selected
    states[1:4, 1] = 0.5  # on before the brush: not selected with pad (1, 0)
    states[2:5, 2] = 0.5  # on after: selected with right pad 0 only
    states[2, 3] = 0.5  # not on at step 3
    assert select_cells(states, 2, 4).tolist() == [0, 2]
    assert select_cells(states, 2, 4, pad=(1, 1)).tolist() == [0]
    assert select_cells(states, 2, 4, pad=(0, 0)).tolist() == [0, 1, 2]
    # outside the document counts as off
    states[0:2, 3] = 0.5
    assert 3 in select_cells(states, 0, 2, pad=(3, 0)).tolist()


def test_threshold_exact_in_float16():
    # 0.2998 rounds to float16 0.2998046875 < 0.3: off; the float16 value just above 0.3 is on
    below = np.float16(0.2998046875)
    above = np.nextafter(below, np.float16(1))
    states = np.array([[0, 0], [below, above], [below, above], [0, 0]], np.float16)
    assert select_cells(states, 1, 3).tolist() == [1]
    assert select_cells(states, 1, 3, threshold=float(below)).tolist() == [0, 1]


@pytest.mark.parametrize(
    "args",
    [
        dict(start=-1, end=2),
        dict(start=3, end=3),
        dict(start=0, end=99),
        dict(start=0, end=2, threshold=float("nan")),
        dict(start=0, end=2, pad=(-1, 0)),
    ],
)
def test_select_bad_input(args):
    states = np.zeros((10, 3), np.float32)
    with pytest.raises(SearchError):
        select_cells(states, **args)


# ------------------------------------------------------------------ match
@pytest.mark.parametrize("seed", range(8))
def test_match_matches_reference(seed):
    rng = np.random.default_rng(seed)
    time, units = 120, 16
    states = telegraph(rng, time, units, p_flip=0.25)
    cuts = np.sort(rng.choice(np.arange(1, time), size=4, replace=False))
    bounds = [0, *cuts.tolist(), time]
    k = int(rng.integers(1, 5))
    cells = rng.choice(units, size=k, replace=False)
    pad = (int(rng.integers(0, 3)), int(rng.integers(0, 2)))
    maxc = int(rng.choice([3, 10, 10**6]))
    ref, cands = match_ref(states, cells, 0.3, pad, 2, maxc, bounds)
    got = match(states, cells, 0.3, pad, top_k=10**6, max_candidates=maxc, boundaries=bounds)
    assert got.n_candidates == len(cands)
    # the fast path scores unions only for whole tie groups reaching top_k: with top_k
    # covering everything every candidate is ranked
    rows = list(zip(got.start, got.length, got.intersection, got.union, got.document, strict=True))
    assert [tuple(int(v) for v in r) for r in rows] == ref
    top = match(states, cells, 0.3, pad, top_k=5, max_candidates=maxc, boundaries=bounds)
    assert [(int(s), int(n)) for s, n in zip(top.start, top.length, strict=True)] == [
        (r[0], r[1]) for r in ref[:5]
    ]
    lengths = [n for _, n in cands]
    assert top.fuzzy_histogram.sum() == len(cands)
    assert np.bincount(lengths, minlength=2).tolist()[: len(top.fuzzy_histogram)] == (
        top.fuzzy_histogram.tolist()
    )
    assert top.strict_histogram.sum() == sum(1 for r in ref if r[2] == len(set(cells.tolist())))


def test_match_never_crosses_documents():
    states = np.zeros((10, 2), np.float32)
    states[3:7, 0] = 1.0
    one = match(states, [0], pad=(0, 0))
    assert one.spans() == [(3, 7)]
    two = match(states, [0], pad=(0, 0), boundaries=[0, 5, 10])
    assert sorted(two.spans()) == [(3, 5), (5, 7)]
    assert sorted(two.document.tolist()) == [0, 1]


def test_match_beyond_500k_steps_and_ranking():
    # the best match lies after LSTMVis's fast-mode cap of 500,000 steps
    time = 700_000
    states = np.zeros((time, 8), np.float16)
    states[600_000:600_010, [1, 2, 3]] = 0.9  # exactly the selection: intersection 3, union 3
    states[100:120, [1, 2, 3, 5]] = 0.9  # same cells plus an extra one: union 4
    states[200:205, [1, 2]] = 0.9  # only two of three
    got = match(states, [1, 2, 3], top_k=3)
    assert got.spans()[0] == (600_000, 600_010)
    assert got.intersection.tolist()[:2] == [3, 3]
    assert got.union.tolist()[:2] == [3, 4]
    assert got.spans()[1] == (100, 120)


def test_match_bad_input():
    states = np.zeros((10, 3), np.float32)
    with pytest.raises(SearchError, match="empty"):
        match(states, [])
    with pytest.raises(SearchError, match="finite"):
        match(states, [0], threshold=float("nan"))
    with pytest.raises(SearchError, match=r"\[0, 3\)"):
        match(states, [5])
    with pytest.raises(SearchError, match="boundaries"):
        match(states, [0], boundaries=[0, 4])


def test_aggregate_meta():
    states = np.zeros((20, 2), np.float32)
    states[2:6, 0] = 1
    states[10:12, 0] = 1
    in_string = np.zeros(20, bool)
    in_string[2:6] = True
    got = match(states, [0])
    agg = aggregate_meta(got, {"in_string": in_string, "depth": np.arange(20)})
    assert agg["in_string"]["mean"] == pytest.approx(4 / 6)
    assert sorted(agg["in_string"]["per_match"].tolist()) == [0.0, 1.0]
    assert agg["depth"]["counts"][10] == 1


# ------------------------------------------------------------------ fast paths, every reader
FIELDS = ("start", "length", "intersection", "union", "document")


class Wrapped:
    """An array-like that is not a numpy array: the read-through path."""

    def __init__(self, x):
        self.x, self.shape, self.dtype = x, x.shape, x.dtype

    def __getitem__(self, key):
        return self.x[key]


def rows_of(m):
    return list(zip(*(getattr(m, f).tolist() for f in FIELDS), strict=True))


def same(a, b):
    assert rows_of(a) == rows_of(b)
    assert (a.n_candidates, a.level) == (b.n_candidates, b.level)
    np.testing.assert_array_equal(a.fuzzy_histogram, b.fuzzy_histogram)
    np.testing.assert_array_equal(a.strict_histogram, b.strict_histogram)


def hard_states(seed, time=150, units=12):
    """float16 telegraph states with runs longer than several chunks, NaN, inf and -inf."""
    rng = np.random.default_rng(seed)
    x = telegraph(rng, time, units, p_flip=0.2)
    x[20:70, :3] = 0.9  # on across many 8-step chunks
    x[19, :3] = 0.0
    x[rng.integers(0, time, 6), rng.integers(0, units, 6)] = np.nan
    x[rng.integers(0, time, 3), rng.integers(0, units, 3)] = np.inf
    x[rng.integers(0, time, 3), rng.integers(0, units, 3)] = -np.inf
    return x.astype(np.float16)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from workbench.bench.store import synthetic_store

    out = {}
    for seed in range(3):
        x = hard_states(seed)
        bounds = [0, 37, 90, 91, 150]
        path = tmp_path_factory.mktemp("search") / f"s{seed}"
        out[seed] = (x, bounds, synthetic_store(path, 0, chunk=8, values=x, offsets=bounds))
    return out


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("threshold", [0.3, -0.2, 0.0, 1e-5])
def test_every_reader_matches_reference(stores, seed, threshold):
    x, bounds, store = stores[seed]
    rng = np.random.default_rng(seed + 100)
    arr = store.states(store.names[0])
    assert arr.unit_major  # the in-place chunk reader
    from workbench.store.search import _Source

    assert _Source(arr, threshold).chunked  # the store takes the kernels' fast path
    for cells in ([0], [0, 1, 2], rng.choice(12, 4, replace=False)):
        for pad in [(1, 0), (0, 0), (2, 1), (3, 2)]:
            ref, cands = match_ref(x, cells, threshold, pad, 2, 10**9, bounds)
            kw = dict(threshold=threshold, pad=pad, top_k=10**6, boundaries=bounds)
            got = match(x, cells, **kw)
            assert [tuple(r) for r in rows_of(got)] == ref
            assert got.n_candidates == len(cands)
            same(got, match(x.astype(np.float32), cells, **kw))
            same(got, match(Wrapped(x), cells, **kw))
            same(got, match(arr, cells, **kw))
            same(got, store.match(store.names[0], cells, threshold, pad, top_k=10**6))
            top = dict(kw, top_k=3, max_candidates=7)
            same(match(x, cells, **top), match(arr, cells, **top))


def test_top_k_stops_early_with_the_same_ranking():
    # one cell, hundreds of candidates in one intersection tie group: the unions are computed
    # longest first and the search stops once the top is full of unions equal to k
    rng = np.random.default_rng(7)
    x = telegraph(rng, 6000, 10, p_flip=0.1)
    for top_k in (1, 5, 50):
        full = match(x, [3], top_k=10**6)
        top = match(x, [3], top_k=top_k)
        assert rows_of(top) == rows_of(full)[:top_k]
        assert top.n_candidates == full.n_candidates > 128


def test_match_threshold_exact_in_float16(tmp_path):
    from workbench.bench.store import synthetic_store

    below = np.float16(0.2998046875)  # < 0.3 once rounded to float16
    above = np.nextafter(below, np.float16(1))
    x = np.zeros((12, 2), np.float16)
    x[2:6, 0] = below
    x[2:6, 1] = above
    store = synthetic_store(tmp_path / "s", 0, chunk=4, values=x, offsets=[0, 12])
    for states in (x, store.states(store.names[0])):
        assert match(states, [0, 1]).spans() == [(2, 6)]
        assert match(states, [0, 1]).intersection.tolist() == [1]
        assert match(states, [0]).n_candidates == 0
        assert match(states, [0], threshold=float(below)).spans() == [(2, 6)]


def test_empty_documents_and_integer_states():
    x = np.zeros((10, 2), np.int32)
    x[2:5, 0] = 1
    bounds = [0, 0, 4, 4, 10]
    got = match(x, [0], threshold=1, boundaries=bounds)
    assert got.spans() == [(2, 4)]  # (4, 5) is shorter than min_length
    assert got.document.tolist() == [1]
    ref, _ = match_ref(x, [0], 1, (1, 0), 2, 10**9, bounds)
    assert [tuple(r) for r in rows_of(got)] == ref


def test_warm_up():
    from workbench.store.search import warm_up

    assert warm_up() >= 0.0
