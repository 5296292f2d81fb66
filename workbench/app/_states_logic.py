"""Computation behind the States page: view state, window, selection, match, navigation.

Pure functions of a :class:`~workbench.StateStore` and plain values; the page and the
latency benchmark (``workbench bench app``) call the same functions. User mistakes raise
:class:`ViewError` with a message the page shows as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

import numpy as np

from workbench import names as _names

#: Largest window of tokens and of units a trajectory view shows.
MAX_WINDOW = 400
MAX_UNITS = 650
#: Layers shown at once.
MAX_LAYERS = 4
#: Window sizes offered.
SIZES = (25, 50, 100, 200, 400)
DEFAULT_SIZE = 100
#: Matches listed and steps of context shown around each: the grids span at least
#: MATCH_WIDTH steps and grow to hold the longest match (MATCH_AFTER steps after it),
#: up to MAX_MATCH_WIDTH.
TOP_MATCHES = 20
MATCH_WIDTH = 28
MATCH_BEFORE = 4
MATCH_AFTER = 4
MAX_MATCH_WIDTH = 120
#: Quantiles suggested as thresholds, and the rows sampled to estimate them.
QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99)
QUANTILE_ROWS = 20_000
#: Value scales of the trajectory plots (:mod:`workbench.viz._scale`).
SCALES = ("auto", "linear", "symlog", "tanh", "clip")


class ViewError(ValueError):
    """A request the States page cannot answer; the message says the fix."""


def split_name(name: str) -> tuple[str, str, str] | None:
    """``"rnn.1.fwd.cell"`` -> ``("rnn.1", "fwd", "cell")``; None for other names."""
    parsed = _names.recurrent(name)
    if parsed is None:
        return None
    return parsed.group, parsed.direction, parsed.quantity


def layer_names(names: list[str]) -> dict[str, dict[str, dict[str, str]]]:
    """Store names grouped ``layer -> direction -> quantity -> name`` (attention left out)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for n in names:
        parts = split_name(n)
        if parts:
            layer, direction, quantity = parts
            out.setdefault(layer, {}).setdefault(direction, {})[quantity] = n
    return out


def default_names(names: list[str]) -> list[str]:
    """The last layer's forward hidden state (or the first per-unit quantity)."""
    groups = layer_names(names)
    if not groups:
        return []
    layer = list(groups)[-1]
    direction = "fwd" if "fwd" in groups[layer] else next(iter(groups[layer]))
    quantities = groups[layer][direction]
    return [quantities.get("hidden") or next(iter(quantities.values()))]


@dataclass
class ViewState:
    """Everything a States view shows; round-trips through the URL query.

    Attributes
    ----------
    model : str
    names : list of str
        Shown quantities (``names[0]`` is the one cells are selected on for match).
    start, size : int
        Window ``[start, start + size)`` of global token positions.
    threshold : float
    pad : (int, int)
    brush : (int, int) or None
        Brushed global steps ``[a, b)``.
    cells : list of int or None
        Cells given in the URL (used when there is no brush).
    scale : str
        How the trajectories are drawn (one of :data:`SCALES`).
    track : str or None
        The meta track drawn under the trajectories.
    """

    model: str
    names: list[str]
    start: int = 0
    size: int = DEFAULT_SIZE
    threshold: float = 0.3
    pad: tuple[int, int] = (1, 0)
    brush: tuple[int, int] | None = None
    cells: list[int] | None = None
    problems: list[str] = field(default_factory=list)
    scale: str = "auto"
    track: str | None = None

    @property
    def end(self) -> int:
        return self.start + self.size

    def query(self) -> str:
        """The URL query (``?model=...``) of this view."""
        q = {
            "model": self.model,
            "name": ",".join(self.names),
            "start": self.start,
            "end": self.end,
            "threshold": f"{self.threshold:g}",
            "pad": f"{self.pad[0]},{self.pad[1]}",
        }
        if self.brush is not None:
            q["brush"] = f"{self.brush[0]},{self.brush[1]}"
        if self.cells:
            q["cells"] = ",".join(str(c) for c in self.cells)
        if self.scale != "auto":
            q["scale"] = self.scale
        if self.track:
            q["track"] = self.track
        return "?" + urlencode(q, safe=",")


def _int(text, what: str, problems: list[str]) -> int | None:
    from workbench.app._limits import query_int

    return query_int(text, what, problems)


def _pair(text, what: str, problems: list[str]) -> tuple[int, int] | None:
    if text is None or text == "":
        return None
    from workbench.app._limits import query_int

    parts = str(text).split(",")
    values = [query_int(x, what, []) for x in parts] if len(parts) == 2 else []
    if len(values) != 2 or None in values:
        problems.append(f"ignored {what}={text!r}: expected two integers like 10,20")
        return None
    return values[0], values[1]


