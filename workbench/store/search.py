"""LSTMVis hypothesis search: brush selection and corpus match, with exact semantics.

Two pure functions on ``states [time, units]`` arrays (numpy arrays, memory maps, zarr arrays
or a :class:`workbench.StateStore` view):

- :func:`select_cells`: the units that are on over a brushed range and off around it;
- :func:`match`: the corpus spans where the selected units are on together, scored and ranked
  as LSTMVis does (``lstmdata/data_handler.py::query_similar_activations``), over every step
  of every document (no 500,000-step cap) and never across a document boundary.

Rules (the tests check them against a slow reference written straight from this text)
------------------------------------------------------------------------------------
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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Matches",
    "SearchError",
    "aggregate_meta",
    "match",
    "select_cells",
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
    arr = np.unique(np.asarray(cells, dtype=np.int64).ravel())
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


def select_cells(
    states, start: int, end: int, threshold: float = 0.3, pad: tuple[int, int] = (1, 0)
) -> np.ndarray:
    """Units on over the brush ``[start, end)`` and off on the padding around it.

    Parameters
    ----------
    states : array-like
        ``[time, units]`` states of one document.
    start, end : int
        The brushed range of steps, ``0 <= start < end <= time``.
    threshold : float
        A unit is on at a step iff its value is ``>= threshold``.
    pad : (int, int)
        Steps before ``start`` and from ``end`` on where the unit must be off (steps outside
        the document count as off).

    Returns
    -------
    np.ndarray
        Sorted unit indices (int64).
    """
    time, _ = _shape(states)
    threshold = _check_threshold(threshold)
    left, right = _check_pad(pad)
    start, end = int(start), int(end)
    if not 0 <= start < end <= time:
        raise SearchError(
            f"brush [{start}, {end}) lies outside the document of {time} steps; "
            f"use 0 <= start < end <= {time}"
        )
    lo, hi = max(start - left, 0), min(end + right, time)
    window = _on(np.asarray(states[lo:hi]), threshold)
    inside = window[start - lo : end - lo].all(axis=0)
    outside = ~window[: start - lo].any(axis=0) & ~window[end - lo :].any(axis=0)
    return np.flatnonzero(inside & outside).astype(np.int64)


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


def _runs(mask: np.ndarray, cuts: np.ndarray, min_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of True in ``mask`` split at the document starts ``cuts``."""
    m = mask.astype(np.int8)
    edges = np.zeros(m.size + 1, dtype=np.int8)
    edges[1:-1] = np.diff(m)
    edges[0] = m[0] if m.size else 0
    edges[-1] = -m[-1] if m.size else 0
    # a document start inside a run ends the run there and starts a new one
    inner = cuts[(cuts > 0) & (cuts < m.size)]
    inner = inner[m[inner - 1].astype(bool) & m[inner].astype(bool)]
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    if inner.size:
        starts = np.sort(np.concatenate([starts, inner]))
        ends = np.sort(np.concatenate([ends, inner]))
    keep = (ends - starts) >= min_length
    return starts[keep], ends[keep] - starts[keep]


