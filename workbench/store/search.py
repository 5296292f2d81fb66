"""LSTMVis hypothesis search: brush selection and corpus match.

Two pure functions on ``states [time, units]`` arrays (numpy arrays, memory maps, zarr arrays
or a :class:`workbench.StateStore` view):

- :func:`select_cells`: the units that are on over a brushed range and off around it;
- :func:`match`: the corpus spans where the selected units are on together, scored and ranked
  by LSTMVis's criteria (``lstmdata/data_handler.py::query_similar_activations``).

Two rule sets. The default (below) thresholds the values themselves, keeps the full padding
in the match, never crosses a document boundary, scores every candidate (no 500,000-step
window, no cut of the candidate list) and breaks ties by the earliest start.
``compat="lstmvis"`` reproduces LSTMVis exactly (tanh shown values, one step of padding per
side in the match, one flat stream, its candidate cut and order, the fast mode's
500,000-step window): see :mod:`workbench.store._lstmvis_compat`. This module is the one
Python implementation of the selection rule; the viz, the widgets and the app call it.

Default rules (the tests check them against a slow reference written from this text)
-------------------------------------------------------------------------------
A unit is *on* at a step iff its value is ``>= threshold`` (NaN is off). Steps outside the
document (before its first or after its last token) count as off: the model's state before
the first token is zero.

Selection: for the brush ``[start, end)`` and padding ``(left, right)``, unit ``u`` is selected
iff it is on at every step of ``[start, end)`` and off at every step of
``[start - left, start)`` and ``[end, end + right)``.

Match for the selected cells ``S`` (``k = |S|``):

1. ``count[t]`` = number of cells of ``S`` on at step ``t``.
2. For ``level = k, k - 1, ..., 1``: every maximal run of steps inside one document with
   ``count >= level`` and length ``>= min_length`` is a candidate ``(start, length)``
   (duplicates kept once). Stop after the first level at which at least ``max_candidates``
   candidates exist (LSTMVis "until enough candidates").
3. A unit *shows the pattern* over a candidate iff it satisfies the selection rule with the
   brush ``[start, start + length)`` and the same padding. With ``P`` the units showing it:
   ``intersection = |P & S|``, ``union = |P | S|``.
4. Rank by largest intersection, then smallest union, then longest span, then earliest start;
   return the first ``top_k``. The length histograms count every candidate ("fuzzy") and the
   candidates whose intersection is ``k`` ("strict").
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Matches",
    "SearchError",
    "aggregate_meta",
    "match",
    "select_cells",
    "warm_up",
]

_BLOCK = 1 << 20  # rows read per block when thresholding the selected columns


class SearchError(ValueError):
    """A search request that cannot be answered; the message names the problem and the fix."""


@dataclass
class Matches:
    """Ranked corpus spans where the selected cells are on together.

    Attributes
    ----------
    start, length : np.ndarray
        ``[match]`` global step of the first matched step and the span length.
    intersection, union : np.ndarray
        ``[match]`` cells showing the off-on-off pattern shared with / joined with the selection.
    document : np.ndarray
        ``[match]`` index of the document holding the span.
    cells : np.ndarray
        The selected cells (sorted).
    fuzzy_histogram, strict_histogram : np.ndarray
        Number of candidates per span length (index = length), all candidates / those whose
        intersection is the whole selection.
    n_candidates : int
        Candidates scored before ranking.
    level : int
        Lowest number of co-active cells that produced candidates.
    """

    start: np.ndarray
    length: np.ndarray
    intersection: np.ndarray
    union: np.ndarray
    document: np.ndarray
    cells: np.ndarray
    fuzzy_histogram: np.ndarray
    strict_histogram: np.ndarray
    n_candidates: int
    level: int
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.start)

    @property
    def jaccard(self) -> np.ndarray:
        """``intersection / union`` per match."""
        return self.intersection / np.maximum(self.union, 1)

    def spans(self) -> list[tuple[int, int]]:
        """``(start, end)`` global step ranges, best first."""
        return [(int(s), int(s + n)) for s, n in zip(self.start, self.length, strict=True)]

    def to_frame(self):
        """The ranked matches as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            {
                "start": self.start,
                "length": self.length,
                "document": self.document,
                "intersection": self.intersection,
                "union": self.union,
                "jaccard": self.jaccard,
            }
        )


