"""A slow reading of LSTMVis's selection and match rules, for testing ``compat="lstmvis"``.

Written from HendrikStrobelt/LSTMVis at e0628ca, step by step as its code behaves (not its
code): the client's ``LSTMController.cellSelection`` on the values the server's ``/context``
sends (``get_states``: ``tanh`` of the float32 values in float32, each rounded with Python's
``round(x, 5)``), and ``LSTMDataHandler.query_similar_activations`` as ``lstm_server.match``
calls it (``constrain_left = constraints[0] > 0``, ``add_histograms=True``,
``phrase_length=0``). Plain Python loops over float32 values; nothing from ``workbench``.
"""

from __future__ import annotations

import numpy as np


def shown(x) -> float:
    """The value LSTMVis's client receives for a float32 state ``x``."""
    return round(float(np.tanh(np.float32(x))), 5)


def select(values, start, end, threshold, pad):
    """Units the client selects for the brush ``[start, end)`` with ``pad`` (its context is
    the whole stream here)."""
    values = np.asarray(values, dtype=np.float32)
    time, units = values.shape
    left_bound, right_bound = start - pad[0], end + pad[1]
    signature = [1 if start <= v < end else 0 for v in range(left_bound, right_bound)]
    out = []
    for u in range(units):
        # JavaScript's slice: a negative start counts from the end, the end is clipped
        a = left_bound + time if left_bound < 0 else left_bound
        b = min(right_bound, time)
        test = [1 if shown(values[t, u]) >= threshold else 0 for t in range(a, b)]
        if test == signature:
            out.append(u)
    return out


def _rle(seq):
    """Runs of equal values: (lengths, positions, values)."""
    lengths, positions, vals = [], [], []
    for i, v in enumerate(seq):
        if vals and vals[-1] == v:
            lengths[-1] += 1
        else:
            lengths.append(1)
            positions.append(i)
            vals.append(v)
    return lengths, positions, vals


def match(values, cells, threshold, pad, mode="precise", top_k=50, window=None, keep=None):
    """LSTMVis's ranked matches ``[(start, length, intersection, union)]`` and histograms.

    ``window`` / ``keep`` override the mode's 500,000 steps / 1,000 or 10,000 candidates (to
    exercise them on small data). Where LSTMVis raises (a right-constrained run ending the
    searched window) the missing neighbour counts as 0.
    """
    values = np.asarray(values, dtype=np.float32)
    time, units = values.shape
    cut = float(np.arctanh(threshold))
    constrain_left, constrain_right = pad[0] > 0, pad[1] > 0
    if mode == "fast":
        w, n_keep = min(time, 500_000), 1000
    else:
        w, n_keep = time, 10_000
    w = w if window is None else min(window, time)
    n_keep = n_keep if keep is None else keep

    def on(t, u):
        return not float(values[t, u]) < cut  # threshold_discrete: below iff x < cut

    count = [sum(1 for c in cells if on(t, c)) for t in range(w)]
    level = len(cells)
    collected = {}
    while level > 0 and len(collected) < n_keep:
        clipped = [min(c, level) for c in count]
        lengths, positions, vals = _rle(clipped)
        tuples = []
        for i in range(len(lengths)):
            if vals[i] != level or lengths[i] < 2:
                continue
            prev = vals[i - 1]  # i = 0: Python's wrap to the last run
            nxt = vals[i + 1] if i + 1 < len(vals) else 0
            if constrain_left and constrain_right:
                h = level - nxt - prev
            elif constrain_left:
                h = level - prev
            elif constrain_right:
                h = level - nxt
            else:
                h = 0
            tuples.append((lengths[i], positions[i], int(h)))
        for run in set(tuples):
            collected.setdefault(f"{run[0]}_{run[1]}", run)
        level -= 1
    candidates = sorted(collected.values(), key=lambda r: r[2], reverse=True)[:n_keep]
    results = []
    for length, pos, _h in candidates:
        if pos < 1 or pos + length + 1 > time:
            continue
        showing = set()
        for u in range(units):
            ok = all(on(t, u) for t in range(pos, pos + length))
            if constrain_left and on(pos - 1, u):
                ok = False
            if constrain_right and on(pos + length, u):
                ok = False
            if ok:
                showing.add(u)
        inter = len(showing & set(cells))
        union = len(showing | set(cells))
        results.append((pos, length, inter, union))
    fuzzy = _bincount([r[1] for r in results])
    strict = _bincount([r[1] for r in results if r[2] == len(cells)])
    results.sort(key=lambda r: (-r[2], r[3], -r[1]))
    return results[:top_k], fuzzy, strict


def _bincount(xs):
    if not xs:
        return []
    out = [0] * (max(xs) + 1)
    for x in xs:
        out[x] += 1
    return out
