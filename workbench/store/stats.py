"""Per-unit statistics over a corpus of states.

- :func:`gate_saturation`: share of steps a gate unit spends below 0.1 / above 0.9
  (Karpathy, Johnson and Fei-Fei 2015, "left/right saturated").
- :func:`track_correlation` and :func:`track_auc`: how well each unit follows a meta track
  (Pearson r for any track, ROC-AUC for a binary one); :func:`best_cells` ranks them
  ("the best cell for in_string"), within a contrast (``in_literal`` against ``is_code``)
  and on held-out steps when asked (units chosen on one set of documents, scored on another).
- :func:`mean_response`: mean activation of every unit per token (RNNVis).
- :func:`nmf_factors`: non-negative factors of activations (Ecco).

All functions take ``states [time, units]`` array-likes (numpy, memmap, zarr, store views)
and read them block by block, so corpus-scale arrays are never loaded whole.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "best_cells",
    "is_binary",
    "gate_saturation",
    "mean_response",
    "nmf_factors",
    "track_auc",
    "track_correlation",
]

_BLOCK = 1 << 18


def _blocks(states, block: int = _BLOCK):
    time = int(states.shape[0])
    for a in range(0, time, block):
        b = min(a + block, time)
        yield a, b, np.asarray(states[a:b], dtype=np.float64)


def gate_saturation(states, low: float = 0.1, high: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of steps each unit is left (``< low``) and right (``> high``) saturated.

    Parameters
    ----------
    states : array-like
        ``[time, units]`` gate values in [0, 1] (sigmoid gates).

    Returns
    -------
    left, right : np.ndarray
        ``[units]`` fractions.
    """
    time = int(states.shape[0])
    if time == 0:
        raise ValueError("no steps to measure saturation on; record a non-empty corpus")
    n_low = np.zeros(int(states.shape[1]))
    n_high = np.zeros(int(states.shape[1]))
    for _, _, x in _blocks(states):
        n_low += (x < low).sum(axis=0)
        n_high += (x > high).sum(axis=0)
    return n_low / time, n_high / time