# ----------------------------------------------------------------------------- validation


def _check_threshold(threshold: float) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise SearchError(f"threshold must be a number, got {threshold!r}") from None
    if not math.isfinite(value):
        raise SearchError(f"threshold must be a finite number, got {threshold!r}; try 0.3")
    return value


def _check_pad(pad) -> tuple[int, int]:
    try:
        left, right = (int(p) for p in pad)
    except (TypeError, ValueError):
        raise SearchError(f"pad must be (left, right) step counts, got {pad!r}") from None
    if left < 0 or right < 0:
        raise SearchError(f"pad steps must be >= 0, got {pad!r}")
    return left, right


def _shape(states) -> tuple[int, int]:
    shape = getattr(states, "shape", None)
    if shape is None or len(shape) != 2:
        raise SearchError(
            f"states must be a [time, units] array, got shape {shape!r}; "
            "pass one document's or the corpus's states"
        )
    return int(shape[0]), int(shape[1])


def _check_cells(cells, units: int) -> np.ndarray:
    try:
        raw = np.asarray(cells).ravel()
    except (TypeError, ValueError):
        raise SearchError(f"cells must be a list of unit indices, got {cells!r}") from None
    if raw.dtype == bool or not (raw.size == 0 or np.issubdtype(raw.dtype, np.number)):
        raise SearchError(f"cells must be integer unit indices, got {raw.tolist()[:8]}")
    if raw.size and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
        bad = raw[~(np.isfinite(raw) & (raw == np.round(raw)))]
        raise SearchError(f"cell {bad[0]} is not an integer unit index (it is not truncated)")
    arr = np.unique(raw.astype(np.int64))
    if arr.size == 0:
        raise SearchError(
            "the cell list is empty; brush a range where some units are on "
            "(or lower the threshold) before matching"
        )
    if arr[0] < 0 or arr[-1] >= units:
        raise SearchError(f"cell indices must lie in [0, {units}), got {arr.tolist()}")
    return arr


def _boundaries(boundaries, time: int) -> np.ndarray:
    if boundaries is None:
        return np.array([0, time], dtype=np.int64)
    b = np.asarray(boundaries, dtype=np.int64).ravel()
    if b.size < 2 or b[0] != 0 or b[-1] != time or np.any(np.diff(b) < 0):
        raise SearchError(
            "boundaries must be the document offsets [0, ..., time] (non-decreasing), "
            f"got {b[:5].tolist()}... for {time} steps"
        )
    return b


def _dtype_threshold(dtype: np.dtype, threshold: float):
    """Smallest ``dtype`` value ``>= threshold``: ``x >= t`` then equals the exact test."""
    if not np.issubdtype(dtype, np.floating):
        return threshold
    t = dtype.type(threshold)
    if float(t) < threshold:
        t = np.nextafter(t, dtype.type(np.inf))
    return t


def _on(block: np.ndarray, threshold: float) -> np.ndarray:
    return block >= _dtype_threshold(block.dtype, threshold)


# ----------------------------------------------------------------------------- selection


def _check_compat(compat) -> str | None:
    if compat in (None, "lstmvis"):
        return compat
    raise SearchError(f"unknown compat {compat!r}; use None (default rules) or 'lstmvis'")


