"""Compare the states two models (or two checkpoints of one) left in their StateStores.

The stores must hold the same text, step for step: the same tokenizer and the same corpus
(the leading steps they share are compared). Everything is read block by block once
(:func:`~workbench.compare._moments.joint_moments`); the result holds the layer x layer CKA
matrix, SVCCA of the matched layer, unit matching, interpretable-cell counterparts and gate
saturation of both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.compare._cka import cka_matrix_from_moments
from workbench.compare._moments import BLOCK, joint_moments
from workbench.compare._svcca import SVCCAResult, svcca_from_moments
from workbench.compare._units import counterparts, match_units, unit_correlations
from workbench.names import is_gate, try_parse

STATE_QUANTITIES = ("hidden", "cell")  # what the CKA matrix compares by default
# interpretable cells looked up in both (the python stores' tracks: strings, short literals,
# comments, bracket depth overall and per bracket kind)
TRACKS = (
    "in_string",
    "in_literal",
    "in_comment",
    "depth",
    "depth_paren",
    "depth_square",
    "depth_curly",
)


class _Head:
    """The first ``n`` steps of a ``[time, units]`` array-like, still lazy."""

    def __init__(self, array, n: int) -> None:
        self._a, self.shape = array, (int(n), int(array.shape[1]))

    def __getitem__(self, rows):
        a, b, _ = rows.indices(self.shape[0])
        return self._a[a:b]

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def unit_major(self) -> bool:
        """Whether the chunk files can be read as ``[units, chunk]`` blocks (:meth:`block`)."""
        return bool(getattr(self._a, "unit_major", False))

    @property
    def chunk(self) -> int:
        return int(self._a.chunk)

    def block(self, c: int):
        """``[units, chunk]`` chunk ``c`` of the whole array (steps past ``n`` included)."""
        return self._a.block(c)


def state_names(store) -> list[str]:
    """The store's hidden and cell states, by layer (what :func:`compare_stores` compares)."""
    names = []
    for n in store.names:
        q = try_parse(n)
        if q is not None and q.quantity in STATE_QUANTITIES:
            names.append((q.layer if q.layer is not None else -1, q.quantity != "hidden", n))
    return [n for *_, n in sorted(names)]


def aligned_steps(store_a, store_b) -> int:
    """Leading steps where both stores hold the same documents, token for token.

    Raises
    ------
    ValueError
        Different tokenizers, or no common text (with the fix).
    """
    va, vb = store_a.manifest.get("vocab"), store_b.manifest.get("vocab")
    if va is not None and vb is not None and va != vb:
        raise ValueError(
            "the two models use different tokenizers; compare models trained on the same "
            "vocabulary (e.g. the python, python-gru and python-rnn models)"
        )
    n = min(store_a.n_tokens, store_b.n_tokens)
    ta = np.asarray(store_a._column("tokens/token_id")[:n])
    tb = np.asarray(store_b._column("tokens/token_id")[:n])
    differ = np.flatnonzero(ta != tb)
    run = int(differ[0]) if differ.size else n
    steps = run
    if run < n:  # whole documents only: the last document end both share within the run
        ends = np.intersect1d(np.asarray(store_a.boundaries), np.asarray(store_b.boundaries))
        steps = int(ends[ends <= run].max(initial=0))
    if steps < 2:
        raise ValueError(
            "the two stores hold different text; record both models on the same corpus "
            "(workbench record ... with the same documents)"
        )
    return steps


@dataclass
class Comparison:
    """What :func:`compare_stores` found.

    Attributes
    ----------
    steps : int
        Common leading steps compared.
    names_a, names_b : list of str
        State names of each side (rows / columns of ``cka``).
    cka : np.ndarray
        ``[len(names_a), len(names_b)]`` linear CKA.
    pair : tuple of str
        The (A, B) names matched unit by unit (``matches``, ``svcca``, ``cells``).
    svcca : SVCCAResult
    matches : pandas.DataFrame
        ``unit, match, r`` (:func:`~workbench.compare._units.match_units`).
    cells : pandas.DataFrame
        Interpretable-cell counterparts (:func:`~workbench.compare._units.counterparts`).
    saturation_a, saturation_b : pandas.DataFrame
        Gate saturation ``name, unit, left, right`` over the same steps (empty without gates).
    """

    steps: int
    names_a: list[str]
    names_b: list[str]
    cka: np.ndarray
    pair: tuple[str, str]
    svcca: SVCCAResult
    matches: object
    cells: object
    saturation_a: object = field(default=None)
    saturation_b: object = field(default=None)


