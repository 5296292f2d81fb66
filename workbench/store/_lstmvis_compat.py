"""``compat="lstmvis"``: selection and match exactly as LSTMVis computes them.

The rules below are those of LSTMVis (HendrikStrobelt/LSTMVis at e0628ca, API v2): the browser
client's brush selection (``LSTMController.cellSelection``) on the values its server sends
(``/context``), and the server's match (``LSTMDataHandler.query_similar_activations`` as
``lstm_server.match`` calls it). ``tests/lstmvis_reference.py`` is a slow reading of the same
rules that the tests hold this module to.

Selection
---------
The corpus is one flat stream (documents laid end to end). LSTMVis shows ``tanh(value)``
computed in float32 and rounded to 5 decimals; a unit is on iff that shown value is
``>= threshold``. Unit ``u`` is selected iff it is on at every step of ``[start, end)`` and off
at every step of ``[start - left, start)`` and ``[end, end + right)``. A padded range reaching
outside the stream selects nothing (the client compares signatures of unequal length).

Match
-----
A unit is on iff its float32 value is ``>= arctanh(threshold)`` (compared in float64). With
``cl = left > 0`` and ``cr = right > 0`` (padding is yes/no) and ``S`` the ``k`` selected
cells:

1. ``count[t]``: cells of ``S`` on at step ``t``, over the first ``W`` steps (``W = T``
   precise, ``min(T, 500_000)`` fast).
2. For ``level = k, k - 1, ...`` while ``level > 0`` and fewer than ``N`` candidates are
   collected (``N = 10_000`` precise, ``1_000`` fast): every maximal run ``[a, b)`` of
   ``count >= level`` of length ``>= 2`` gives ``(length, a, h)`` with the heuristic
   ``h = level - cl * prev - cr * next`` (``h = 0`` without padding): ``prev = count[a-1]``
   (for ``a = 0``: ``min(count[W - 1], level)``, LSTMVis's wrap-around), ``next = count[b]``
   (0 for ``b = W``, where LSTMVis fails with an IndexError). The runs of one level form a
   Python set; iterating it, each ``(length, a)`` not collected yet is appended.
3. Candidates are sorted by ``h``, largest first, keeping their order within ties (stable);
   the first ``N`` are kept.
4. A candidate ``(length, a)`` with ``a < 1`` or ``a + length + 1 > T`` is dropped. Unit ``u``
   shows the pattern iff it is on over ``[a, a + length)``, off at ``a - 1`` if ``cl`` and off
   at ``a + length`` if ``cr``; ``P`` the units showing it, ``intersection = |P & S|``,
   ``union = |P | S|``. The histograms count the lengths of all scored candidates and of
   those with ``intersection = k``.
5. Stable sort by (largest intersection, smallest union, longest); the first ``top_k``.

The order within a tie group of step 5 is candidate order, which inside one level is CPython's
set order of the ``(length, a, h)`` int tuples: it is reproduced here on the same CPython.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

FAST = (500_000, 1_000)  # (steps searched, candidates kept) of LSTMVis's "fast" mode
PRECISE_CANDIDATES = 10_000
ROUND_DIGITS = 5  # the server rounds shown values to 5 decimals


# ----------------------------------------------------------------------------- selection


def _f32_of(key: int) -> np.float32:
    """The float32 with monotone integer key ``key`` (negative keys: negative floats)."""
    bits = key if key >= 0 else (-key) | 0x80000000
    return np.array([bits], np.uint32).view(np.float32)[0]


@functools.lru_cache(maxsize=256)
def shown_cut(threshold: float) -> np.float32:
    """Smallest float32 ``y`` with ``round(float(y), 5) >= threshold`` (+inf if none).

    ``round`` is monotone, so ``round(float(y), 5) >= threshold`` iff ``y >= shown_cut``.
    """
    lo, hi = -0x7F800000, 0x7F800000  # -inf, +inf

    def ok(key: int) -> bool:
        return round(float(_f32_of(key)), ROUND_DIGITS) >= threshold

    if ok(lo):
        return _f32_of(lo)
    if not ok(hi):
        return np.float32(np.inf)
    while hi - lo > 1:  # ok(hi) and not ok(lo)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return _f32_of(hi)


def shown_on(values: np.ndarray, threshold: float) -> np.ndarray:
    """``[time, units]`` bool: LSTMVis's shown value ``round(tanh(x), 5) >= threshold``."""
    shown = np.tanh(np.asarray(values, dtype=np.float32))
    with np.errstate(invalid="ignore"):
        return shown >= shown_cut(float(threshold))