def select_cells(
    states,
    start: int,
    end: int,
    threshold: float = 0.3,
    pad: tuple[int, int] = (1, 0),
    compat: str | None = None,
) -> np.ndarray:
    """Units on over the brush ``[start, end)`` and off on the padding around it.

    Parameters
    ----------
    states : array-like
        ``[time, units]`` states of one document (default) or of the whole flat corpus
        (``compat="lstmvis"``, where the padding may reach into the neighbouring document).
    start, end : int
        The brushed range of steps, ``0 <= start < end <= time``.
    threshold : float
        A unit is on at a step iff its value is ``>= threshold`` (``compat="lstmvis"``: iff
        LSTMVis's shown value, ``tanh`` in float32 rounded to 5 decimals, is).
    pad : (int, int)
        Steps before ``start`` and from ``end`` on where the unit must be off (default: steps
        outside the document count as off; ``compat="lstmvis"``: padding reaching outside
        ``states`` selects nothing, as in LSTMVis's client).
    compat : None or "lstmvis"
        The rule set (see the module docstring).

    Returns
    -------
    np.ndarray
        Sorted unit indices (int64).
    """
    time, _ = _shape(states)
    threshold = _check_threshold(threshold)
    left, right = _check_pad(pad)
    compat = _check_compat(compat)
    start, end = int(start), int(end)
    if not 0 <= start < end <= time:
        raise SearchError(
            f"brush [{start}, {end}) lies outside the document of {time} steps; "
            f"use 0 <= start < end <= {time}"
        )
    if compat == "lstmvis":
        from workbench.store import _lstmvis_compat as lv

        rows = lv.select_window(states, start, end, (left, right))
        if rows is None:
            return np.zeros(0, np.int64)
        lo, hi = rows
        window = lv.shown_on(np.asarray(states[lo:hi]), threshold)
    else:
        lo, hi = max(start - left, 0), min(end + right, time)
        window = _on(np.asarray(states[lo:hi]), threshold)
    inside = window[start - lo : end - lo].all(axis=0)
    outside = ~window[: start - lo].any(axis=0) & ~window[end - lo :].any(axis=0)
    return np.flatnonzero(inside & outside).astype(np.int64)


# ----------------------------------------------------------------------------- kernels
#
# The match runs in compiled passes (numba, cached on disk next to UMAP's kernels): count the
# selected units on per step, list the runs of every co-activation level in one sweep, and
# test the off-on-off pattern unit by unit with early exit (most units fail at the first or
# second step looked at). Values are read in place: a raw store's unit-major chunk files
# through their memory maps, a numpy array through a transposed view. float16 values are
# tested on their bit patterns: the patterns numpy's own ``>=`` calls on form at most two
# intervals (positive values and infinity; negative values down to the threshold), so the
# on/off decision is numpy's, bit for bit, and the counting loop vectorises.


def _is_on(v, iv, t):  # pragma: no cover - replaced by the numba overload in _kernels
    """On test of one value: ``v >= t`` for floats, bit-pattern intervals ``iv`` otherwise."""
    raise NotImplementedError


def _count_on_py(a, rows, width, iv, t, count):
    """``count[p] += on(a[u, p])`` for ``u`` in ``rows``, ``p < width``."""
    for j in range(rows.size):
        u = rows[j]
        for p in range(width):
            count[p] += _is_on(a[u, p], iv, t)


