"""LSTMVis match results as an anywidget: ranked spans in context, a clickable table."""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

from workbench.widgets._assets import static


def match_rows(matches: Any, store: Any = None, *, context: int = 12) -> list[dict]:
    """One dict per match: rank order, document, start in it, length, scores, tokens.

    Parameters
    ----------
    matches : workbench.store.Matches
        From :meth:`StateStore.match` or :func:`workbench.store.match`.
    store : StateStore, optional
        Gives the tokens (``before``, ``span``, ``after``) and document ids; without it the
        token lists are empty and ``start`` is the global step.
    context : int
        Tokens shown on each side of a span (never across its document's edges).

    Returns
    -------
    list of dict
        Keys ``document, start, global_start, length, intersection, union, before, span,
        after``.
    """
    rows = []
    bounds = store.boundaries if store is not None else None
    for i, (s, e) in enumerate(matches.spans()):
        d = int(matches.document[i])
        row = {
            "document": d, "start": s, "global_start": s, "length": e - s,
            "intersection": int(matches.intersection[i]), "union": int(matches.union[i]),
            "before": [], "span": [], "after": [],
        }  # fmt: skip
        if store is not None:
            lo, hi = int(bounds[d]), int(bounds[d + 1])
            a, b = max(lo, s - context), min(hi, e + context)
            toks = store.tokens(a, b)
            row.update(
                document=str(store.doc_ids[d]), start=s - lo,
                before=toks[: s - a], span=toks[s - a : e - a], after=toks[e - a :],
            )  # fmt: skip
        rows.append(row)
    return rows


class MatchesWidget(anywidget.AnyWidget):
    """Ranked corpus matches of a cell selection; click a row to pick it.

    Parameters
    ----------
    matches : workbench.store.Matches
    store : StateStore, optional
        For the tokens in context and document ids.
    context : int
        Tokens of context on each side.

    Attributes
    ----------
    rows : list of dict
        Synced table rows (see :func:`match_rows`).
    selected : int
        Synced: index of the clicked row (``-1``: none).
    matches : Matches
        The result shown.
    """

    _esm = static("matches.js")
    _css = static("widgets.css")
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)

    def __init__(self, matches: Any, store: Any = None, *, context: int = 12) -> None:
        if not hasattr(matches, "spans") or not hasattr(matches, "intersection"):
            raise TypeError(
                f"MatchesWidget needs a Matches result (StateStore.match), got "
                f"{type(matches).__name__}"
            )
        self.matches = matches
        cells = ", ".join(str(int(c)) for c in matches.cells)
        caption = (
            f"{len(matches)} best of {matches.n_candidates} candidate spans for cells [{cells}] "
            f"(co-activation level {matches.level})"
        )
        super().__init__(rows=match_rows(matches, store, context=context), caption=caption)

    @property
    def selected_span(self) -> tuple[int, int] | None:
        """Global ``(start, end)`` of the clicked match, or None."""
        if not 0 <= self.selected < len(self.rows):
            return None
        r = self.rows[self.selected]
        return r["global_start"], r["global_start"] + r["length"]
