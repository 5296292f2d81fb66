"""Model page: architecture, metrics against baselines, corpus, recorder exactness.

The recorder's exactness is measured against the fused kernel on a real test input.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from workbench.viz._common import plotly_text

PATH = "/model"
TITLE = "Model"


def _error(text: str) -> html.Div:
    return html.Div(text, className="wb-error")


def _table(rows: list[tuple], head: tuple) -> html.Table:
    return html.Table(
        [html.Tr([html.Th(h) for h in head])]
        + [html.Tr([html.Td(str(c)) for c in r]) for r in rows],
        className="wb-table",
    )


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def metric_rows(metrics: dict) -> list[tuple[str, str, str]]:
    """``(metric, who, value)`` rows: the model's ``test_*`` numbers next to ``baseline_*``."""
    rows = []
    for k, v in metrics.items():
        if k.startswith("test_"):
            rows.append((k.removeprefix("test_"), "model", _fmt(v)))
    measured = [r[0] for r in rows]
    for k, v in metrics.items():
        if k.startswith("baseline_"):
            metric = next((m for m in measured if k.endswith("_" + m)), None)
            if metric is not None:
                who = k.removeprefix("baseline_").removesuffix("_" + metric)
                rows.append((metric, f"baseline: {who}", _fmt(v)))
    rows.sort(key=lambda r: (r[0], r[1] != "model"))
    return rows


def metrics_figure(metrics: dict) -> go.Figure:
    """Bars of the model's test metrics next to its baselines, one group per metric."""
    from workbench.viz._common import base_layout

    rows = metric_rows(metrics)
    fig = go.Figure()
    for who in dict.fromkeys(r[1] for r in rows):
        part = [r for r in rows if r[1] == who]
        fig.add_trace(go.Bar(x=[plotly_text(r[0]) for r in part],
                             y=[float(r[2]) for r in part], name=plotly_text(who)))  # fmt: skip
    fig.update_layout(**base_layout("test metrics vs baselines", height=300), barmode="group")
    return fig


def corpus_summary(store) -> list:
    """Tokens, documents, quantities and meta tracks of a store as page elements."""
    b = store.boundaries
    lengths = np.diff(b)
    rows = [
        ("tokens", f"{store.n_tokens:,}"),
        (
            "documents",
            f"{store.n_docs:,} (length {int(lengths.min())}-{int(lengths.max())}, "
            f"median {int(np.median(lengths))})",
        ),  # fmt: skip
        ("store", str(store.path)),
        ("dtype", store.manifest.get("dtype")),
    ]
    units = store.manifest["units"]
    names = _table([(n, units[n]) for n in store.names], ("recorded quantity", "units"))
    tracks = []
    for t in store.meta_tracks:
        v = store.meta(t)
        tracks.append((t, str(v.dtype), f"{float(np.mean(v)):.3g}", f"{v.min()}-{v.max()}"))
    return [
        _table(rows, ("", "")),
        names,
        _table(tracks, ("meta track", "dtype", "mean", "range"))
        if tracks
        else html.P("No meta tracks.", className="wb-hint"),
    ]


def exactness(ctx, model: str) -> list[tuple]:
    """Record a test example with ``check="full"``: ``(module, key, value)`` rows."""
    import workbench
    from workbench.app import _explain_logic as xlogic

    bundle = ctx.bundle(model)
    examples = xlogic.examples_for(bundle, ctx.corpus_name(model))
    if not examples:
        raise ValueError("no example input for this model")
    prepared = xlogic.prepare(bundle, examples[0])
    trace = workbench.record(bundle.model, *prepared.args, check="full", **prepared.kwargs)
    rows = []
    for module, info in (trace.meta.get("exactness") or {}).items():
        for key, value in info.items():
            rows.append((module, key, _fmt(value)))
    return rows


def layout(ctx, model=None, **_ignored):
    """The Model page for ``?model=`` (an unknown model is reported, never raised)."""
    names = ctx.model_names()
    if not names:
        return _error("No model is served.")
    problem = None
    if model not in names:
        problem = None if model is None else f"unknown model {model!r}; showing {names[0]!r}"
        model = names[0]
    bundle = ctx.bundle(model)
    config = bundle.config
    arch = [(k, _fmt(v)) for k, v in (config.get("arch") or {}).items()]
    data = [(k, _fmt(v)) for k, v in (config.get("data") or {}).items()]
    history = config.get("history") or []
    hist_rows = [(i + 1, ", ".join(f"{k}={_fmt(v)}" for k, v in h.get("metrics", {}).items()
                                   if k.startswith("test_")),
                  ", ".join(f"{k}={_fmt(v)}" for k, v in h.get("training", {}).items()
                            if k in ("lr", "epochs", "seed", "init")))
                 for i, h in enumerate(history)]  # fmt: skip
    store = ctx.store(model)
    n_params = sum(p.numel() for p in bundle.model.parameters())
    return html.Div(
        [
            html.H2(f"Model: {model}"),
            html.P(
                ["Model: "]
                + [dcc.Link(m, href=f"{PATH}?model={m}", className="wb-chip") for m in names]
            ),  # fmt: skip
            dcc.Store(id="model-name", data=model),
            _error(problem) if problem else None,
            html.Div(
                [
                    html.Div(
                        [
                            html.H3("Architecture"),
                            html.P(
                                f"{bundle.kind} on {bundle.task}; {n_params:,} parameters",
                                className="wb-hint",
                            ),  # fmt: skip
                            _table(arch, ("setting", "value")),
                            html.Pre(str(bundle.model), className="wb-pre"),
                        ]
                    ),
                    html.Div(
                        [
                            html.H3("Metrics (held-out test split)"),
                            _table(metric_rows(bundle.metrics), ("metric", "who", "value")),
                            dcc.Graph(
                                figure=metrics_figure(bundle.metrics),
                                id="model-metrics",
                                config={"displaylogo": False},
                            ),  # fmt: skip
                            html.H4("Training runs"),
                            _table(hist_rows, ("run", "test", "settings"))
                            if hist_rows
                            else html.P("One training run.", className="wb-hint"),  # fmt: skip
                        ]
                    ),
                ],
                className="wb-grid",
            ),
            html.H3("Data"),
            _table(data, ("", "")),
            html.H3("Corpus store"),
            *(
                corpus_summary(store)
                if store is not None
                else [_error("No state store for this model; `workbench serve` builds it.")]
            ),
            html.H3("Recorder exactness"),
            html.P(
                "Records a test example with every step checked against the fused kernel "
                "(check='full').",
                className="wb-hint",
            ),  # fmt: skip
            html.Button("Check again", id="model-check", n_clicks=1),
            dcc.Loading(html.Div(id="model-exactness")),
        ],
        className="wb-model",
    )


def register(app, ctx) -> None:
    """Model callbacks: the exactness check."""

    @app.callback(
        Output("model-exactness", "children"),
        Input("model-check", "n_clicks"),
        State("model-name", "data"),
    )
    def on_check(_clicks, model):
        try:
            rows = exactness(ctx, model)
        except (ValueError, KeyError) as exc:
            return _error(str(exc))
        return _table(rows, ("module", "", "value"))