def _shows_py(a, b, width, base, units, iv, t, lo, s, e, hi, i0, i1, out):
    """``out[i] +=`` units of ``units`` on over ``[s, e)`` and off over ``[lo, s)``, ``[e, hi)``.

    For candidates ``i0 <= i < i1``; step ``p`` is column ``p - base`` of ``a`` when that is
    below ``width``, else column ``p - base - width`` of ``b`` (the next block). Per unit, a
    first loop without data-dependent branches keeps many memory reads in flight (on at
    ``s``, off at ``s - 1``: most units fail there); the survivors are then checked whole.
    """
    first = np.empty(i1 - i0, np.bool_)
    for j in range(units.size):
        u = units[j]
        for i in range(i0, i1):
            p = s[i] - base
            q = p - 1 if s[i] > lo[i] else p
            v = a[u, p] if p < width else b[u, p - width]
            w = a[u, q] if q < width else b[u, q - width]
            first[i - i0] = _is_on(v, iv, t) & ((q == p) | (_is_on(w, iv, t) ^ True))
        for i in range(i0, i1):
            if not first[i - i0]:
                continue
            ok = True
            for p in range(s[i] + 1 - base, e[i] - base):
                v = a[u, p] if p < width else b[u, p - width]
                if not _is_on(v, iv, t):
                    ok = False
                    break
            if ok:
                for p in range(lo[i] - base, s[i] - 1 - base):
                    v = a[u, p] if p < width else b[u, p - width]
                    if _is_on(v, iv, t):
                        ok = False
                        break
            if ok:
                for p in range(e[i] - base, hi[i] - base):
                    v = a[u, p] if p < width else b[u, p - width]
                    if _is_on(v, iv, t):
                        ok = False
                        break
            if ok:
                out[i] += 1


def _level_runs_py(count, bounds, k, min_length, stop, per_level, starts, lengths):
    """Runs of ``count >= level`` inside each document, each listed at its own level only.

    A maximal run at ``level`` is a new candidate iff its smallest count is ``level``
    (otherwise the same span is a run, already listed, of ``level + 1``). With ``stop = 0``
    the runs of length ``>= min_length`` are counted per level into ``per_level``; else the
    runs of the levels ``>= stop`` are written to ``starts`` / ``lengths``. Returns how many.
    """
    opened = np.zeros(k + 1, np.int64)
    hit = np.zeros(k + 1, np.bool_)
    m = 0
    for d in range(bounds.size - 1):
        d0, d1 = bounds[d], bounds[d + 1]
        prev = 0
        p = d0
        while True:
            while p < d1 and count[p] == prev:  # nothing opens or closes
                p += 1
            c = np.int64(count[p]) if p < d1 else 0
            if c < prev:
                for level in range(c + 1, prev + 1):
                    if hit[level] and p - opened[level] >= min_length:
                        if stop == 0:
                            per_level[level] += 1
                        elif level >= stop:
                            starts[m] = opened[level]
                            lengths[m] = p - opened[level]
                            m += 1
            elif c > prev:
                for level in range(prev + 1, c + 1):
                    opened[level] = p
                    hit[level] = False
            if c > 0:
                hit[c] = True
            prev = c
            if p >= d1:
                break
            p += 1
    return m


_KERNELS: dict[str, Any] = {}
_KERNELS_LOCK = threading.Lock()


def _kernels() -> dict[str, Any]:
    """The compiled kernels (compiled on first use, then loaded from numba's disk cache)."""
    if _KERNELS:
        return _KERNELS
    with _KERNELS_LOCK:
        if not _KERNELS:
            _KERNELS.update(_compile())
    return _KERNELS


def _compile() -> dict[str, Any]:
    from workbench.store.projection import _numba_cache

    _numba_cache()
    import numba
    from numba import types
    from numba.extending import overload

    @overload(_is_on, jit_options={"cache": True})
    def _is_on_impl(v, iv, t):
        if isinstance(v, types.Float):
            return lambda v, iv, t: v >= t
        return lambda v, iv, t: (
            (((v - iv[0]) & 0xFFFF) <= iv[1]) | (((v - iv[2]) & 0xFFFF) <= iv[3])
        )

    jit = numba.njit(cache=True, nogil=True)
    return {
        "count_on": jit(_count_on_py),
        "shows": jit(_shows_py),
        "level_runs": jit(_level_runs_py),
    }