def parse_query(ctx, model=None, name=None, start=None, end=None, threshold=None, pad=None,
                brush=None, cells=None, scale=None, track=None,
                **_ignored) -> ViewState:  # fmt: skip
    """A valid :class:`ViewState` from URL query strings; bad values become defaults.

    Each ignored value adds a line to ``problems`` (shown on the page). A query naming no
    quantity, position, brush or cells opens on the model's string-literal cell when it is
    known (:func:`literal_view`).
    """
    problems: list[str] = []
    models = [m for m in ctx.model_names() if ctx.store(m) is not None] or ctx.model_names()
    if model not in ctx.model_names():
        if model is not None:
            problems.append(f"unknown model {model!r}; showing {models[0]!r}")
        model = models[0]
    store = ctx.store(model)
    available = store.names if store is not None else []
    wanted = [n for n in str(name or "").split(",") if n]
    names = [n for n in wanted if n in available and split_name(n)][:MAX_LAYERS]
    if wanted and len(names) < len(wanted):
        problems.append(
            f"ignored names not in the {model} store: {sorted(set(wanted) - set(names))}"
        )
    names = names or default_names(available)
    view = ViewState(model=model, names=names, problems=problems)
    n_tokens = store.n_tokens if store is not None else 0
    if store is not None and all(v in (None, "") for v in (name, start, end, brush, cells)):
        literal = ctx.cached(("literal-view", model), lambda: literal_view(store))
        if literal is not None:
            view.names, view.cells = [literal["name"]], [literal["unit"]]
            view.start, view.track = literal["start"], literal["track"]
    if track not in (None, ""):
        if store is not None and track in store.meta_tracks:
            view.track = track
        else:
            problems.append(f"ignored track={track!r}: not a meta track of the {model} store")
    s, e = _int(start, "start", problems), _int(end, "end", problems)
    if s is not None:
        view.start = s
    if e is not None and s is not None and e > s:
        view.size = min(e - s, MAX_WINDOW)
    th = threshold
    if th is not None:
        try:
            value = float(th)
            if not np.isfinite(value):
                raise ValueError
            view.threshold = value
        except ValueError:
            problems.append(f"ignored threshold={th!r}: not a finite number")
    p = _pair(pad, "pad", problems)
    if p is not None:
        if min(p) < 0 or max(p) > 50:
            problems.append(f"ignored pad={pad!r}: use two step counts in [0, 50]")
        else:
            view.pad = p
    view.brush = _pair(brush, "brush", problems)
    if scale is not None:
        if scale in SCALES:
            view.scale = scale
        else:
            problems.append(f"ignored scale={scale!r}: use one of {', '.join(SCALES)}")
    if cells:
        from workbench.app._limits import MAX_ITEMS, query_int

        found = [
            query_int(c, "cells", [], 0) for c in str(cells).split(",")[:MAX_ITEMS] if c.strip()
        ]
        if None in found:
            problems.append(f"ignored cells={cells!r}: expected integers like 3,17")
        else:
            view.cells = sorted(set(found))
    return clamp(view, n_tokens)


#: Steps of the corpus searched for the string-literal cell's opening window.
LITERAL_SEARCH = 20_000


def literal_view(store) -> dict | None:
    """Where the States page opens: the string-literal cell over a window that shows it.

    Returns
    -------
    dict or None
        ``name unit auc track start`` (the cell of
        :func:`~workbench.store._specialists.store_literal_cell`, the track ``in_literal``,
        a window start of :func:`~workbench.store._specialists.literal_window` among the
        first :data:`LITERAL_SEARCH` steps); None when the store's model has no known cell.
    """
    from workbench.store import _specialists as sp

    cell = sp.store_literal_cell(store)
    if cell is None:
        return None
    n = min(store.n_tokens, LITERAL_SEARCH)
    values = np.asarray(store.states(cell.name).rows(0, n, [cell.unit]))[:, 0]
    start = sp.literal_window(store.meta(sp.TRACK)[:n], store.meta(sp.CONTRAST)[:n], values,
                              DEFAULT_SIZE)  # fmt: skip
    return {"name": cell.name, "unit": cell.unit, "auc": cell.auc, "track": sp.TRACK,
            "start": int(start)}  # fmt: skip


def clamp(view: ViewState, n_tokens: int) -> ViewState:
    """The window inside ``[0, n_tokens)`` and at most :data:`MAX_WINDOW` long."""
    size = int(min(max(view.size, 1), MAX_WINDOW, max(n_tokens, 1)))
    start = int(min(max(view.start, 0), max(n_tokens - size, 0)))
    if start != view.start and n_tokens:
        view.problems.append(
            f"start {view.start} is outside the store's {n_tokens} tokens; moved to {start}"
        )
    return replace(view, start=start, size=size)