def _saturation(store, n: int):
    import pandas as pd

    from workbench.store import stats

    frames = []
    for name in store.names:
        if not is_gate(name):
            continue
        left, right = stats.gate_saturation(_Head(store.states(name), n))
        frames.append(
            pd.DataFrame({"name": name, "unit": np.arange(left.size), "left": left, "right": right})
        )
    if not frames:
        return pd.DataFrame(columns=["name", "unit", "left", "right"])
    return pd.concat(frames, ignore_index=True)


def _best_cells(m, key, tracks_key, wanted):
    """Each track's best unit of ``key`` by ``|r|`` (the columns :func:`counterparts` reads).

    The same Pearson r as :func:`workbench.store.stats.best_cells` with ``method="corr"``,
    from the summed cross-products instead of a second pass over the store.
    """
    import pandas as pd

    rows = []
    if wanted:
        r = unit_correlations(m, key, tracks_key)  # [units, tracks]
        for j, track in enumerate(wanted):
            col = r[:, j]
            if not np.isfinite(col).any():
                continue  # a constant track (no brackets of a kind in the text)
            unit = int(np.nan_to_num(np.abs(col), nan=-1.0).argmax())
            rows.append((track, 0, unit, "corr", float(col[unit]), abs(float(col[unit]))))
    return pd.DataFrame(rows, columns=["track", "rank", "unit", "method", "score", "strength"])


def compare_stores(
    store_a,
    store_b,
    names_a=None,
    names_b=None,
    pair: tuple[str, str] | None = None,
    steps: int | None = None,
    tracks=TRACKS,
    keep: float = 0.99,
    block: int = BLOCK,
) -> Comparison:
    """Compare two stores of the same text.

    Parameters
    ----------
    store_a, store_b : StateStore
    names_a, names_b : list of str, optional
        States compared (default: :func:`state_names`, hidden and cell of every layer).
    pair : (str, str), optional
        Names matched unit by unit (default: the last layer's hidden state of each).
    steps : int, optional
        At most this many leading common steps.
    tracks : sequence of str
        Meta tracks whose best cells are looked up in both (those the stores hold).
    keep : float
        SVCCA: share of variance kept.
    block : int
        Steps read at a time.

    Returns
    -------
    Comparison
    """
    n = aligned_steps(store_a, store_b)
    if steps is not None:
        n = max(2, min(n, int(steps)))
    names_a = list(names_a or state_names(store_a))
    names_b = list(names_b or state_names(store_b))
    if not names_a or not names_b:
        raise ValueError("a store holds no hidden or cell states; name the states to compare")
    if pair is None:
        hidden_a = [x for x in names_a if try_parse(x) and try_parse(x).quantity == "hidden"]
        hidden_b = [x for x in names_b if try_parse(x) and try_parse(x).quantity == "hidden"]
        pair = ((hidden_a or names_a)[-1], (hidden_b or names_b)[-1])
    for name, store in ((pair[0], store_a), (pair[1], store_b)):
        if name not in store.names:
            raise ValueError(f"{name!r} is not in the store; it holds {', '.join(store.names)}")
    arrays = {("a", x): _Head(store_a.states(x), n) for x in dict.fromkeys([*names_a, pair[0]])}
    arrays.update(
        {("b", x): _Head(store_b.states(x), n) for x in dict.fromkeys([*names_b, pair[1]])}
    )
    # CKA needs each state's own products and A's against B's; never A's layers against A's
    pairs = [(("a", x), ("b", y)) for x in names_a for y in names_b]
    ka, kb, kt = ("a", pair[0]), ("b", pair[1]), ("tracks",)
    pairs.append((ka, kb))
    wanted = [t for t in tracks if t in store_a.meta_tracks and t in store_b.meta_tracks]
    if wanted:  # the tracks' correlations with both pair states come from the same sums
        arrays[kt] = np.stack(
            [np.asarray(store_a.meta(t)[:n], dtype=np.float32) for t in wanted], axis=1
        )
        pairs += [(ka, kt), (kb, kt)]
    m = joint_moments(arrays, n, block, pairs=pairs)
    cka = cka_matrix_from_moments(m, [("a", x) for x in names_a], [("b", x) for x in names_b])
    matches = match_units(m, ka, kb)
    cells_a, cells_b = (_best_cells(m, k, kt, wanted) for k in (ka, kb))
    return Comparison(
        steps=n,
        names_a=names_a,
        names_b=names_b,
        cka=cka,
        pair=tuple(pair),
        svcca=svcca_from_moments(m, ka, kb, keep),
        matches=matches,
        cells=counterparts(cells_a, cells_b, matches),
        saturation_a=_saturation(store_a, n),
        saturation_b=_saturation(store_b, n),
    )