def _doc_of(positions: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.searchsorted(bounds, positions, side="right") - 1


def _pattern(
    on: np.ndarray, start: int, length: int, lo: int, hi: int, left: int, right: int
) -> np.ndarray:
    """Pattern test; rows ``on[lo:hi]`` cover the padded span clipped to the document."""
    s, e = start - lo, start + length - lo
    pre = on[max(s - left, 0) : s]
    post = on[e : min(e + right, hi - lo)]
    return on[s:e].all(axis=0) & ~pre.any(axis=0) & ~post.any(axis=0)


def _intersections(
    on_k: np.ndarray,
    cum: np.ndarray | None,
    starts: np.ndarray,
    lengths: np.ndarray,
    bounds: np.ndarray,
    left: int,
    right: int,
) -> np.ndarray:
    """Selected cells showing the pattern, per candidate ``[candidate]``."""
    k = on_k.shape[1]
    docs = _doc_of(starts, bounds)
    d0, d1 = bounds[docs], bounds[docs + 1]
    ends = starts + lengths
    if cum is None:
        covered = np.ones((starts.size, k), dtype=bool)
    else:
        covered = ((cum[:, ends] - cum[:, starts]) == lengths[None, :]).T
    # off on the padding (only inside the document)
    ok = covered
    for j in range(1, left + 1):
        p = starts - j
        inside = p >= d0
        ok &= ~(on_k[np.where(inside, p, 0)] & inside[:, None])
    for j in range(right):
        p = ends + j
        inside = p < d1
        ok &= ~(on_k[np.where(inside, p, 0)] & inside[:, None])
    return ok.sum(axis=1)


def _read_rows(states, lo: int, hi: int) -> np.ndarray:
    reader = getattr(states, "rows", None)
    if reader is not None:
        return reader(lo, hi)
    return np.asarray(states[lo:hi])


def match(
    states,
    cells,
    threshold: float = 0.3,
    pad: tuple[int, int] = (1, 0),
    top_k: int = 50,
    min_length: int = 2,
    max_candidates: int = 10_000,
    boundaries=None,
) -> Matches:
    """Corpus spans where the selected cells are on together, ranked as in LSTMVis.

    Parameters
    ----------
    states : array-like
        ``[time, units]`` states of the whole corpus (documents laid end to end). Anything
        with ``shape`` and ``[rows, cols]`` indexing; a :class:`workbench.StateStore` view
        reads only the selected columns for the candidate search.
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
    max_candidates : int
        Stop lowering the co-activation level once this many candidates exist.
    boundaries : array-like of int, optional
        Document offsets ``[0, ..., time]``; spans never cross them. Default: one document.

    Returns
    -------
    Matches
    """
    time, units = _shape(states)
    threshold = _check_threshold(threshold)
    left, right = _check_pad(pad)
    cells = _check_cells(cells, units)
    if int(top_k) < 1 or int(min_length) < 1 or int(max_candidates) < 1:
        raise SearchError("top_k, min_length and max_candidates must be >= 1")
    bounds = _boundaries(boundaries, time)
    k = cells.size

    on_k = _read_on(states, cells, threshold)
    count = on_k.sum(axis=1, dtype=np.int32) if k > 1 else on_k[:, 0].astype(np.int32)

    found_s, found_n, found_lv, keys = [], [], [], []
    n_found, level = 0, k
    for level in range(k, 0, -1):
        s, n = _runs(count >= level, bounds, int(min_length))
        key = s * (time + 1) + n
        if keys and s.size:
            fresh = ~np.isin(key, np.concatenate(keys))
            s, n, key = s[fresh], n[fresh], key[fresh]
        keys.append(key)
        found_s.append(s)
        found_n.append(n)
        found_lv.append(np.full(s.size, level, dtype=np.int32))
        n_found += s.size
        if n_found >= max_candidates:
            break
    starts = np.concatenate(found_s) if found_s else np.zeros(0, np.int64)
    lengths = np.concatenate(found_n) if found_n else np.zeros(0, np.int64)
    levels = np.concatenate(found_lv) if found_lv else np.zeros(0, np.int32)
    order = np.lexsort((lengths, starts))
    starts, lengths, levels = starts[order], lengths[order], levels[order]

    cum = None
    if np.any(levels < k):
        cum = np.zeros((k, time + 1), dtype=np.int32)  # per cell, contiguous in time
        np.cumsum(np.ascontiguousarray(on_k.T), axis=1, out=cum[:, 1:])
    inter = _intersections(on_k, cum, starts, lengths, bounds, left, right)
    del cum

    top = _score_unions(
        states, cells, starts, lengths, inter, bounds, threshold, left, right, top_k
    )
    fuzzy = np.bincount(lengths, minlength=int(min_length)) if lengths.size else np.zeros(0, int)
    strict_len = lengths[inter == k]
    strict = (
        np.bincount(strict_len, minlength=int(min_length)) if strict_len.size else np.zeros(0, int)
    )
    idx, union = top
    return Matches(
        start=starts[idx],
        length=lengths[idx],
        intersection=inter[idx],
        union=union,
        document=_doc_of(starts[idx], bounds),
        cells=cells,
        fuzzy_histogram=fuzzy,
        strict_histogram=strict,
        n_candidates=int(starts.size),
        level=int(level),
    )


def _score_unions(states, cells, starts, lengths, inter, bounds, threshold, left, right, top_k):
    """Unions for the candidates that can reach the top ``top_k``; returns (ranked idx, union)."""
    if starts.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    k = cells.size
    by_inter = np.argsort(-inter, kind="stable")
    # whole tie groups of intersection until top_k candidates are covered
    inter_sorted = inter[by_inter]
    cut = min(top_k, by_inter.size) - 1
    last = inter_sorted[cut]
    need = by_inter[inter_sorted >= last]
    need = np.sort(need)  # by position: neighbouring windows share reads
    docs = _doc_of(starts[need], bounds)
    union = np.empty(need.size, dtype=np.int64)
    selected = np.zeros(int(states.shape[1]), dtype=bool)
    selected[cells] = True
    for i, (c, d) in enumerate(zip(need, docs, strict=True)):
        s, n = int(starts[c]), int(lengths[c])
        lo, hi = max(s - left, int(bounds[d])), min(s + n + right, int(bounds[d + 1]))
        rows = _on(_read_rows(states, lo, hi), threshold)
        shows = _pattern(rows, s, n, lo, hi, left, right)
        union[i] = k + int(np.count_nonzero(shows & ~selected))
    rank = np.lexsort((starts[need], -lengths[need], union, -inter[need]))[:top_k]
    return need[rank], union[rank]


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
