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


def exactness(ctx, model: str) -> dict:
    """Record a test example with ``check="full"``: the recorder's exactness per module.

    Returns
    -------
    dict
        Module name -> the trace's exactness metadata (``strategy``, ``dtype``,
        ``max_abs_error_hidden``, ``max_abs_error_cell``, ``cell_scale``, ``tolerance``...).
    """
    import workbench
    from workbench.app import _explain_logic as xlogic

    bundle = ctx.bundle(model)
    examples = xlogic.examples_for(bundle, ctx.corpus_name(model))
    if not examples:
        raise ValueError("no example input for this model")
    prepared = xlogic.prepare(bundle, examples[0])
    trace = workbench.record(bundle.model, *prepared.args, check="full", **prepared.kwargs)
    return dict(trace.meta.get("exactness") or {})


def verdicts(module: str, info: dict) -> list[tuple[str, str, str, str, str, str]]:
    """Pass/fail of each exactness check, with the tolerance that applies and why.

    The recorder's tolerance (``info["tolerance"]``, set by the dtype) bounds the hidden
    state's absolute error (hidden values lie in [-1, 1]) and the cell's error relative to
    ``max(1, |c|)`` (cells are unbounded and float error grows with their size).

    Returns
    -------
    list of tuple
        ``(module, check, measured, tolerance, verdict, why)`` rows.
    """
    tol = info.get("tolerance")
    dtype = info.get("dtype", "?")
    if tol is None:
        return [(module, "exactness", "-", "-", "not checked", "no tolerance recorded")]
    of = f"{tol:.0e} ({dtype}{', TF32' if info.get('tf32') else ''})"
    rows = []

    def row(check, value, why):
        ok = value <= tol
        rows.append((module, check, f"{value:.3g}", of, "pass" if ok else "FAIL", why))

    if "max_abs_error_hidden" in info:
        row("hidden: max |error|", float(info["max_abs_error_hidden"]),
            "absolute: hidden values lie in [-1, 1]")  # fmt: skip
    if "max_abs_error_cell" in info:
        abs_c, scale = float(info["max_abs_error_cell"]), float(info.get("cell_scale", 1.0))
        rel = float(info.get("max_rel_error_cell", abs_c / max(1.0, scale)))
        row("cell: max |error| / max(1, |c|)", rel,
            f"cells are unbounded: the absolute error {abs_c:.3g} is divided by the largest "
            f"|c| = {scale:.3g}, as float error grows with the value")  # fmt: skip
    return rows


def exactness_view(found: dict) -> list:
    """The exactness table (a verdict per check) and how the check was run."""
    rows = [r for module, info in found.items() for r in verdicts(module, info)]
    how = "; ".join(
        f"{m}: {i.get('strategy', '?')} in {i.get('dtype', '?')}, every step checked "
        f"({i.get('checked', '?')})"
        for m, i in found.items()
    )
    failed = [r for r in rows if r[4] == "FAIL"]
    summary = (
        f"{len(failed)} check(s) failed: the recorded states differ from the fused kernel by "
        "more than the dtype's rounding allows (TF32 or a low-precision mode may be on)"
        if failed
        else "all checks pass: the recorded states equal the fused kernel's within rounding"
    )
    return [
        html.P(
            summary,
            id="model-exactness-summary",
            className="wb-error" if failed else "wb-prediction",
        ),  # fmt: skip
        _table(rows, ("module", "check", "measured", "tolerance", "verdict", "why")),
        html.P(how, className="wb-hint"),
    ]


def history_rows(history: list[dict]) -> list[tuple[int, str, str, str]]:
    """``(run, test metrics, settings, started from)`` rows of a checkpoint's training runs.

    A run continued from a checkpoint (``init``, a folder on the training machine) is shown
    as continuing the run before it, which is what its history records.
    """
    rows = []
    for i, h in enumerate(history):
        metrics = ", ".join(
            f"{k.removeprefix('test_')}={_fmt(v)}"
            for k, v in h.get("metrics", {}).items()
            if k.startswith("test_")
        )
        training = h.get("training", {})
        settings = ", ".join(
            f"{k}={_fmt(training[k])}" for k in ("lr", "epochs", "seed") if k in training
        )
        minutes = h.get("metrics", {}).get("train_minutes")
        if isinstance(minutes, (int, float)):
            settings += f", {minutes:.1f} min"
        start = f"continued from run {i}" if training.get("init") and i else "from scratch"
        if training.get("init") and not i:
            start = "continued from an earlier checkpoint"
        rows.append((i + 1, metrics, settings, start))
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
    hist_rows = history_rows(config.get("history") or [])
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
                            _table(hist_rows, ("run", "test", "settings", "started"))
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
                "(check='full'). The dtype's tolerance bounds the hidden state's absolute "
                "error and the cell's error relative to its size.",
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
            found = exactness(ctx, model)
        except (ValueError, KeyError) as exc:
            return _error(str(exc))
        return exactness_view(found)
