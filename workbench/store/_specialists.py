"""The string-literal cell: which unit the demo views open on, and the one rule that picks it.

The rule: among the cell-state units (``*.cell``) of every layer, the unit whose values best
separate characters inside short string literals (track ``in_literal``) from code characters
(track ``is_code``; comments and docstrings left out), by AUC within that contrast, either sign
(``|AUC - 0.5|``), chosen on training documents. :func:`literal_cell` applies it to any
recording; for the shipped python model the result is :data:`LITERAL_CELLS` (ranking a 300k-step
store takes about a minute of CPU, too slow for a page's first answer), derived with
``python demos/cell_specialists.py`` (its ``in_literal`` row) and checked by
``tests/test_cell_specialists.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRACK, CONTRAST = "in_literal", "is_code"

#: Model fingerprint (:func:`~workbench.store._runner.model_fingerprint`, what a store's
#: manifest keeps under ``model.fingerprint``) -> ``(quantity, unit, held-out AUC)`` of its
#: string-literal cell: the shipped python char LM, chosen on 17 training files (100k
#: characters), scored on 16 held-out ones (``python demos/cell_specialists.py``: AUC 0.046,
#: the unit is lower inside literals; the script's table shows 1 - AUC = 0.954).
LITERAL_CELLS: dict[str, tuple[str, int, float]] = {
    "7d347fab80c330b06f24abe6622eedfb": ("rnn.0.fwd.cell", 164, 0.046),
}


@dataclass(frozen=True)
class LiteralCell:
    """A string-literal cell: ``name`` (``rnn.L.fwd.cell``), ``unit``, and its ``auc``.

    ``auc`` is ``in_literal`` against ``is_code`` (below 0.5: the unit is lower inside).
    """

    name: str
    unit: int
    auc: float

    def describe(self) -> str:
        """``"AUC 0.954 (lower inside literals)"``: the separation, whichever the sign."""
        side = "lower" if self.auc < 0.5 else "higher"
        return f"AUC {max(self.auc, 1 - self.auc):.3f} ({side} inside literals)"


def shipped_literal_cell(fingerprint: str | None, names=None) -> LiteralCell | None:
    """The derived cell of the model with this fingerprint (None for other models).

    ``names``: the quantities at hand (a store's); None when the cell's is not among them.
    """
    found = LITERAL_CELLS.get(str(fingerprint))
    if found is None or (names is not None and found[0] not in names):
        return None
    return LiteralCell(found[0], found[1], found[2])


def store_literal_cell(store) -> LiteralCell | None:
    """The string-literal cell of the model a store was recorded from, if it is known."""
    if TRACK not in store.meta_tracks or CONTRAST not in store.meta_tracks:
        return None
    fingerprint = (store.manifest.get("model") or {}).get("fingerprint")
    return shipped_literal_cell(fingerprint, store.names)


def literal_cell(states: dict, tracks: dict) -> LiteralCell | None:
    """The rule on a recording: the cell unit with the strongest in_literal-vs-code AUC.

    Parameters
    ----------
    states : dict of str to array-like
        name -> ``[time, units]``; only names ending in ``.cell`` compete.
    tracks : dict of str to array-like
        ``[time]`` bools :data:`TRACK` and :data:`CONTRAST` (``python_source.annotate``).

    Returns
    -------
    LiteralCell or None
        None when there is no cell quantity or no literal or code character.
    """
    from workbench.store import stats

    inside = np.asarray(tracks[TRACK], bool)
    code = np.asarray(tracks[CONTRAST], bool)
    if not inside.any() or not code.any():
        return None
    best = None
    for name, values in states.items():
        if not name.endswith(".cell"):
            continue
        row = stats.best_cells(np.asarray(values), {TRACK: inside}, top=1, method="auc",
                               contrast=code).iloc[0]  # fmt: skip
        if best is None or row.strength > best[0]:
            best = (row.strength, LiteralCell(name, int(row.unit), float(row.score)))
    return None if best is None else best[1]


def literal_window(inside, code, values, size: int) -> int:
    """Start of a ``size``-step window where the cell visibly follows the track.

    Windows start every ``size // 4`` steps; among those with at least 3 literal spans, the
    best ``|AUC - 0.5|`` of ``values`` (literal against code steps) times the share of such
    steps wins; 0 when no window qualifies.

    Parameters
    ----------
    inside, code : array-like
        ``[time]`` bools :data:`TRACK` and :data:`CONTRAST` over the steps searched.
    values : array-like
        ``[time]`` the cell's values there.
    """
    from scipy.stats import rankdata

    inside, code = np.asarray(inside, bool), np.asarray(code, bool)
    values = np.asarray(values, np.float64)
    best, start = -1.0, 0
    for a in range(0, max(len(inside) - size, 0) + 1, max(size // 4, 1)):
        y, x = inside[a : a + size], values[a : a + size]
        spans = int(np.count_nonzero(np.diff(y.astype(np.int8)) == 1)) + int(y[:1].sum())
        keep = y | code[a : a + size]
        y, x = y[keep], x[keep]
        n_pos, n_neg = int(y.sum()), int((~y).sum())
        if spans < 3 or n_neg == 0:
            continue
        u = rankdata(x)[y].sum() - n_pos * (n_pos + 1) / 2
        # the share of the window scored counts too: docstrings and comments are not shown
        strength = abs(u / (n_pos * n_neg) - 0.5) * keep.mean()
        if strength > best:
            best, start = strength, a
    return start
