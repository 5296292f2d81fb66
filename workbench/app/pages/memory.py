"""Memory page: how far back a model remembers (connectivity over lag, unit time scales).

Connectivity: the gradient norm of the next-token log-probability at a window's last step
with respect to the input ``k`` steps back (Madsen 2019), averaged over windows drawn from
the model's store, with 95 % bands; the loss's gradient with respect to each layer's hidden
and cell state per lag. Time scales: ``tau = -1 / log(mean forget gate)`` per unit
(``update_gate`` for a GRU), ranked, with the cell state's autocorrelation as a check.
"""

from __future__ import annotations

from dash import Input, Output, State, dcc, html

from workbench.app import _memory_logic as logic

PATH = "/memory"
TITLE = "Memory"
GRAPH = {"displaylogo": False}


def _error(text: str) -> html.Div:
    return html.Div(text, className="wb-error")


def _number(label: str, id_: str, value: int) -> html.Label:
    # no min / max on the input: the browser would send None for a value out of range; the
    # server caps it and says so
    return html.Label([label, dcc.Input(id=id_, type="number", value=value, step=1)])


def layout(ctx, model=None, **_ignored):
    """The Memory page for ``?model=`` (bad values are reported, never raised)."""
    names = [m for m in ctx.model_names() if logic.is_language_model(ctx.bundle(m))]
    if not names:
        return _error("No language model is served: memory curves need one (python, parens).")
    problem = None
    if model not in names:
        problem = None if model is None else f"unknown model {model!r}; showing {names[0]!r}"
        model = names[0]
    links = html.P(["Model: "] + [
        dcc.Link(m, href=f"{PATH}?model={m}", className="wb-chip",
                 style={"fontWeight": 700} if m == model else {})
        for m in names
    ])  # fmt: skip
    store = ctx.store(model)
    from workbench import memory

    gates = memory.keep_gates(store.names) if store is not None else []
    steps = logic.default_steps(store)
    return html.Div(
        [
            html.H2("Memory"),
            links,
            dcc.Store(id="memory-model", data=model),
            _error(problem) if problem else None,
            html.H3("Connectivity over lag"),
            html.P(
                "How strongly the next-token log-probability at a window's last step depends "
                "on the input k steps back: the gradient norm with respect to the input "
                "embedding (Madsen 2019), mean over windows drawn from the corpus with its "
                "95 % band; dotted: the memory horizon (first lag below 10 % of the peak). "
                f"At most {logic.APP_MAX_WINDOWS} windows x {logic.APP_MAX_STEPS} steps here.",
                className="wb-hint",
            ),
            html.Div(
                [
                    _number("Windows", "memory-windows", 100),
                    _number("Steps", "memory-steps", steps),
                    html.Button("Compute", id="memory-run", n_clicks=1),
                ],
                className="wb-controls",
            ),
            dcc.Loading(
                html.Div(
                    [
                        html.Div(id="memory-message"),
                        dcc.Graph(id="memory-connectivity", config=GRAPH),
                        html.P(
                            "The loss's gradient with respect to each layer's hidden and cell "
                            "state k steps back (vanishing gradients made visible; first 100 "
                            "windows).",
                            className="wb-hint",
                        ),
                        dcc.Graph(id="memory-states", config=GRAPH),
                    ]
                )
            ),
            html.H3("Unit time scales"),
            html.P(
                "tau = -1 / log(mean forget gate) per unit (a GRU's update gate z keeps z of "
                "the state, so tau = -1 / log(mean z)); bars: 10-90 % over blocks of 2,000 "
                "tokens; diamonds: the lag at which the state's autocorrelation falls below "
                "1/e (model-free).",
                className="wb-hint",
            ),
            html.Label(
                [
                    "Layer",
                    dcc.Dropdown(
                        id="memory-gate",
                        options=gates,
                        value=gates[-1] if gates else None,
                        clearable=False,
                    ),
                ]
            ),
            dcc.Loading(
                html.Div(
                    [
                        html.Div(id="memory-scales-message"),
                        dcc.Graph(id="memory-histogram", config=GRAPH),
                        dcc.Graph(id="memory-ranking", config=GRAPH),
                        html.Div(id="memory-ranking-table"),
                    ]
                )
            ),
        ],
        className="wb-memory",
    )


def register(app, ctx) -> None:
    """Memory callbacks: connectivity on Compute, time scales on a layer."""
    from workbench.viz import memory_curves, time_scale_histogram, time_scale_ranking

    @app.callback(
        Output("memory-connectivity", "figure"),
        Output("memory-states", "figure"),
        Output("memory-message", "children"),
        Input("memory-run", "n_clicks"),
        State("memory-windows", "value"),
        State("memory-steps", "value"),
        State("memory-model", "data"),
    )
    def on_run(_clicks, windows, steps, model):
        from workbench.memory import MeasureError

        try:
            windows, steps, note = logic.bounded_request(windows, steps)
            curves, state = logic.connectivity_view(ctx, model, windows, steps)
        except (logic.MemoryViewError, MeasureError) as exc:
            return {}, {}, _error(str(exc))
        text = logic.horizon_text(curves)
        message = html.P(f"{text}. {note}" if note else text, id="memory-horizon")
        return (
            memory_curves(curves, title=f"{model}: connectivity over lag"),
            memory_curves(
                state, share=None, title=f"{model}: ||dL/dstate|| over lag", ytitle="||dL/dstate||"
            ),
            message,
        )

    @app.callback(
        Output("memory-histogram", "figure"),
        Output("memory-ranking", "figure"),
        Output("memory-ranking-table", "children"),
        Output("memory-scales-message", "children"),
        Input("memory-gate", "value"),
        State("memory-model", "data"),
    )
    def on_gate(gate, model):
        try:
            scales, gate, efold = logic.time_scale_view(ctx, model, gate)
        except logic.MemoryViewError as exc:
            return {}, {}, None, _error(str(exc))
        chosen = next(s for s in scales if s.name == gate)
        rows = logic.ranking_rows(chosen, efold)
        head = html.Tr([html.Th(c) for c in rows[0]])
        body = [html.Tr([html.Td(logic.fmt(v)) for v in r.values()]) for r in rows]
        return (
            time_scale_histogram(scales, title=f"{model}: unit time scales"),
            time_scale_ranking(chosen, efold=efold),
            html.Table([head, *body], className="wb-table"),
            "",
        )
