"""States page: the LSTMVis select and match views over a corpus state store.

Pick the model, layers, direction and quantity; the trajectories of every unit over a window
of the corpus are drawn with the tokens along the x-axis. Brush a token range (drag on a
plot, or type the range) to form a hypothesis: the cells on over the range and off around it
(``StateStore.select_cells``) are highlighted, listed and counted under each token, and the
match view ranks the corpus spans where they fire together (``StateStore.match``). The whole
view lives in the URL query (``model name start end threshold pad brush cells``).
"""

from __future__ import annotations

from dash import Input, Output, Patch, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate

from workbench.app import _states_logic as logic
from workbench.viz._common import visible_token

PATH = "/states"
#: What the Match section says before any brush (in the layout, so it is there at once).
NO_SELECTION = (
    "No cells selected yet: brush a token range on a plot (or type one) and "
    "the spans of the corpus where the selected cells fire together show here."
)
ALIASES = ("/",)
TITLE = "States"
GRAPH = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d"]}
#: Longest window whose every token is labelled (:func:`~workbench.viz._common.token_axis`).
LABELLED = 100
#: Documents offered in the Document box at once (those around the current one).
DOC_OPTIONS = 400
SCALE_LABELS = {"auto": "auto", "linear": "linear", "symlog": "symmetric log",
                "tanh": "tanh (LSTMVis)", "clip": "clipped (99 %)"}  # fmt: skip


def _error(text: str) -> html.Div:
    return html.Div(text, className="wb-error")


def _no_store(ctx, model: str) -> html.Div:
    others = [m for m in ctx.model_names() if m != model and ctx.store(m) is not None]
    return html.Div(
        [
            html.H2("States"),
            _error(
                f"No state store for the {model} model. Start the app with `workbench serve` "
                "(it builds the demo stores) or pass one: `workbench serve STORE --model CKPT`."
            ),
            html.P(
                ["Models with a store: "]
                + [dcc.Link(m, href=f"/states?model={m}", className="wb-chip") for m in others]
            ),  # fmt: skip
        ]
    )


def _controls(ctx, view: logic.ViewState, store) -> list:
    groups = logic.layer_names(store.names)
    first = logic.split_name(view.names[0]) if view.names else None
    layer, direction, quantity = first or (None, None, None)
    layers = [logic.split_name(n)[0] for n in view.names]
    directions = sorted(groups.get(layer, {}))
    quantities = list(groups.get(layer, {}).get(direction, {}))
    return [
        html.Div(
            [
                html.Label(
                    [
                        "Model",
                        dcc.Dropdown(
                            id="states-model",
                            options=ctx.model_names(),
                            value=view.model,
                            clearable=False,
                        ),
                    ]
                ),  # fmt: skip
                html.Label(
                    [
                        "Layers",
                        dcc.Dropdown(
                            id="states-layers", options=list(groups), value=layers, multi=True
                        ),
                    ]
                ),  # fmt: skip
                html.Label(
                    [
                        "Direction",
                        dcc.RadioItems(
                            id="states-direction", options=directions, value=direction, inline=True
                        ),
                    ]
                ),  # fmt: skip
                html.Label(
                    [
                        "Quantity",
                        dcc.Dropdown(
                            id="states-quantity",
                            options=quantities,
                            value=quantity,
                            clearable=False,
                        ),
                    ]
                ),  # fmt: skip
                html.Label(
                    [
                        "Threshold",
                        dcc.Input(
                            id="states-threshold",
                            type="number",
                            value=view.threshold,
                            step=0.05,
                            debounce=True,
                        ),
                    ]
                ),  # fmt: skip
                html.Label(
                    [
                        "Scale",
                        dcc.Dropdown(
                            id="states-scale",
                            options=[
                                {"label": SCALE_LABELS[k], "value": k} for k in logic.SCALES
                            ],  # fmt: skip
                            value=view.scale,
                            clearable=False,
                        ),
                    ],
                    title="how values are drawn; selection and match use the raw values",
                ),
                html.Label(
                    [
                        "Pad before",
                        dcc.Input(
                            id="states-pad-left",
                            type="number",
                            min=0,
                            max=50,
                            step=1,
                            value=view.pad[0],
                            debounce=True,
                        ),
                    ]
                ),  # fmt: skip
                html.Label(
                    [
                        "Pad after",
                        dcc.Input(
                            id="states-pad-right",
                            type="number",
                            min=0,
                            max=50,
                            step=1,
                            value=view.pad[1],
                            debounce=True,
                        ),
                    ]
                ),  # fmt: skip
                _compat_switch(),
            ],
            className="wb-controls",
        ),
        html.Div(
            [
                html.Button("\u25c0", id="states-prev", title="previous window"),
                html.Label(
                    [
                        "Position",
                        dcc.Input(
                            id="states-start",
                            type="number",
                            min=0,
                            value=view.start,
                            debounce=True,
                            step=1,
                        ),
                    ],
                    className="wb-step",
                ),
                html.Label(
                    [
                        "Window",
                        dcc.Dropdown(
                            id="states-size",
                            clearable=False,
                            options=list(logic.SIZES),
                            value=view.size,
                        ),
                    ]
                ),  # fmt: skip
                html.Button("\u25b6", id="states-next", title="next window"),
                html.Label(
                    [
                        "Document",
                        dcc.Dropdown(
                            id="states-doc",
                            options=_doc_options(store, logic.document_of(store, view.start)),
                            value=logic.document_of(store, view.start),
                            placeholder="jump to a document",
                            clearable=False,
                        ),
                    ],
                    className="wb-wide",
                ),
                html.Label(
                    [
                        "Find text",
                        dcc.Input(
                            id="states-find-text",
                            type="text",
                            placeholder="e.g. def ",
                            debounce=False,
                        ),
                    ]
                ),  # fmt: skip
                html.Button("Find next", id="states-find"),
            ],
            className="wb-controls",
        ),
        html.Div(
            [
                html.Label(
                    [
                        "Brush from",
                        dcc.Input(
                            id="states-brush-start",
                            type="number",
                            value=view.brush[0] if view.brush else None,
                            debounce=True,
                        ),
                    ],
                    className="wb-step",
                ),
                html.Label(
                    [
                        "to (exclusive)",
                        dcc.Input(
                            id="states-brush-end",
                            type="number",
                            value=view.brush[1] if view.brush else None,
                            debounce=True,
                        ),
                    ],
                    className="wb-step",
                ),
                html.Button("Clear selection", id="states-clear"),
                html.Span(
                    "Drag across a plot to brush a token range; positions are global corpus steps.",
                    className="wb-hint",
                ),  # fmt: skip
            ],
            className="wb-controls",
        ),
    ]