def track_correlation(states, track) -> np.ndarray:
    """Pearson correlation of each unit with a per-step track.

    Parameters
    ----------
    states : array-like
        ``[time, units]``.
    track : array-like
        ``[time]`` numbers or bools.

    Returns
    -------
    np.ndarray
        ``[units]`` correlations (NaN for a constant unit or track).
    """
    y_all = np.asarray(track, dtype=np.float64)
    if y_all.shape[0] != states.shape[0]:
        raise ValueError(f"track has {y_all.shape[0]} steps, states {states.shape[0]}")
    units = int(states.shape[1])
    n = y_all.shape[0]
    sx, sxx, sxy = np.zeros(units), np.zeros(units), np.zeros(units)
    sy, syy = y_all.sum(), (y_all * y_all).sum()
    for a, b, x in _blocks(states):
        y = y_all[a:b]
        sx += x.sum(axis=0)
        sxx += (x * x).sum(axis=0)
        sxy += y @ x
    cov = sxy / n - (sx / n) * (sy / n)
    vx = sxx / n - (sx / n) ** 2
    vy = syy / n - (sy / n) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(np.clip(vx, 0, None) * max(vy, 0.0))
    r[~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def track_auc(states, track, max_steps: int = 200_000, seed: int = 0) -> np.ndarray:
    """ROC-AUC of each unit as a detector of a binary track (0.5 = chance, 0 = inverted).

    Parameters
    ----------
    states : array-like
        ``[time, units]``.
    track : array-like
        ``[time]`` bools (non-zero = positive).
    max_steps : int
        Steps used (a fixed random sample beyond this, since ranks need all values in memory).

    Returns
    -------
    np.ndarray
        ``[units]`` AUCs (NaN when the track has one class only).
    """
    from scipy.stats import rankdata

    y = np.asarray(track).astype(bool)
    time = y.shape[0]
    if time != states.shape[0]:
        raise ValueError(f"track has {time} steps, states {states.shape[0]}")
    if time > max_steps:
        idx = np.sort(np.random.default_rng(seed).choice(time, max_steps, replace=False))
        x = _take_rows(states, idx)
        y = y[idx]
    else:
        x = np.asarray(states[:], dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return np.full(int(states.shape[1]), np.nan)
    ranks = rankdata(x, axis=0)
    u = ranks[y].sum(axis=0) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def _take_rows(states, idx: np.ndarray, dtype=np.float64) -> np.ndarray:
    if isinstance(states, np.ndarray):
        return states[idx].astype(dtype)
    out = np.empty((idx.size, int(states.shape[1])), dtype)
    for a, b, x in _blocks(states):
        sel = idx[(idx >= a) & (idx < b)]
        lo = np.searchsorted(idx, a)
        out[lo : lo + sel.size] = x[sel - a]
    return out


def is_binary(track) -> bool:
    """Whether a track is two-valued: bool, or integers that are all 0 or 1."""
    arr = np.asarray(track)
    if arr.dtype == bool:
        return True
    if arr.dtype.kind not in "iu" or arr.size == 0:
        return False
    return bool(arr.min() >= 0 and arr.max() <= 1)


def best_cells(
    states,
    meta: dict,
    top: int = 10,
    method: str = "auto",
    contrast=None,
    within=None,
    select=None,
    score=None,
    max_steps: int = 200_000,
    seed: int = 0,
):
    """Units ranked by how well they follow each meta track.

    Parameters
    ----------
    states : array-like
        ``[time, units]``.
    meta : dict of str to array-like
        ``[time]`` tracks.
    top : int
        Units kept per track.
    method : {"auto", "corr", "auc"} or dict of str to str
        ``auto``: AUC for bool tracks, Pearson r otherwise (a dict: one method per track).
    contrast : array-like, optional
        ``[time]`` bools: the negatives of a bool track. Only the steps of the track or of
        ``contrast`` are scored (for example ``in_literal`` against ``is_code``: comments and
        docstrings are left out). A numeric track is scored on the ``contrast`` steps.
    within : array-like, optional
        ``[time]`` bools: score only these steps (any track).
    select, score : array-like, optional
        ``[time]`` bools: the steps units are chosen on and the steps they are scored on
        (for example training documents and held-out ones). One given alone: the other is
        its complement. Neither: both are every step.
    max_steps : int
        Steps used per set (a fixed random sample beyond it: ranks need the values in memory).

    Returns
    -------
    pandas.DataFrame
        Columns ``track, rank, unit, method, score, strength, select_score``: ``score`` (AUC or
        r) and ``strength`` (``|r|`` or ``|AUC - 0.5| * 2``) on the ``score`` steps,
        ``select_score`` on the ``select`` steps, where the units were ranked by strength
        (the sign says whether the unit is on or off inside).
    """
    import pandas as pd

    methods = method if isinstance(method, dict) else dict.fromkeys(meta, method)
    for m in methods.values():
        if m not in ("auto", "corr", "auc"):
            raise ValueError(f"method must be auto, corr or auc, got {m!r}")
    time = int(states.shape[0])
    split = select is not None or score is not None
    if split:
        select = ~_mask(score, time) if select is None else _mask(select, time)
        score = ~select if score is None else _mask(score, time)
    rows = []
    ranks_all = None  # without masks, AUC ranks are shared by every bool track
    for name, track in meta.items():
        arr = np.asarray(track)
        if arr.shape[0] != time:
            raise ValueError(f"track {name!r} has {arr.shape[0]} steps, states {time}")
        use = methods.get(name, "auto")
        use = use if use != "auto" else ("auc" if arr.dtype == bool else "corr")
        keep = None if within is None else _mask(within, time)
        if contrast is not None:
            extra = _mask(contrast, time) | (arr.astype(bool) if use == "auc" else False)
            keep = extra if keep is None else keep & extra
        if not split and keep is None:
            if use == "auc":
                if ranks_all is None:
                    ranks_all = _sample_ranks(states, np.ones(time, bool), max_steps, seed)
                chosen = _auc(*ranks_all, arr)
            else:
                chosen = track_correlation(states, arr)
            held = chosen
        else:
            every = np.ones(time, bool) if keep is None else keep
            sets = (every, every) if not split else (every & select, every & score)
            chosen, held = (_masked_score(states, arr, m, use, max_steps, seed) for m in sets)
        strength = _strength(chosen, use)
        order = np.argsort(-np.nan_to_num(strength, nan=-1.0), kind="stable")[:top]
        held_strength = _strength(held, use)
        for rank, u in enumerate(order):
            rows.append(
                (name, rank, int(u), use, float(held[u]), float(held_strength[u]), float(chosen[u]))
            )
    columns = ["track", "rank", "unit", "method", "score", "strength", "select_score"]
    return pd.DataFrame(rows, columns=columns)


def _mask(values, time: int) -> np.ndarray:
    m = np.asarray(values).astype(bool)
    if m.shape != (time,):
        raise ValueError(f"a step mask must have shape ({time},), got {m.shape}")
    return m


def _strength(score: np.ndarray, use: str) -> np.ndarray:
    return np.abs(score - 0.5) * 2 if use == "auc" else np.abs(score)


def _sample_ranks(states, mask: np.ndarray, max_steps: int, seed: int):
    """``(ranks [steps, units] float32, step indices)`` of the steps of ``mask`` (sampled)."""
    from scipy.stats import rankdata

    idx = np.flatnonzero(mask)
    if idx.size > max_steps:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_steps, replace=False))
    wide = getattr(states, "dtype", None) == np.float64  # float16/32 stores: float32 is exact
    x = _take_rows(states, idx, np.float64 if wide else np.float32)
    ranks = np.empty(x.shape, np.float32)
    for a in range(0, x.shape[1], 32):  # blocks of units bound the float64 copies
        ranks[:, a : a + 32] = rankdata(x[:, a : a + 32].astype(np.float64), axis=0)
    return ranks, idx


