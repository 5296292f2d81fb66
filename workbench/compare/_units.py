"""Cross-model unit matching: for each unit of A, the unit of B it correlates with best.

Correlations come from the same centred cross-products as CKA (:mod:`._moments`), so matching
a 256-unit layer against another over a million steps reads each store once. Interpretable
cells (the best cells of a meta track, :meth:`~workbench.StateStore.best_cells`) are looked
up in B: does B have a cell as good for the track, and is it A's cell's match?
"""

from __future__ import annotations

import numpy as np

from workbench.compare._moments import Moments


def unit_correlations(m: Moments, a: str, b: str) -> np.ndarray:
    """``[units_a, units_b]`` Pearson r of every unit of ``a`` with every unit of ``b``.

    A constant unit has NaN correlations.
    """
    sa, sb = np.sqrt(m.variance(a)), np.sqrt(m.variance(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = m.block(a, b) / np.outer(sa, sb)
    r[~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def match_units(m: Moments, a: str, b: str):
    """For each unit of ``a``, the best-correlated unit of ``b`` (largest ``|r|``).

    Returns
    -------
    pandas.DataFrame
        ``unit, match, r`` (signed r of the pair), one row per unit of ``a``, sorted by
        ``|r|`` descending (units with no finite correlation last, ``match`` -1).
    """
    import pandas as pd

    r = unit_correlations(m, a, b)
    strength = np.nan_to_num(np.abs(r), nan=-1.0)
    best = strength.argmax(axis=1)
    rows = np.arange(r.shape[0])
    value = r[rows, best]
    match = np.where(np.isfinite(value), best, -1)
    frame = pd.DataFrame({"unit": rows, "match": match, "r": value})
    order = np.argsort(-np.nan_to_num(np.abs(value), nan=-1.0), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def counterparts(cells_a, cells_b, matches) -> pandas.DataFrame:  # noqa: F821
    """Whether A's best cell of each track has a counterpart in B.

    Parameters
    ----------
    cells_a, cells_b : pandas.DataFrame
        :func:`~workbench.store.stats.best_cells` of A and B (``track, rank, unit, method,
        score, strength``).
    matches : pandas.DataFrame
        :func:`match_units` of A against B.

    Returns
    -------
    pandas.DataFrame
        One row per track: ``track, method, unit_a, score_a, unit_b, score_b, match_of_a,
        r_match, same`` where ``unit_b`` is B's own best cell for the track, ``match_of_a`` the
        unit of B best correlated with A's cell (``r_match``) and ``same`` whether they agree.
    """
    import pandas as pd

    by_unit = matches.set_index("unit")
    rows = []
    for track in dict.fromkeys(cells_a["track"]):
        top_a = cells_a[(cells_a["track"] == track) & (cells_a["rank"] == 0)]
        top_b = cells_b[(cells_b["track"] == track) & (cells_b["rank"] == 0)]
        if top_a.empty or top_b.empty:
            continue
        ua, ub = int(top_a["unit"].iloc[0]), int(top_b["unit"].iloc[0])
        m = by_unit.loc[ua]
        rows.append(
            (
                track,
                str(top_a["method"].iloc[0]),
                ua,
                float(top_a["score"].iloc[0]),
                ub,
                float(top_b["score"].iloc[0]),
                int(m["match"]),
                float(m["r"]),
                int(m["match"]) == ub,
            )
        )
    columns = [
        "track",
        "method",
        "unit_a",
        "score_a",
        "unit_b",
        "score_b",
        "match_of_a",
        "r_match",
        "same",
    ]
    return pd.DataFrame(rows, columns=columns)