def _compat_switch() -> html.Div:
    """The "LSTMVis compatible" switch: select and match with LSTMVis's own rules."""
    return html.Div(
        dcc.Checklist(
            id="states-compat",
            options=[{"label": " LSTMVis compatible", "value": "lstmvis"}],
            value=[],
        ),
        title="Select and match exactly as LSTMVis does: tanh values rounded to 5 digits, "
        "one step of padding per side in the match, documents as one stream, its candidate "
        "cut and order. Off: the raw values, full padding, documents kept apart, every "
        "candidate scored.",
    )


def _compat(value) -> str | None:
    return "lstmvis" if value and "lstmvis" in value else None


def _doc_options(store, current: int = 0) -> list[dict]:
    """At most :data:`DOC_OPTIONS` documents around ``current`` (always holding it)."""
    ids = store.doc_ids
    lo = max(0, min(int(current) - DOC_OPTIONS // 2, len(ids) - DOC_OPTIONS))
    bounds = store.boundaries
    return [{"label": f"{i}: {ids[i]} ({int(bounds[i + 1] - bounds[i])} tokens)", "value": i}
            for i in range(lo, min(lo + DOC_OPTIONS, len(ids)))]  # fmt: skip


def layout(ctx, **query):
    """The States page for the URL query (bad values are reported, never raised)."""
    if not ctx.model_names():
        return _error("No model is served.")
    view = logic.parse_query(ctx, **query)
    store = ctx.store(view.model)
    if store is None:
        return _no_store(ctx, view.model)
    graphs = [
        html.Div(dcc.Graph(id=f"states-graph-{i}", config=GRAPH), id=f"states-graph-box-{i}",
                 style={"display": "block" if i < len(view.names) else "none"})
        for i in range(logic.MAX_LAYERS)
    ]  # fmt: skip
    tracks = store.meta_tracks
    return html.Div(
        [
            html.H2("States"),
            dcc.Store(id="states-view"),
            dcc.Store(id="states-sel"),
            dcc.Store(id="states-url-cells", data=view.cells),
            dcc.Store(id="states-match-data"),
            *_controls(ctx, view, store),
            html.Div(
                [
                    html.Span(id="states-quantiles", className="wb-hint"),
                    html.Button(
                        "Threshold = 90th percentile",
                        id="states-threshold-p90",
                        title="set the threshold to the 90th percentile of this "
                        "quantity over the corpus",
                    ),  # fmt: skip
                ],
                className="wb-controls",
            ),
            html.Div("; ".join(view.problems), id="states-query-message", className="wb-error"),
            html.Div(id="states-message", className="wb-error"),
            html.Div(id="states-nav-message", className="wb-hint"),
            html.Div(id="states-select-message", className="wb-error"),
            html.Div(id="states-window-info", className="wb-hint"),
            dcc.Loading(html.Div(graphs), type="default", delay_show=300),
            _track_strip(view, tracks),
            html.H3("Selected cells on under each token"),
            dcc.Graph(id="states-counts", config={"displaylogo": False}),
            html.Div(id="states-cells", className="wb-cells"),
            html.H3("Match: where else do these cells fire together?"),
            html.Div(
                [
                    html.Label(
                        [
                            "Meta track",
                            dcc.Dropdown(
                                id="states-match-track",
                                options=tracks,
                                value=view.track or (tracks[0] if tracks else None),
                                placeholder="no meta track",
                            ),
                        ]
                    ),  # fmt: skip
                    html.Span(
                        "Click a row of the heatmap, or a match below, to jump there.",
                        className="wb-hint",
                    ),
                ],
                className="wb-controls",
            ),
            dcc.Loading(
                html.Div(
                    [
                        html.Div(NO_SELECTION, id="states-match-summary", className="wb-hint"),
                        html.Div(
                            [
                                dcc.Graph(id="states-match-strength", config=GRAPH),
                                dcc.Graph(id="states-match-meta", config=GRAPH),
                                dcc.Graph(id="states-match-hist", config=GRAPH),
                            ],
                            id="states-match-plots",
                            style={"display": "none"},
                        ),  # fmt: skip
                        html.Div(id="states-match-list", className="wb-match-list"),
                    ]
                ),
                type="default",
                delay_show=300,
            ),
        ],
        className="wb-states",
    )


def _track_strip(view: logic.ViewState, tracks: list[str]) -> html.Div:
    """The meta track picker and its strip under the trajectories (LSTMVis's meta rows)."""
    return html.Div(
        [
            html.Label(
                [
                    "Meta track under the plots",
                    dcc.Dropdown(
                        id="states-track", options=tracks, value=view.track, placeholder="none"
                    ),  # fmt: skip
                ],
                className="wb-controls",
            ),
            html.Div(
                dcc.Graph(id="states-track-graph", config={"displaylogo": False}),
                id="states-track-box",
                style={"display": "block" if view.track else "none"},
            ),  # fmt: skip
        ]
    )


# ------------------------------------------------------------------- callback functions
def track_figure(ctx, view: dict | None, track: str | None):
    """``(figure, style)`` of the meta track strip for the window of ``view``."""
    from workbench.viz._app_figures import track_strip

    hide = {"display": "none"}
    store = ctx.store(view["model"]) if view else None
    if store is None or not track or track not in store.meta_tracks:
        return {}, hide
    a, b = int(view["start"]), min(int(view["start"]) + int(view["size"]), store.n_tokens)
    fig = track_strip(store.meta(track)[a:b], store.tokens(a, b), name=track)
    return fig, {"display": "block"}


def _names(ctx, model, layers, direction, quantity) -> list[str]:
    store = ctx.store(model)
    groups = logic.layer_names(store.names)
    names = [groups.get(ly, {}).get(direction, {}).get(quantity) for ly in (layers or [])]
    names = [n for n in names if n][: logic.MAX_LAYERS]
    return names or logic.default_names(store.names)


def update_options(ctx, model, layers, direction, quantity):
    """Layer / direction / quantity choices of a model, keeping the valid current values."""
    store = ctx.store(model) if model in ctx.model_names() else None
    if store is None:
        return [], [], [], None, [], None, []
    groups = logic.layer_names(store.names)
    layers = [ly for ly in (layers or []) if ly in groups] or [
        logic.split_name(n)[0] for n in logic.default_names(store.names)
    ]
    dirs = sorted(groups[layers[0]]) if layers else []
    direction = direction if direction in dirs else (dirs[0] if dirs else None)
    quants = list(groups[layers[0]].get(direction, {})) if layers else []
    quantity = quantity if quantity in quants else ("hidden" if "hidden" in quants else
                                                    (quants[0] if quants else None))  # fmt: skip
    return list(groups), layers, dirs, direction, quants, quantity, _doc_options(store)


def render_view(ctx, model, layers, direction, quantity, start, size, threshold,
                scale="auto"):  # fmt: skip
    """Base trajectory figures of the window (one per layer) and the view record.

    Returns
    -------
    tuple
        ``(figures [MAX_LAYERS], styles [MAX_LAYERS], view dict or None, info, message)``.
        The view dict holds ``model names start size scale doc quantiles`` (the document of
        the window start, the first name's :func:`~workbench.app._states_logic.quantiles`).
    """
    from workbench.viz._app_figures import trajectory_slots
    from workbench.viz._scale import resolve

    empty = [{}] * logic.MAX_LAYERS
    hidden = [{"display": "none"}] * logic.MAX_LAYERS
    if not isinstance(model, str) or ctx.store(model) is None:
        return empty, hidden, None, "", f"no store for model {model!r}"
    store = ctx.store(model)
    names = _names(ctx, model, layers, direction, quantity)
    try:
        size = int(size or logic.DEFAULT_SIZE)
        start = int(start or 0)
        th = float(threshold if threshold is not None else 0.3)
    except (TypeError, ValueError):
        return empty, hidden, None, "", "position, window and threshold must be numbers"
    scale = scale if scale in logic.SCALES else "auto"
    view = logic.clamp(logic.ViewState(model, names, start=start, size=size), store.n_tokens)
    data = logic.window(store, view)
    figs, styles, scales = [], [], {}
    for i in range(logic.MAX_LAYERS):
        if i < len(names):
            n = names[i]
            cut = "" if data["units"][n] <= logic.MAX_UNITS else f" (first {logic.MAX_UNITS})"
            scales[n] = resolve(scale, data["values"][n])
            figs.append(trajectory_slots(data["values"][n], data["tokens"], threshold=th,
                                         scale=scales[n], title=f"{n}{cut}"))  # fmt: skip
            styles.append({"display": "block"})
        else:
            figs.append({})
            styles.append({"display": "none"})
    d = data["doc"]
    b = store.boundaries
    info = (f"tokens [{view.start}, {view.end}) of {store.n_tokens:,}; document {d} "
            f"{store.doc_ids[d]!r} spans [{int(b[d])}, {int(b[d + 1])})")  # fmt: skip
    if view.size > LABELLED:
        info += (f"; one token in {-(-view.size // LABELLED)} labelled (a window of "
                 f"{LABELLED} or less labels each)")  # fmt: skip
    qs = ctx.cached(("quantiles", model, names[0]), lambda: logic.quantiles(store, names[0])) \
        if names else {}  # fmt: skip
    record = {"model": model, "names": names, "start": view.start, "size": view.size,
              "scale": scale, "scales": scales, "doc": d,
              "quantiles": {f"{q:g}": v for q, v in qs.items()}}  # fmt: skip
    return figs, styles, record, info, "; ".join(view.problems)


def quantile_text(view: dict | None) -> str:
    """The suggested thresholds line: quantiles of the first shown quantity."""
    if not view or not view.get("quantiles"):
        return ""
    parts = [f"{float(q) * 100:g}th {v:.3g}" for q, v in view["quantiles"].items()]
    return (f"Suggested thresholds: percentiles of {view['names'][0]} over the corpus: "
            + ", ".join(parts) + ".")  # fmt: skip


def update_selection(ctx, view, threshold, pad_left, pad_right, brush_start, brush_end,
                     url_cells=None, compat=None, track=None):  # fmt: skip
    """Selection for a brush: figure updates, counts, cell lists, URL and shared selection.

    Parameters
    ----------
    view : dict
        The record :func:`render_view` returned.
    threshold, pad_left, pad_right, brush_start, brush_end
        Control values (brush in global steps; either end None means no brush).
    url_cells : list of int, optional
        Cells given in the URL, used when there is no brush.
    compat : None or "lstmvis"
        The selection and match rules (:func:`workbench.store.search.select_cells`).
    track : str, optional
        The meta track under the plots (kept in the URL).

    Returns
    -------
    dict
        ``updates`` (per shown layer, :func:`~workbench.viz._app_figures.trajectory_selection`
        dicts), ``counts`` figure, ``cells`` name -> list, ``selection`` (wb-selection data or
        None), ``query`` (URL search), ``message``.
    """
    from workbench.viz._app_figures import selection_counts, trajectory_selection

    store = ctx.store(view["model"])
    state = logic.ViewState(view["model"], list(view["names"]), start=int(view["start"]),
                            size=int(view["size"]), cells=url_cells or None,
                            scale=view.get("scale") or "auto", track=track or None)  # fmt: skip
    message = ""
    try:
        state.threshold = float(threshold)
        state.pad = (int(pad_left or 0), int(pad_right or 0))
    except (TypeError, ValueError):
        message = "threshold and padding must be numbers; using 0.3 and (1, 0)"
    if min(state.pad) < 0:
        message, state.pad = "padding must be >= 0; using (1, 0)", (1, 0)
    if brush_start is not None and brush_end is not None:
        try:
            state.brush = (int(brush_start), int(brush_end))
        except (TypeError, ValueError):
            message = "the brush must be two step numbers"
    data = logic.window(store, state)
    scales = view.get("scales") or {}
    try:
        cells = logic.selections(store, state, compat=compat)
    except logic.ViewError as exc:
        cells, message, state.brush = {}, str(exc), None
    rel = None
    if state.brush is not None:
        rel = (state.brush[0] - state.start, state.brush[1] - state.start)
    updates = []
    for n in state.names:
        c = cells.get(n, [])
        c = [int(u) for u in c if u < data["values"][n].shape[1]]
        updates.append(trajectory_selection(data["values"][n], data["tokens"], c, brush=rel,
                                            threshold=state.threshold,
                                            scale=scales.get(n, "auto")))  # fmt: skip
    counts = selection_counts(logic.counts(data["values"], cells, state.threshold, compat),
                              state.names, data["tokens"])  # fmt: skip
    primary = cells.get(state.names[0]) if state.names else None
    if state.brush is None:
        state.cells = [int(c) for c in primary] if primary is not None else None
    else:
        state.cells = [int(c) for c in primary] if primary is not None and primary.size else None
    selection = None
    if state.cells:
        a, b = state.brush if state.brush is not None else (state.start, state.end)
        selection = {"model": state.model, "name": state.names[0], "cells": state.cells,
                     "threshold": state.threshold, "pad": list(state.pad), "start": a,
                     "end": b, "compat": compat}  # fmt: skip
    return {
        "updates": updates,
        "counts": counts,
        "cells": {n: [int(u) for u in c] for n, c in cells.items()},
        "selection": selection,
        "query": state.query(),
        "message": message,
    }


def match_view(ctx, selection, track):
    """Match results for a selection: strength / meta heatmaps, histogram, list, summary."""
    from workbench.viz._app_figures import aligned_heatmap, length_histogram

    store = ctx.store(selection["model"])
    if store is None:
        raise logic.ViewError(
            f"no state store for {selection['model']!r} yet: start the app with "
            "`workbench serve` (it builds the demo stores) or pass a store folder"
        )
    res = logic.run_match(store, selection["name"], selection["cells"], selection["threshold"],
                          tuple(selection.get("pad", (1, 0))), track=track or None,
                          compat=selection.get("compat"))  # fmt: skip
    m = res["matches"]
    k = len(selection["cells"])
    if len(m) == 0:
        what = "this cell is never on" if k == 1 else f"these {k} cells are never on together"
        raise logic.ViewError(
            f"{what} anywhere in the store (threshold {selection['threshold']}); "
            "lower the threshold or select other cells"
        )
    strength = aligned_heatmap(res["strength"], res["tokens"], res["rows"],
                               name="cells on", zmin=0, zmax=k, offsets=res["offsets"],
                               title=f"match strength (of {k} cells)")  # fmt: skip
    meta = {}
    if res["meta"] is not None:
        meta = aligned_heatmap(res["meta"], res["tokens"], res["rows"], name=track,
                               colorscale="Oranges", offsets=res["offsets"], cell_text=False,
                               title=f"meta track: {track} (tokens on hover: the same rows "
                                     "as above)")  # fmt: skip
    hist = length_histogram(m.fuzzy_histogram, m.strict_histogram,
                            title=f"span lengths of {m.n_candidates} candidates")  # fmt: skip
    summary = [f"{len(m)} best of {m.n_candidates} candidate spans "
               f"(co-activation level {m.level} of {k} cells)."]  # fmt: skip
    for t, entry in list(res["summary"].items())[:6]:
        summary.append(f"{t}: mean {entry['mean']:.3g} over matched steps.")
    return {"strength": strength, "meta": meta, "hist": hist, "summary": " ".join(summary),
            "starts": [int(s) for s in m.start], "lengths": [int(n) for n in m.length],
            "rows": res["rows"], "tokens": res["tokens"], "before": -res["offsets"][0]}  # fmt: skip


def _match_list(selection, result) -> html.Ol:
    items = []
    base = logic.ViewState(selection["model"], [selection["name"]],
                           threshold=selection["threshold"],
                           pad=tuple(selection.get("pad", (1, 0))))  # fmt: skip
    for row, s, n, toks in zip(result["rows"], result["starts"], result["lengths"],
                               result["tokens"], strict=True):  # fmt: skip
        view = logic.ViewState(**{**base.__dict__, "start": max(s - 20, 0), "size": 100,
                                  "brush": (s, s + n), "problems": []})  # fmt: skip
        span = toks[result["before"] : result["before"] + n]
        chars = all(len(t) <= 1 for t in span)
        text = "".join(visible_token(t) for t in span) if chars else " ".join(span)
        items.append(html.Li([dcc.Link(row, href=PATH + view.query(), className="wb-chip"),
                              html.Code(text[:120])]))  # fmt: skip
    return html.Ol(items)


def navigate(ctx, trigger, view, start, size, find_text, doc, match_data, relayout, text_index,
             brush_start=None):  # fmt: skip
    """New ``(start, brush_start, brush_end, message)`` for a navigation event.

    ``trigger`` is ``prev next doc find clear match:<row> brush`` ; ``relayout`` the plot's
    relayout data (with ``selections``) for ``brush``. ``find`` brushes the tokens of the
    next occurrence after the brush inside the window (a previous hit), else from the window
    start on.
    """
    store = ctx.store(view["model"])
    size = int(size or logic.DEFAULT_SIZE)
    start = int(view["start"] if start is None else start)
    keep = (no_update, no_update)
    if trigger == "prev":
        return max(start - size // 2, 0), *keep, ""
    if trigger == "next":
        return min(start + size // 2, max(store.n_tokens - size, 0)), *keep, ""
    if trigger == "doc" and doc is not None:
        if int(doc) == view.get("doc"):
            return no_update, *keep, no_update  # the box now follows the view
        return int(store.boundaries[int(doc)]), *keep, ""
    if trigger == "clear":
        return no_update, None, None, ""
    if trigger == "find":
        inside = brush_start is not None and start <= int(brush_start) < start + size
        hit = logic.find_span(text_index(), find_text or "", int(brush_start) if inside
                              else start - 1)  # fmt: skip
        if hit is None:
            return no_update, *keep, f"{find_text!r} does not occur in the corpus"
        a, b = hit
        return (
            max(a - 10, 0),
            a,
            b,
            f"found {find_text!r} at steps [{a}, {b}) (brushed); Find next goes on",
        )
    if trigger.startswith("match:") and match_data:
        i = int(trigger.split(":", 1)[1])
        s, n = match_data["starts"][i], match_data["lengths"][i]
        return max(s - size // 4, 0), s, s + n, f"match #{i + 1} at step {s}"
    if trigger == "brush":
        span = _brush_from_relayout(relayout or {})
        if span is None:
            return no_update, *keep, ""
        lo, hi = span
        a = view["start"] + max(int(-(-lo // 1)), 0)  # ceil
        b = view["start"] + min(int(hi // 1) + 1, view["size"])
        if b <= a:
            return no_update, *keep, "brush at least one whole token"
        return no_update, a, b, ""
    return no_update, *keep, ""


def _brush_from_relayout(relayout: dict) -> tuple[float, float] | None:
    sel = relayout.get("selections")
    if isinstance(sel, list) and sel:
        s = sel[-1]
        if "x0" in s and "x1" in s:
            return min(s["x0"], s["x1"]), max(s["x0"], s["x1"])
    x0, x1 = relayout.get("selections[0].x0"), relayout.get("selections[0].x1")
    if x0 is not None and x1 is not None:
        return min(x0, x1), max(x0, x1)
    return None


def _patch(update: dict) -> Patch:
    p = Patch()
    for i, t in enumerate(update["traces"]):
        for key, value in t.items():
            p["data"][1 + i][key] = value
    p["layout"]["shapes"][0]["y0"] = update["threshold"]
    p["layout"]["shapes"][0]["y1"] = update["threshold"]
    if update["brush"] is None:
        p["layout"]["shapes"][1]["visible"] = False
    else:
        p["layout"]["shapes"][1]["x0"], p["layout"]["shapes"][1]["x1"] = update["brush"]
        p["layout"]["shapes"][1]["visible"] = True
    return p


def _cells_list(cells: dict) -> list:
    if not cells:
        return [html.P("No brush yet: drag across a plot or type a range.", className="wb-hint")]
    out = []
    for n, c in cells.items():
        chips = [html.Span(str(u), className="wb-chip") for u in c[:200]]
        more = f" and {len(c) - 200} more" if len(c) > 200 else ""
        out.append(html.P([html.B(f"{n}: {len(c)} cells "), *chips, more]))
    return out


# -------------------------------------------------------------------------------- register
def register(app, ctx) -> None:
    """States callbacks: options, view, navigation, selection, match."""
    n = logic.MAX_LAYERS

    @app.callback(
        Output("states-layers", "options"), Output("states-layers", "value"),
        Output("states-direction", "options"), Output("states-direction", "value"),
        Output("states-quantity", "options"), Output("states-quantity", "value"),
        Input("states-model", "value"), Input("states-layers", "value"),
        Input("states-direction", "value"), State("states-quantity", "value"),
        prevent_initial_call=True,
    )  # fmt: skip
    def on_model(model, layers, direction, quantity):
        return update_options(ctx, model, layers, direction, quantity)[:-1]

    @app.callback(
        *[Output(f"states-graph-{i}", "figure") for i in range(n)],
        *[Output(f"states-graph-box-{i}", "style") for i in range(n)],
        Output("states-view", "data"), Output("states-window-info", "children"),
        Output("states-message", "children"), Output("states-doc", "options"),
        Output("states-doc", "value"), Output("states-quantiles", "children"),
        Input("states-model", "value"), Input("states-layers", "value"),
        Input("states-direction", "value"), Input("states-quantity", "value"),
        Input("states-start", "value"), Input("states-size", "value"),
        Input("states-scale", "value"), State("states-threshold", "value"),
    )  # fmt: skip
    def on_view(model, layers, direction, quantity, start, size, scale, threshold):
        figs, styles, record, info, message = render_view(
            ctx, model, layers, direction, quantity, start, size, threshold, scale
        )
        if record is None:
            return *figs, *styles, record, info, message, no_update, no_update, ""
        docs = _doc_options(ctx.store(model), record["doc"])
        return (*figs, *styles, record, info, message, docs, record["doc"],
                quantile_text(record))  # fmt: skip

    @app.callback(
        Output("states-threshold", "value"),
        Input("states-threshold-p90", "n_clicks"), State("states-view", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    def on_p90(_clicks, view):
        q = ((view or {}).get("quantiles") or {}).get("0.9")
        return no_update if q is None else float(f"{q:.4g}")

    # Three callbacks, not one: Dash drops a pending answer when the same callback is asked
    # again, so a plot's relayout (plotly sends one after every render) or the Document box
    # following the view must never share a callback with Find, Prev/Next or a match click.
    nav = (Output("states-start", "value", allow_duplicate=True),
           Output("states-brush-start", "value", allow_duplicate=True),
           Output("states-brush-end", "value", allow_duplicate=True),
           Output("states-nav-message", "children", allow_duplicate=True))  # fmt: skip
    view_state = (State("states-view", "data"), State("states-start", "value"),
                  State("states-size", "value"), State("states-find-text", "value"),
                  State("states-match-data", "data"),
                  State("states-brush-start", "value"))  # fmt: skip

    def text_index(view):
        model = view["model"]
        return lambda: ctx.cached(("text", model), lambda: logic.corpus_text(ctx.store(model)))

    def answer(trigger, state, doc=None, relayout=None):
        view, start, size, find_text, match_data, brush_start = state
        if not view or not trigger:
            raise PreventUpdate
        out = navigate(ctx, trigger, view, start, size, find_text, doc, match_data, relayout,
                       text_index(view), brush_start=brush_start)  # fmt: skip
        if all(v is no_update for v in out):
            raise PreventUpdate
        return out

    @app.callback(
        *nav,
        Input("states-prev", "n_clicks"), Input("states-next", "n_clicks"),
        Input("states-find", "n_clicks"), Input("states-find-text", "n_submit"),
        Input("states-clear", "n_clicks"),
        Input("states-match-strength", "clickData"), Input("states-match-meta", "clickData"),
        *view_state,
        prevent_initial_call=True,
    )  # fmt: skip
    def on_navigate(*args):
        trigger = str(dash_ctx.triggered_id or "").removeprefix("states-")
        if trigger == "find-text":
            trigger = "find"
        elif trigger in ("match-strength", "match-meta"):
            click = dash_ctx.triggered[0]["value"] or {}
            row = (click.get("points") or [{}])[0].get("y")
            trigger = f"match:{int(row)}" if row is not None else ""
        return answer(trigger, args[-6:])

    @app.callback(
        *nav, Input("states-doc", "value"), *view_state, prevent_initial_call=True
    )  # fmt: skip
    def on_doc(doc, *state):
        return answer("doc", state, doc=doc)

    @app.callback(
        *nav,
        *[Input(f"states-graph-{i}", "relayoutData") for i in range(n)],
        *view_state,
        prevent_initial_call=True,
    )  # fmt: skip
    def on_brush(*args):
        relayout = dash_ctx.triggered[0]["value"] if dash_ctx.triggered else None
        if not relayout or _brush_from_relayout(relayout) is None:
            raise PreventUpdate  # autosize, zoom, pan: not a brush
        return answer("brush", args[-6:], relayout=relayout)

    @app.callback(
        Output("states-url-cells", "data"),
        Input("states-clear", "n_clicks"),
        prevent_initial_call=True,
    )
    def on_clear(_clicks):
        return None

    @app.callback(
        *[Output(f"states-graph-{i}", "figure", allow_duplicate=True) for i in range(n)],
        Output("states-counts", "figure"), Output("states-cells", "children"),
        Output("wb-selection", "data"), Output("states-sel", "data"),
        Output("wb-url", "search"), Output("wb-url-written", "data"),
        Output("states-select-message", "children"),
        Input("states-view", "data"), Input("states-threshold", "value"),
        Input("states-pad-left", "value"), Input("states-pad-right", "value"),
        Input("states-brush-start", "value"), Input("states-brush-end", "value"),
        Input("states-compat", "value"), Input("states-track", "value"),
        State("states-url-cells", "data"), State("wb-url", "pathname"),
        prevent_initial_call="initial_duplicate",
    )  # fmt: skip
    def on_select(view, threshold, pad_left, pad_right, b0, b1, compat, track, url_cells,
                  pathname):  # fmt: skip
        if not view:
            return (no_update,) * (n + 7)
        out = update_selection(ctx, view, threshold, pad_left, pad_right, b0, b1, url_cells,
                               compat=_compat(compat), track=track)  # fmt: skip
        patches = [_patch(u) for u in out["updates"]] + [no_update] * (n - len(out["updates"]))
        sel = out["selection"]
        # a late answer after the user left the page must not rewrite the other page's URL
        query = out["query"] if pathname in (PATH, *ALIASES) else no_update
        return (*patches, out["counts"], _cells_list(out["cells"]), sel, sel,
                query, query, out["message"])  # fmt: skip

    @app.callback(
        Output("states-track-graph", "figure"), Output("states-track-box", "style"),
        Input("states-view", "data"), Input("states-track", "value"),
    )  # fmt: skip
    def on_track(view, track):
        return track_figure(ctx, view, track)

    @app.callback(
        Output("states-match-strength", "figure"), Output("states-match-meta", "figure"),
        Output("states-match-hist", "figure"), Output("states-match-list", "children"),
        Output("states-match-summary", "children"), Output("states-match-data", "data"),
        Output("states-match-meta", "style"), Output("states-match-plots", "style"),
        Input("states-sel", "data"), Input("states-match-track", "value"),
    )  # fmt: skip
    def on_match(selection, track):
        hide = {"display": "none"}
        if not selection or not selection.get("cells"):
            return {}, {}, {}, [], NO_SELECTION, None, hide, hide
        try:
            res = match_view(ctx, selection, track)
        except logic.ViewError as exc:
            return {}, {}, {}, [], html.Span(str(exc), className="wb-error"), None, hide, hide
        data = {"starts": res["starts"], "lengths": res["lengths"]}
        style = {"display": "block"} if res["meta"] else hide
        return (res["strength"], res["meta"], res["hist"], _match_list(selection, res),
                res["summary"], data, style, {"display": "block"})  # fmt: skip