def select_window(states, start: int, end: int, pad: tuple[int, int]):
    """``(lo, hi)`` rows LSTMVis's selection reads, or None when they leave the stream."""
    time = int(states.shape[0])
    lo, hi = start - pad[0], end + pad[1]
    return None if lo < 0 or hi > time else (lo, hi)


# ----------------------------------------------------------------------------- match


def match_cut(threshold: float) -> float:
    """The raw-value threshold of LSTMVis's match: ``arctanh(threshold)``."""
    return float(np.arctanh(np.float64(threshold)))


def check_threshold(threshold: float) -> None:
    """LSTMVis's match threshold is a tanh value: it must lie in (-1, 1)."""
    from workbench.store.search import SearchError

    if not -1.0 < threshold < 1.0:
        raise SearchError(
            f"compat='lstmvis' compares raw values with arctanh(threshold), so the threshold "
            f"must lie in (-1, 1), got {threshold!r}; try 0.3"
        )


def mode_limits(mode: str, time: int) -> tuple[int, int]:
    """``(steps searched, candidates kept)`` of LSTMVis's ``fast`` / ``precise`` mode."""
    if mode == "fast":
        return min(time, FAST[0]), FAST[1]
    return time, PRECISE_CANDIDATES


def candidates(count, k, pad, min_length, n_keep, level_runs):
    """LSTMVis's candidate list: ``(length, start, heuristic, level)`` arrays, kept order.

    Parameters
    ----------
    count : np.ndarray
        ``[W]`` selected cells on per step (the searched window).
    k : int
        Selected cells.
    pad : (int, int)
        Padding; only ``> 0`` matters.
    min_length : int
        Shortest run (LSTMVis: 2).
    n_keep : int
        Candidates collected before the level loop stops, then kept after the sort.
    level_runs : callable
        The run-listing kernel of :mod:`workbench.store.search` (counts new runs per level).

    Returns
    -------
    tuple of np.ndarray
        ``length, start, heuristic, level``, each ``[candidate]``, in LSTMVis's order after
        its heuristic sort and cut; the lowest level looked at.
    """
    w = int(count.size)
    if w == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, z, k
    cl, cr = int(pad[0] > 0), int(pad[1] > 0)
    per_level = np.zeros(k + 1, np.int64)
    none = np.zeros(0, np.int64)
    level_runs(count, np.array([0, w], np.int64), k, int(min_length), 0, per_level, none, none)
    parts = []
    total, level = 0, k
    c64 = count.astype(np.int64)
    tail = np.r_[c64, 0]  # reduceat needs an index past every run's end
    for level in range(k, 0, -1):
        if total >= n_keep:
            level += 1
            break
        total += int(per_level[level])
        if per_level[level] == 0:
            continue  # no new run: the set adds nothing new, whatever its order
        on = np.concatenate(([False], c64 >= level, [False]))
        edges = np.flatnonzero(on[1:] != on[:-1])
        a, b = edges[0::2], edges[1::2]
        keep = b - a >= min_length
        a, b = a[keep], b[keep]
        prev = np.where(a > 0, c64[np.maximum(a - 1, 0)], min(int(c64[w - 1]), level))
        nxt = np.where(b < w, c64[np.minimum(b, w - 1)], 0)
        h = level - cl * prev - cr * nxt if cl or cr else np.zeros_like(a)
        # new iff not a run of a higher level: its smallest count is this level
        new = np.minimum.reduceat(tail, np.stack([a, b], 1).ravel())[0::2] == level
        # LSTMVis's order: iteration order of the set of the level's (length, a, h) tuples
        runs = set(zip((b - a).tolist(), a.tolist(), h.tolist(), strict=True))
        flat = np.fromiter(itertools.chain.from_iterable(runs), np.int64, 3 * len(runs))
        rows = flat.reshape(-1, 3)
        rows = rows[new[np.searchsorted(a, rows[:, 1])]]
        parts.append(np.c_[rows, np.full(len(rows), level)])
    else:
        level = 1
    if not parts:
        z = np.zeros(0, np.int64)
        return z, z, z, z, max(level, 1)
    arr = np.concatenate(parts)
    order = np.argsort(-arr[:, 2], kind="stable")[: int(n_keep)]
    arr = arr[order]
    return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], max(level, 1)


def rank(inter: np.ndarray, union: np.ndarray, length: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the ``top_k`` best: stable by (-intersection, union, -length)."""
    return np.lexsort((np.arange(inter.size), -length, union, -inter))[: int(top_k)]


def histogram(lengths: np.ndarray) -> np.ndarray:
    """``np.bincount`` of the lengths (empty for none)."""
    return np.bincount(lengths) if lengths.size else np.zeros(0, np.int64)