# --------------------------------------------------------------------------------- window
def window(store, view: ViewState) -> dict:
    """Tokens and ``[time, units]`` values of every shown name over the window.

    Returns
    -------
    dict
        ``tokens`` ``[time]``, ``values`` name -> ``[time, units <= MAX_UNITS]`` float32,
        ``units`` name -> total units, ``doc`` the document of the window start.
    """
    a, b = view.start, min(view.end, store.n_tokens)
    values, units = {}, {}
    for n in view.names:
        arr = store.states(n)
        units[n] = int(arr.shape[1])
        cols = None if arr.shape[1] <= MAX_UNITS else np.arange(MAX_UNITS)
        values[n] = np.asarray(arr.rows(a, b, cols), dtype=np.float32)
    return {"tokens": store.tokens(a, b), "values": values, "units": units,
            "doc": document_of(store, a)}  # fmt: skip


def document_of(store, position: int) -> int:
    """Index of the document holding global step ``position``."""
    b = store.boundaries
    return int(np.searchsorted(b, int(position), side="right") - 1)


# ------------------------------------------------------------------------------ selection
def check_brush(store, brush: tuple[int, int]) -> tuple[int, int, int]:
    """``(doc, start, end)`` document-relative for a global brush, or :class:`ViewError`."""
    a, b = int(brush[0]), int(brush[1])
    if not 0 <= a < b <= store.n_tokens:
        raise ViewError(
            f"brush [{a}, {b}) is outside the store's {store.n_tokens} tokens or empty; "
            "brush a range of tokens in the view (start < end)"
        )
    doc = document_of(store, a)
    lo, hi = int(store.boundaries[doc]), int(store.boundaries[doc + 1])
    if b > hi:
        raise ViewError(
            f"brush [{a}, {b}) crosses the end of document {store.doc_ids[doc]!r} at step {hi}; "
            "brush inside one document"
        )
    return doc, a - lo, b - lo


def select(store, name: str, brush, threshold: float, pad, compat=None) -> np.ndarray:
    """LSTMVis selection (:meth:`StateStore.select_cells`) for a global brush."""
    from workbench.store.search import SearchError

    doc, a, b = check_brush(store, brush)
    try:
        return store.select_cells(name, doc, a, b, threshold=threshold, pad=pad, compat=compat)
    except SearchError as exc:
        raise ViewError(str(exc)) from None


def selections(store, view: ViewState, compat=None) -> dict[str, np.ndarray]:
    """Selected cells per shown name (brush rule, or the URL's cells when no brush)."""
    if view.brush is not None:
        return {
            n: select(store, n, view.brush, view.threshold, view.pad, compat) for n in view.names
        }
    if view.cells:
        units = int(store.states(view.names[0]).shape[1])
        bad = [c for c in view.cells if not 0 <= c < units]
        if bad:
            raise ViewError(f"cells {bad} out of range for {units} units of {view.names[0]}")
        return {view.names[0]: np.asarray(view.cells, dtype=np.int64)}
    return {}


def counts(values: dict[str, np.ndarray], cells: dict[str, np.ndarray], threshold: float,
           compat: str | None = None):  # fmt: skip
    """``[layer, time]`` number of each layer's selected cells on (``>= threshold``).

    With ``compat="lstmvis"``: LSTMVis's shown value (tanh rounded to 5 digits) is.
    """
    from workbench.store._lstmvis_compat import shown_on

    rows = []
    for n, v in values.items():
        c = cells.get(n, np.zeros(0, np.int64))
        c = c[c < v.shape[1]]
        if not c.size:
            rows.append(np.zeros(v.shape[0]))
            continue
        on = shown_on(v[:, c], threshold) if compat == "lstmvis" else v[:, c] >= threshold
        rows.append(on.sum(axis=1))
    return np.stack(rows) if rows else np.zeros((0, 0))


def quantiles(store, name: str, qs=QUANTILES, rows: int = QUANTILE_ROWS) -> dict[float, float]:
    """Quantiles of every value of ``name`` (all units) over a sample of the store's steps.

    The sample is ``rows`` steps in 20 evenly spaced blocks (the whole store when smaller),
    so the figures are those of the corpus, not of the window on screen.

    Returns
    -------
    dict
        quantile (e.g. ``0.9``) -> value.
    """
    arr = store.states(name)
    n = store.n_tokens
    cols = None if arr.shape[1] <= MAX_UNITS else np.arange(MAX_UNITS)
    if n <= rows:
        sample = np.asarray(arr.rows(0, n, cols), dtype=np.float64)
    else:
        block = rows // 20
        starts = np.linspace(0, n - block, 20).astype(np.int64)
        sample = np.concatenate([np.asarray(arr.rows(int(a), int(a) + block, cols),
                                            dtype=np.float64) for a in starts])  # fmt: skip
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        return {}
    return {float(q): float(v) for q, v in zip(qs, np.quantile(sample, qs), strict=True)}