def _auc(ranks: np.ndarray, idx: np.ndarray, track) -> np.ndarray:
    """Mann-Whitney AUC of every unit from its ranks over the steps ``idx``."""
    y = np.asarray(track)[idx].astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return np.full(ranks.shape[1], np.nan)
    u = ranks[y].sum(axis=0, dtype=np.float64) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def _masked_score(states, track, mask, use: str, max_steps: int, seed: int) -> np.ndarray:
    """AUC or Pearson r of every unit with ``track`` over the steps of ``mask``."""
    if use == "auc":
        return _auc(*_sample_ranks(states, mask, max_steps, seed), track)
    idx = np.flatnonzero(mask)
    if idx.size > max_steps:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_steps, replace=False))
    return track_correlation(_take_rows(states, idx, np.float32), np.asarray(track)[idx])


def mean_response(states, token_ids, n_tokens: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean activation of every unit per token (RNNVis's response distribution, first moment).

    Parameters
    ----------
    states : array-like
        ``[time, units]``.
    token_ids : array-like
        ``[time]`` int token ids.
    n_tokens : int, optional
        Vocabulary size (default ``max id + 1``).

    Returns
    -------
    mean : np.ndarray
        ``[token, units]`` (NaN for tokens never seen).
    count : np.ndarray
        ``[token]`` occurrences.
    """
    ids_all = np.asarray(token_ids, dtype=np.int64)
    n = int(n_tokens if n_tokens is not None else ids_all.max(initial=-1) + 1)
    sums = np.zeros((n, int(states.shape[1])))
    for a, b, x in _blocks(states):
        np.add.at(sums, ids_all[a:b], x)
    count = np.bincount(ids_all, minlength=n)[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / count[:, None]
    return mean, count


def nmf_factors(
    states, n_factors: int = 8, max_steps: int = 100_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative matrix factorisation of activations (Ecco).

    Signed activations are split into their positive and negative parts, so a factor can load
    on a unit being strongly negative: the features are ``[relu(x), relu(-x)]``.

    Parameters
    ----------
    states : array-like
        ``[time, units]`` (at most ``max_steps`` leading steps are used).
    n_factors : int

    Returns
    -------
    weights : np.ndarray
        ``[time, factor]`` factor activity per step.
    components : np.ndarray
        ``[factor, 2 * units]`` loadings (first ``units`` columns: positive part).
    """
    from sklearn.decomposition import NMF

    x = np.asarray(states[: min(int(states.shape[0]), max_steps)], dtype=np.float32)
    if np.isnan(x).any():
        raise ValueError("states hold NaN; NMF needs finite values")
    feats = np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=1)
    model = NMF(n_components=n_factors, init="nndsvda", random_state=seed, max_iter=400)
    weights = model.fit_transform(feats)
    return weights, model.components_