def warm_up() -> float:
    """Compile (or load from numba's disk cache) the match kernels; returns the seconds taken.

    The first match in a process does this itself; an app can call it at start-up instead.
    """
    t0 = time.perf_counter()
    x = (np.random.default_rng(0).random((64, 6)) > 0.5).astype(np.float16)
    for dtype in (np.float16, np.float32):
        match(x.astype(dtype), [0, 1], top_k=3, min_length=1)
    return time.perf_counter() - t0


def _intervals(on: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(lo1, width1, lo2, width2)``: the on bit patterns as two intervals, if they are."""
    edges = np.flatnonzero(np.diff(np.r_[False, on, False].astype(np.int8)))
    if edges.size == 0 or edges.size > 4:
        return None
    runs = [(int(a), int(b) - 1 - int(a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    lo1, w1 = runs[0]
    lo2, w2 = runs[-1]
    return lo1, w1, lo2, w2


_BINARY = (1, 0, 1, 0)  # 0/1 on matrices: on iff the value is 1


class _Source:
    """The values searched and how the kernels read them: threshold test and column blocks."""

    def __init__(self, states, threshold: float) -> None:
        self.states = states
        self.threshold = threshold
        self.time, self.units = _shape(states)
        self.chunked = bool(getattr(states, "unit_major", False)) and hasattr(states, "block")
        dtype = np.dtype(getattr(states, "dtype", np.float64))
        self.dtype = dtype
        self.iv, self.t = _BINARY, 0.0
        if dtype == np.float16:
            every = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
            self.iv = _intervals(_on(every, threshold))
        elif dtype in (np.float32, np.float64):
            self.t = float(_dtype_threshold(dtype, threshold))
        self.direct = (
            dtype in (np.float16, np.float32, np.float64)
            and self.iv is not None
            and (self.chunked or isinstance(states, np.ndarray))
        )
        self.chunk = int(states.chunk) if self.chunked else max(self.time, 1)

    def block(self, c: int) -> np.ndarray:
        """``[units, chunk]`` values of column block ``c`` as the kernels read them."""
        if self.chunked:
            a = self.states.block(c).view(np.ndarray)
        else:
            a = np.asarray(self.states).view(np.ndarray).T
        return a.view(np.uint16) if self.dtype == np.float16 else a


def _count_and_on(src: _Source, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``count[time]`` of selected cells on; the ``[time, k]`` on matrix when not read in place."""
    time = src.time
    dtype = np.int16 if cells.size < 1 << 15 else np.int32
    if src.direct:
        count_on = _kernels()["count_on"]
        count = np.zeros(time, dtype)
        c = src.chunk
        for j in range(-(-time // c)):
            a, b = j * c, min(time, (j + 1) * c)
            count_on(src.block(j), cells, b - a, src.iv, src.t, count[a:b])
        return count, None
    on = _read_on(src.states, cells, src.threshold).view(np.uint8)
    return on.sum(axis=1, dtype=dtype), on


def _shows(src: _Source, on_k, units, lo, s, e, hi) -> np.ndarray:
    """``[candidate]`` units of ``units`` showing the off-on-off pattern (sorted candidates)."""
    shows = _kernels()["shows"]
    n = s.size
    out = np.zeros(n, np.int64)
    if n == 0 or units.size == 0:
        return out
    window = (lo, s, e, hi)
    if on_k is not None:  # the selected cells, thresholded already
        a = on_k.T
        shows(a, a, src.time, 0, units, _BINARY, 0.0, *window, 0, n, out)
        return out
    if not src.direct:  # any array-like: read each window
        for i in range(n):
            w = _on(_read_rows(src.states, lo[i], hi[i]), src.threshold).view(np.uint8).T
            shows(w, w, w.shape[1], lo[i], units, _BINARY, 0.0, *window, i, i + 1, out)
        return out
    c = src.chunk
    n_blocks = -(-src.time // c)
    block = lo // c  # lo is non-decreasing with s
    cut = np.flatnonzero(np.diff(block)) + 1
    for i0, i1 in zip(np.r_[0, cut].tolist(), np.r_[cut, n].tolist(), strict=True):
        j = int(block[i0])
        a = src.block(j)
        b = src.block(j + 1) if j + 1 < n_blocks else a
        base = j * c
        x = i0
        for y in [*(i0 + np.flatnonzero(hi[i0:i1] - base > 2 * c)).tolist(), i1]:
            if x < y:
                shows(a, b, c, base, units, src.iv, src.t, *window, x, y, out)
            if y < i1:  # a window reaching beyond the next block: read it whole
                w = _on(_read_rows(src.states, lo[y], hi[y]), src.threshold).view(np.uint8).T
                shows(w, w, w.shape[1], lo[y], units, _BINARY, 0.0, *window, y, y + 1, out)
            x = y + 1
    return out


# ----------------------------------------------------------------------------- match


def _read_on(states, cells: np.ndarray, threshold: float) -> np.ndarray:
    """``[time, k]`` bool: the selected cells thresholded, read block by block."""
    reader = getattr(states, "columns_on", None)
    if reader is not None:
        return reader(cells, threshold)
    time = int(states.shape[0])
    out = np.empty((time, cells.size), dtype=bool)
    oindex = getattr(states, "oindex", None)
    for a in range(0, time, _BLOCK):
        b = min(a + _BLOCK, time)
        block = oindex[a:b, cells] if oindex is not None else states[a:b, cells]
        out[a:b] = _on(np.asarray(block), threshold)
    return out


def _doc_of(positions: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.searchsorted(bounds, positions, side="right") - 1


def _read_rows(states, lo: int, hi: int) -> np.ndarray:
    reader = getattr(states, "rows", None)
    if reader is not None:
        return reader(int(lo), int(hi))
    return np.asarray(states[int(lo) : int(hi)])


def match(
    states,
    cells,
    threshold: float = 0.3,
    pad: tuple[int, int] = (1, 0),
    top_k: int = 50,
    min_length: int = 2,
    max_candidates: int | None = None,
    boundaries=None,
    compat: str | None = None,
    mode: str = "precise",
) -> Matches:
    """Corpus spans where the selected cells are on together, ranked as in LSTMVis.

    Parameters
    ----------
    states : array-like
        ``[time, units]`` states of the whole corpus (documents laid end to end). Anything
        with ``shape`` and ``[rows, cols]`` indexing; a :class:`workbench.StateStore` view
        is read in place, only the selected columns for the candidate search.
    cells : sequence of int
        The selected units (from :func:`select_cells`).
    threshold : float
        On means ``>= threshold``.
    pad : (int, int)
        Off steps required before / after a span for a unit to show the pattern.
    top_k : int
        Matches returned.
    min_length : int
        Shortest candidate span.
    max_candidates : int, optional
        Stop lowering the co-activation level once this many candidates exist (default
        10,000; ``compat="lstmvis"``: LSTMVis's 10,000 precise / 1,000 fast, also the number
        of candidates kept after its heuristic sort).
    boundaries : array-like of int, optional
        Document offsets ``[0, ..., time]``; spans never cross them (``compat="lstmvis"``:
        one flat stream, the offsets only name each span's document). Default: one document.
    compat : None or "lstmvis"
        The rule set (see the module docstring).
    mode : "precise" or "fast"
        LSTMVis's search mode (``compat="lstmvis"`` only): ``fast`` looks at the first
        500,000 steps and keeps 1,000 candidates.

    Returns
    -------
    Matches

    Notes
    -----
    The first call in a process compiles three small numba kernels (about 2 s, once per
    machine: they are cached on disk) or loads them from the cache; :func:`warm_up` does it
    ahead of time.
    """
    time, units = _shape(states)
    threshold = _check_threshold(threshold)
    left, right = _check_pad(pad)
    cells = _check_cells(cells, units)
    compat = _check_compat(compat)
    if mode not in ("precise", "fast"):
        raise SearchError(f"unknown mode {mode!r}; use 'precise' or 'fast'")
    if mode == "fast" and compat != "lstmvis":
        raise SearchError("mode='fast' is LSTMVis's sampled search; pass compat='lstmvis' too")
    limit = None if max_candidates is None else int(max_candidates)
    if int(top_k) < 1 or int(min_length) < 1 or (limit is not None and limit < 1):
        raise SearchError("top_k, min_length and max_candidates must be >= 1")
    bounds = _boundaries(boundaries, time)
    if compat == "lstmvis":
        from workbench.store import _lstmvis_compat as lv

        window, keep = lv.mode_limits(mode, time)
        return _match_lstmvis(
            states, cells, threshold, (left, right), int(top_k), int(min_length),
            window, keep if limit is None else limit, bounds,
        )  # fmt: skip
    max_candidates = 10_000 if limit is None else limit
    k = cells.size
    ker = _kernels()

    src = _Source(states, threshold)
    count, on_k = _count_and_on(src, cells)

    # candidates: count the new runs per level, stop at the first level reaching enough
    per_level = np.zeros(k + 1, np.int64)
    none = np.zeros(0, np.int64)
    ker["level_runs"](count, bounds, k, int(min_length), 0, per_level, none, none)
    total, level = 0, k
    for level in range(k, 0, -1):
        total += int(per_level[level])
        if total >= max_candidates:
            break
    starts = np.empty(total, np.int64)
    lengths = np.empty(total, np.int64)
    ker["level_runs"](count, bounds, k, int(min_length), level, per_level, starts, lengths)
    key = starts * (time + 1) + lengths  # by start, then length (listed in order of end)
    if np.any(key[1:] < key[:-1]):
        order = np.argsort(key)
        starts, lengths = starts[order], lengths[order]

    docs = _doc_of(starts, bounds)
    ends = starts + lengths
    lo = np.maximum(starts - left, bounds[docs])
    hi = np.minimum(ends + right, bounds[docs + 1])
    window = (lo, starts, ends, hi)
    inter = _shows(src, on_k, cells if on_k is None else np.arange(k), *window)

    idx, union = _score_unions(src, cells, window, lengths, inter, top_k)
    fuzzy = np.bincount(lengths, minlength=int(min_length)) if lengths.size else np.zeros(0, int)
    strict_len = lengths[inter == k]
    strict = (
        np.bincount(strict_len, minlength=int(min_length)) if strict_len.size else np.zeros(0, int)
    )
    return Matches(
        start=starts[idx],
        length=lengths[idx],
        intersection=inter[idx],
        union=union,
        document=docs[idx],
        cells=cells,
        fuzzy_histogram=fuzzy,
        strict_histogram=strict,
        n_candidates=int(starts.size),
        level=int(level),
    )


def _match_lstmvis(states, cells, threshold, pad, top_k, min_length, window, keep, bounds):
    """``compat="lstmvis"`` match over the flat stream (see ``_lstmvis_compat``)."""
    from workbench.store import _lstmvis_compat as lv

    lv.check_threshold(threshold)
    time, units = _shape(states)
    k = cells.size
    src = _Source(states, lv.match_cut(threshold))
    count, on_k = _count_and_on(src, cells)
    length, start, _h, _level, level = lv.candidates(
        count[:window], k, pad, min_length, keep, _kernels()["level_runs"]
    )
    inside = (start >= 1) & (start + length + 1 <= time)
    length, start = length[inside], start[inside]
    # the kernels read candidates in order of position; LSTMVis's order is restored after
    by_pos = np.lexsort((length, start))
    s, n = start[by_pos], length[by_pos]
    lo, e, hi = s - int(pad[0] > 0), s + n, s + n + int(pad[1] > 0)
    inter = np.empty(start.size, np.int64)
    union = np.empty(start.size, np.int64)
    inter[by_pos] = _shows(src, on_k, cells if on_k is None else np.arange(k), lo, s, e, hi)
    # unions only break ties of intersection: only candidates that can reach the top_k need one
    union[:] = units + 1
    if start.size:
        need = inter[by_pos] >= -np.sort(-inter)[min(top_k, start.size) - 1]
        others = np.setdiff1d(np.arange(units), cells)
        part = (x[need] for x in (lo, s, e, hi))
        union[by_pos[need]] = k + _shows(src, None, others, *part)
    best = lv.rank(inter, union, length, top_k)
    return Matches(
        start=start[best],
        length=length[best],
        intersection=inter[best],
        union=union[best],
        document=_doc_of(start[best], bounds),
        cells=cells,
        fuzzy_histogram=lv.histogram(length),
        strict_histogram=lv.histogram(length[inter == k]),
        n_candidates=int(start.size),
        level=int(level),
        extra={"compat": "lstmvis", "steps_searched": int(window), "candidates_kept": int(keep)},
    )


def _score_unions(src: _Source, cells, window, lengths, inter, top_k):
    """The ``top_k`` best candidates and their unions; returns (ranked idx, union).

    Unions cost a look at every unit, so they are computed in batches, best candidates first
    by the ranking without the union (largest intersection, longest, earliest), and the
    search stops once no candidate left can enter the top ``top_k``: every union is at least
    ``k``, so a later candidate can only beat a ranked one by a larger intersection or by a
    smaller union. The result is the same as ranking every candidate.
    """
    starts = window[1]
    if starts.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    k = cells.size
    top_k = min(int(top_k), starts.size)
    others = np.setdiff1d(np.arange(src.units), cells)
    order = np.lexsort((starts, -lengths, -inter))  # the ranking, union left out
    # only whole tie groups of intersection reaching the top_k can be ranked
    order = order[: np.count_nonzero(inter >= inter[order[top_k - 1]])]
    union = np.full(starts.size, -1, np.int64)
    done, batch = 0, max(2 * top_k, 128)
    best = np.zeros(0, np.int64)
    while done < order.size:
        todo = np.sort(order[done : done + batch])  # by position: neighbouring reads
        union[todo] = k + _shows(src, None, others, *(x[todo] for x in window))
        done += todo.size
        batch *= 2
        scored = order[:done]
        best = scored[np.lexsort((starts[scored], -lengths[scored], union[scored], -inter[scored]))]
        best = best[:top_k]
        if done < order.size and best.size == top_k:
            worst, nxt = best[-1], order[done]
            if inter[worst] > inter[nxt] or union[worst] == k:
                break
    return best, union[best]


# ----------------------------------------------------------------------------- meta tracks


def aggregate_meta(matches: Matches, meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Meta tracks over the matched spans.

    Parameters
    ----------
    matches : Matches
    meta : dict of str to array-like
        Per-step tracks ``[time]`` over the same global steps (bool, int or float).

    Returns
    -------
    dict
        Per track: ``mean`` over all matched steps (for a bool track, the share of matched
        steps where it is true), ``per_match`` ``[match]`` means, and for integer tracks
        ``counts`` (value -> matched steps).
    """
    out: dict[str, dict[str, Any]] = {}
    if len(matches) == 0:
        return {name: {"mean": float("nan"), "per_match": np.zeros(0)} for name in meta}
    for name, track in meta.items():
        parts = [np.asarray(track[s:e]) for s, e in matches.spans()]
        values = np.concatenate(parts)
        per = np.array([p.astype(np.float64).mean() for p in parts])
        entry: dict[str, Any] = {"mean": float(np.mean(values, dtype=np.float64)), "per_match": per}
        if values.dtype.kind in "iub":
            vals, counts = np.unique(values, return_counts=True)
            entry["counts"] = dict(zip(vals.tolist(), counts.tolist(), strict=True))
        out[name] = entry
    return out