# ---------------------------------------------------------------------------------- match
def run_match(store, name: str, cells, threshold: float, pad, top: int = TOP_MATCHES,
              width: int = MATCH_WIDTH, track: str | None = None,
              before: int = MATCH_BEFORE, compat: str | None = None) -> dict:  # fmt: skip
    """Ranked matches of ``cells`` with grids aligned at the match starts, as in LSTMVis.

    Returns
    -------
    dict
        ``matches`` (:class:`~workbench.store.search.Matches`); ``offsets`` ``[width]`` steps
        relative to each match start (``-before .. width - before - 1``; ``width`` grows
        from the given minimum to hold the longest match and :data:`MATCH_AFTER` steps
        after it, at most :data:`MAX_MATCH_WIDTH`); ``strength``
        ``[match, width]`` selected cells on per step (NaN outside the document); ``meta``
        the same for ``track`` (or None); ``tokens`` ``[match][width]`` ("" outside);
        ``rows`` labels; ``summary`` (:meth:`StateStore.match_meta`).
    """
    from workbench.store.search import SearchError

    try:
        m = store.match(name, cells, threshold=threshold, pad=pad, top_k=top, compat=compat)
    except SearchError as exc:
        raise ViewError(str(exc)) from None
    cells = np.asarray(m.cells)
    bounds = store.boundaries
    n = len(m)
    longest = int(m.length.max()) if n else 0
    width = int(min(max(width, before + longest + MATCH_AFTER), MAX_MATCH_WIDTH))
    strength = np.full((n, width), np.nan)
    meta = np.full((n, width), np.nan) if track else None
    track_values = store.meta(track) if track else None
    tokens, rows = [], []
    arr = store.states(name)
    for i, (s, d) in enumerate(zip(m.start.tolist(), m.document.tolist(), strict=True)):
        first = s - before
        lo, hi = max(first, int(bounds[d])), min(first + width, int(bounds[d + 1]))
        a, b = lo - first, hi - first
        vals = np.asarray(arr.rows(lo, hi, cells))
        strength[i, a:b] = (vals >= threshold).sum(axis=1)
        if track_values is not None:
            meta[i, a:b] = track_values[lo:hi]
        tokens.append([""] * a + store.tokens(lo, hi) + [""] * (width - b))
        rows.append(f"#{i + 1} {store.doc_ids[d]} @{s} ({int(m.length[i])})")
    summary = store.match_meta(m) if n and store.meta_tracks else {}
    return {"matches": m, "offsets": list(range(-before, width - before)), "rows": rows,
            "strength": strength, "meta": meta, "tokens": tokens, "summary": summary}  # fmt: skip


# ----------------------------------------------------------------------------- navigation
def corpus_text(store) -> tuple[str, np.ndarray]:
    """The corpus as one string and ``[tokens + 1]`` character offsets of every token.

    Character tokens are joined as they are, word tokens with one space.
    """
    toks = store.tokens()
    sep = "" if all(len(t) <= 1 for t in toks[:2000]) else " "
    lengths = np.fromiter((len(t) + len(sep) for t in toks), dtype=np.int64, count=len(toks))
    offsets = np.zeros(len(toks) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return sep.join(toks), offsets


def find_span(text_index: tuple[str, np.ndarray], query: str, after: int):
    """``(start, end)`` global steps of the tokens the next occurrence of ``query`` covers.

    As :func:`find`, None when the text does not occur.
    """
    start = find(text_index, query, after)
    if start is None:
        return None
    text, offsets = text_index
    first = text.find(query, int(offsets[start]))
    last = first + max(len(query), 1) - 1
    end = int(np.searchsorted(offsets, last, side="right"))
    return start, max(end, start + 1)


def find(text_index: tuple[str, np.ndarray], query: str, after: int) -> int | None:
    """Global step of the first occurrence of ``query`` starting after step ``after``.

    Wraps around to the corpus start; None when the text does not occur.
    """
    if not query:
        return None
    text, offsets = text_index
    n = len(offsets) - 1
    begin = int(offsets[min(max(after + 1, 0), n)])
    hit = text.find(query, begin)
    if hit < 0:
        hit = text.find(query)
    if hit < 0:
        return None
    return int(np.searchsorted(offsets, hit, side="right") - 1)
