"""Gates page: saturation, gate and attention heatmaps, best cells per meta track.

Gate saturation over the corpus, gate and attention heatmaps of one input, and the best
cell for each meta track with its trajectory.
"""

from __future__ import annotations

import numpy as np
from dash import Input, Output, State, dcc, html

from workbench import names as _names
from workbench.app import _states_logic as slogic

PATH = "/gates"
TITLE = "Gates"
GRAPH = {"displaylogo": False}


def _error(text: str) -> html.Div:
    return html.Div(text, className="wb-error")


def _model_links(ctx, model: str) -> html.P:
    return html.P(["Model: "] + [
        dcc.Link(m, href=f"{PATH}?model={m}", className="wb-chip",
                 style={"fontWeight": 700} if m == model else {})
        for m in ctx.model_names()
    ])  # fmt: skip


def gate_groups(names: list[str]) -> dict[str, list[str]]:
    """``"rnn.0.fwd"`` -> its gate names (sigmoid gates only)."""
    out: dict[str, list[str]] = {}
    for n in names:
        parsed = _names.recurrent(n)
        if parsed is not None and parsed.is_gate:
            out.setdefault(f"{parsed.group}.{parsed.direction}", []).append(n)
    return out


def layout(ctx, model=None, text=None, **_ignored):
    """The Gates page for ``?model=`` (bad values are reported, never raised)."""
    from workbench.app import _explain_logic as xlogic

    names = ctx.model_names()
    if not names:
        return _error("No model is served.")
    problem = None
    if model not in names:
        problem = None if model is None else f"unknown model {model!r}; showing {names[0]!r}"
        model = names[0]
    bundle = ctx.bundle(model)
    examples = xlogic.examples_for(bundle, ctx.corpus_name(model))
    text = text if isinstance(text, str) and text else (examples[0] if examples else "")
    store = ctx.store(model)
    groups = gate_groups(store.names) if store is not None else {}
    quantities = [n for n in (store.names if store is not None else []) if slogic.split_name(n)]
    best_default = slogic.default_names(quantities)
    corpus_part = (
        [
            html.H3("Gate saturation over the corpus"),
            html.P(
                "Fraction of steps each gate unit spends below 0.1 (left) and above 0.9 "
                "(right), Karpathy et al. 2015.",
                className="wb-hint",
            ),  # fmt: skip
            html.Label(
                [
                    "Layer",
                    dcc.Dropdown(
                        id="gates-layer",
                        options=list(groups),
                        value=list(groups)[-1] if groups else None,
                        clearable=False,
                    ),
                ]
            ),
            dcc.Loading(dcc.Graph(id="gates-saturation", config=GRAPH)),
            html.H3("Best cell for each meta track"),
            html.Div(
                [
                    html.Label(
                        [
                            "Quantity",
                            dcc.Dropdown(
                                id="gates-best-name",
                                options=quantities,
                                value=best_default[0] if best_default else None,
                                clearable=False,
                            ),
                        ]
                    ),  # fmt: skip
                    html.Label(
                        [
                            "Trajectory of the best cell for",
                            dcc.Dropdown(
                                id="gates-track",
                                options=store.meta_tracks,
                                value=store.meta_tracks[0] if store.meta_tracks else None,
                            ),
                        ]
                    ),
                ],
                className="wb-controls",
            ),
            dcc.Loading(
                html.Div(
                    [html.Div(id="gates-best"), dcc.Graph(id="gates-best-trajectory", config=GRAPH)]
                )
            ),
        ]
        if store is not None
        else [
            _error(
                f"No state store for {model}: corpus views are off. Start the app with "
                "`workbench serve` to build the demo stores."
            )
        ]  # fmt: skip
    )
    return html.Div(
        [
            html.H2("Gates"),
            _model_links(ctx, model),
            dcc.Store(id="gates-model", data=model),
            _error(problem) if problem else None,
            *corpus_part,
            html.H3("Gates on one input"),
            dcc.Dropdown(
                id="gates-example",
                options=[{"label": e[:80].replace("\n", " \u23ce "), "value": e} for e in examples],
                placeholder="pick an example from the test split",
            ),  # fmt: skip
            dcc.Textarea(
                id="gates-text",
                value=text,
                maxLength=20_000,
                style={"width": "100%", "height": "4em"},
            ),  # fmt: skip
            html.Div(
                [
                    html.Label(
                        [
                            "Quantity",
                            dcc.Dropdown(
                                id="gates-quantity", clearable=False, options=[], value=None
                            ),
                        ]
                    ),  # fmt: skip
                    html.Button("Record", id="gates-run", n_clicks=1),
                ],
                className="wb-controls",
            ),
            dcc.Loading(
                html.Div(
                    [
                        html.Div(id="gates-input-message"),
                        dcc.Graph(id="gates-heatmap", config=GRAPH),
                        html.Div(id="gates-attention"),
                    ]
                )
            ),  # fmt: skip
        ],
        className="wb-gates",
    )


# ------------------------------------------------------------------- callback functions
def saturation_figure(ctx, model: str, layer: str):
    """Saturation scatter of one layer's gates (cached per model)."""
    from workbench.viz._app_figures import saturation_points

    store = ctx.store(model)
    groups = gate_groups(store.names)
    if layer not in groups:
        raise slogic.ViewError(f"no gates for layer {layer!r}; pick one of {list(groups)}")
    frame = ctx.cached(("saturation", model), lambda: store.saturation())
    return saturation_points(frame[frame["name"].isin(groups[layer])], title=layer)


