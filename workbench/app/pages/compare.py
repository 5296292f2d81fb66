"""Compare page: two models (or checkpoints) side by side on the same text.

Bits per character, the layer x layer CKA matrix, unit matching, interpretable-cell
counterparts and gate saturation; the computation lives in :mod:`workbench.app._compare_logic`.
"""

from __future__ import annotations

from dash import Input, Output, dcc, html

from workbench.app import _compare_logic as logic

PATH = "/compare"
TITLE = "Compare"
GRAPH = {"displaylogo": False}
_VIEWS = ("bpc", "cka", "matches", "cells", "saturation")


def _error(text: str) -> html.Div:
    return html.Div(text, className="wb-error")


def layout(ctx, a=None, b=None, **_ignored):
    """The Compare page for ``?a=&b=`` (bad values are reported, never raised)."""
    a, b, problem = logic.defaults(ctx, a, b)
    if a is None:
        return _error("No model is served.")
    options = logic.comparable(ctx) or ctx.model_names()
    pickers = html.Div(
        [
            html.Label(["Model A", dcc.Dropdown(id="compare-a", options=options, value=a,
                                                clearable=False)]),
            html.Label(["Model B", dcc.Dropdown(id="compare-b", options=options, value=b,
                                                clearable=False)]),
        ],
        className="wb-controls",
    )  # fmt: skip
    return html.Div(
        [
            html.H2("Compare"),
            html.P(
                "Two models' states on the same text: linear CKA (Kornblith et al. 2019) of "
                "every pair of layers, SVCCA (Raghu et al. 2017), for each unit of A the "
                f"best-correlated unit of B, and gate saturation; at most {logic.MAX_STEPS:,} "
                "common steps of their stores.",
                className="wb-hint",
            ),
            html.P(
                [
                    "Each model's memory curves and horizon (how many steps back its "
                    "predictions still depend on the input): the ",
                    dcc.Link("Memory page", href="/memory"),
                    ", one model at a time on the same test windows.",
                ],
                className="wb-hint",
            ),
            pickers,
            _error(problem) if problem else None,
            dcc.Loading(
                html.Div(
                    [
                        html.Div(id="compare-message"),
                        html.P(id="compare-summary", className="wb-hint"),
                        *[dcc.Graph(id=f"compare-{v}", config=GRAPH) for v in _VIEWS],
                    ]
                )
            ),
        ],
        className="wb-compare",
    )


def register(app, ctx) -> None:
    """Compare callbacks: one answer for the two pickers."""

    @app.callback(
        Output("compare-message", "children"),
        Output("compare-summary", "children"),
        *[Output(f"compare-{v}", "figure") for v in _VIEWS],
        Input("compare-a", "value"),
        Input("compare-b", "value"),
    )
    def on_pick(a, b):
        try:
            figs = logic.figures(ctx, a, b)
        except logic.ViewError as exc:
            return (_error(str(exc)), "", *({} for _ in _VIEWS))
        return ("", figs["summary"], *(figs[v] for v in _VIEWS))