def warm(ctx) -> None:
    """Compute every store's saturation table and default best cells now (cached)."""
    for model in ctx.model_names():
        store = ctx.store(model)
        if store is None:
            continue
        ctx.cached(("saturation", model), lambda s=store: s.saturation())
        names = slogic.default_names(store.names)
        if names and store.meta_tracks:
            n = names[0]
            ctx.cached(("best", model, n), lambda s=store, n=n: s.best_cells(n, top=3))


#: Steps of the best-cell trajectory: the token axis labels every token up to 100 steps.
_BEST_WINDOW = 100


def best_cells(ctx, model: str, name: str, track: str | None):
    """``(table rows, trajectory figure)`` of the best cells per meta track of ``name``."""
    from workbench.viz._app_figures import unit_track

    store = ctx.store(model)
    if name not in store.names:
        raise slogic.ViewError(f"{name!r} is not in the {model} store")
    if not store.meta_tracks:
        return [], {}
    frame = ctx.cached(("best", model, name), lambda: store.best_cells(name, top=3))
    rows = frame.to_dict("records")
    if not track or track not in store.meta_tracks:
        return rows, {}
    unit = int(frame[(frame["track"] == track) & (frame["rank"] == 0)]["unit"].iloc[0])
    values = store.meta(track)
    # a window where the track changes, so the unit's following it is visible
    changes = np.flatnonzero(np.diff(values.astype(np.float64)) != 0)
    centre = int(changes[0]) if changes.size else 0
    a = max(centre - 20, 0)
    b = min(a + _BEST_WINDOW, store.n_tokens)
    fig = unit_track(store.states(name).rows(a, b, [unit])[:, 0], values[a:b],
                     store.tokens(a, b), unit_name=f"{name} unit {unit}", track_name=track,
                     title=f"best cell for {track}: unit {unit} (steps {a}-{b})")  # fmt: skip
    return rows, fig


def record_input(ctx, model: str, text: str, quantity: str | None):
    """Record ``text``: ``(quantity options, chosen, gate heatmap, attention figures)``."""
    import workbench
    from workbench.app import _explain_logic as xlogic
    from workbench.viz import attention_heatmap, gate_heatmap

    bundle = ctx.bundle(model)
    prepared = xlogic.prepare(bundle, text)
    trace = workbench.record(bundle.model, *prepared.args, **prepared.kwargs)
    names = [n for n in trace.names if slogic.split_name(n)]
    if quantity not in names:
        pref = [n for n in names if n.endswith("forget_gate") or n.endswith("update_gate")]
        quantity = pref[-1] if pref else names[-1]
    values = trace[quantity][0].detach().numpy()
    units = list(range(min(values.shape[1], 64)))
    heat = gate_heatmap(values, prepared.tokens, gate=quantity, units=units,
                        title=f"{quantity}" + (" (first 64 units)" if values.shape[1] > 64
                                               else ""))  # fmt: skip
    attention = []
    for n in trace.names:
        if not _names.is_attention(n):
            continue
        w = trace[n][0].detach().numpy()
        if w.ndim == 3:  # [heads, query, key]
            attention.append(attention_heatmap(w[0], prepared.tokens, title=f"{n} head 0"))
        else:  # pooling weights [time] or [time, 1]
            attention.append(attention_heatmap(w.reshape(1, -1), ["pool"], prepared.tokens,
                                               title=f"{n} (attention pooling)"))  # fmt: skip
    return names, quantity, heat, attention


def register(app, ctx) -> None:
    """Gates callbacks: saturation, best cells, recording an input."""

    @app.callback(
        Output("gates-saturation", "figure"),
        Input("gates-layer", "value"),
        State("gates-model", "data"),
    )
    def on_layer(layer, model):
        try:
            return saturation_figure(ctx, model, layer)
        except (slogic.ViewError, AttributeError):
            return {}

    @app.callback(
        Output("gates-best", "children"),
        Output("gates-best-trajectory", "figure"),
        Input("gates-best-name", "value"),
        Input("gates-track", "value"),
        State("gates-model", "data"),
    )
    def on_best(name, track, model):
        try:
            rows, fig = best_cells(ctx, model, name, track)
        except slogic.ViewError as exc:
            return _error(str(exc)), {}
        if not rows:
            return html.P("This store has no meta track to rank cells against.",
                          className="wb-hint"), fig  # fmt: skip
        head = html.Tr([html.Th(c) for c in ("track", "rank", "unit", "method", "score")])
        body = [
            html.Tr(
                [
                    html.Td(r["track"]),
                    html.Td(r["rank"] + 1),
                    html.Td(r["unit"]),
                    html.Td(r["method"]),
                    html.Td(f"{r['score']:.3f}"),
                ]
            )
            for r in rows
        ]
        return html.Table([head, *body], className="wb-table"), fig

    @app.callback(
        Output("gates-text", "value"),
        Input("gates-example", "value"),
        prevent_initial_call=True,
    )
    def on_example(value):
        return value or ""

    @app.callback(
        Output("gates-quantity", "options"),
        Output("gates-quantity", "value"),
        Output("gates-heatmap", "figure"),
        Output("gates-attention", "children"),
        Output("gates-input-message", "children"),
        Input("gates-run", "n_clicks"),
        Input("gates-quantity", "value"),
        State("gates-text", "value"),
        State("gates-model", "data"),
    )
    def on_record(_clicks, quantity, text, model):
        from workbench.app._explain_logic import InputError

        try:
            names, chosen, heat, att = record_input(ctx, model, text, quantity)
        except (InputError, ValueError) as exc:
            return [], None, {}, [], _error(str(exc))
        graphs = [dcc.Graph(figure=f, config=GRAPH) for f in att]
        return names, chosen, heat, graphs, ""
