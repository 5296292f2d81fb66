"""Explain page: why the model predicts what it predicts, by several methods side by side.

Type or pick an input, choose methods and a target (the prediction, a class, or the cells
brushed on the States page), and see token heatmaps per method, their agreement, deletion
curves with AOPC, and the completeness checks (integrated gradients' delta, LRP's
conservation). A method that fails shows its error in its own panel; the others still show.
"""

from __future__ import annotations

from dash import Input, Output, State, dcc, html, no_update

from workbench.app import _explain_logic as logic

PATH = "/explain"
TITLE = "Explain"


# --------------------------------------------------------------------------------- options
def _method_options(skip: dict | None = None) -> list[dict]:
    """Checklist options; a method that cannot explain the target is greyed with the reason."""
    from workbench.explainers import METHODS

    skip = skip or {}
    names = [m for m in logic.DEFAULT_METHODS if m in METHODS]
    names += sorted(m for m in METHODS if m not in names)
    out = []
    for m in names:
        label = f"{m} (slow)" if m in logic.SLOW_METHODS else m
        if m in skip:
            out.append({"label": html.Span([label, html.Span(f" (not for this target: "
                        f"{skip[m]})", className="wb-hint")], id=f"explain-why-{m}"),
                        "value": m, "disabled": True})  # fmt: skip
        else:
            out.append({"label": label, "value": m})
    return out


def _target_options(bundle, cells: dict | None) -> list[dict]:
    opts = [{"label": "the prediction", "value": "prediction"}]
    if bundle.kind == "classifier":
        opts += [{"label": f"class {lab}", "value": f"class:{i}"} for i, lab in
                 enumerate(bundle.labels)]  # fmt: skip
    if cells and cells.get("name") and cells.get("cells"):
        units = ", ".join(str(c) for c in cells["cells"][:8])
        more = "..." if len(cells["cells"]) > 8 else ""
        opts.append({"label": f"cells {units}{more} of {cells['name']}", "value": "cells"})
    return opts


def _hint(bundle) -> str:
    limit = f"up to {logic.MAX_STEPS}"
    if bundle.tokenizer is None:
        window = (bundle.config.get("scaling") or {}).get("window", "?")
        return (
            f"Series values separated by commas, in the series' own units ({limit} values; "
            f"the model was trained on windows of {window}). The model forecasts the next one."
        )
    unit = "characters" if bundle.tokenizer.level == "char" else "words"
    what = {"classifier": "classifies the text", "charlm": "predicts the next character"}
    return f"Text ({limit} {unit}); the model {what.get(bundle.kind, 'reads it')}."


def _example_options(ctx, name: str) -> list[dict]:
    bundle = ctx.bundle(name)
    out = []
    for i, ex in enumerate(logic.examples_for(bundle, ctx.corpus_name(name))):
        short = ex.replace("\n", " \u23ce ")
        out.append({"label": short[:70] + ("..." if len(short) > 70 else ""), "value": i})
    return out


def _ints(text) -> list[int]:
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        return []


# ---------------------------------------------------------------------------------- layout
def layout(ctx, model=None, text=None, methods=None, target=None, name=None, cells=None,
           step=None, ig_steps=None, **_ignored):  # fmt: skip
    """The Explain page, prefilled from the URL query (bad values are ignored)."""
    names = ctx.model_names()
    if not names:
        return html.Div("No model is served.", className="wb-error")
    model = model if model in names else names[0]
    bundle = ctx.bundle(model)
    valid = {o["value"] for o in _method_options()}
    chosen = [m for m in str(methods or "").split(",") if m in valid] or list(logic.DEFAULT_METHODS)
    ig = logic.APP_SETTINGS["integrated_gradients"]["n_steps"] if ig_steps is None else ig_steps
    try:
        ig = logic.ig_steps(ig)
    except logic.InputError:
        ig = logic.APP_SETTINGS["integrated_gradients"]["n_steps"]
    selection = None
    if name and _ints(cells):
        try:
            selection = {"name": str(name), "cells": _ints(cells), "step": int(step or -1)}
        except ValueError:
            selection = {"name": str(name), "cells": _ints(cells), "step": -1}
    targets = _target_options(bundle, selection)
    target = target if target in {o["value"] for o in targets} else (
        "cells" if selection else "prediction"
    )  # fmt: skip
    skip = logic.unsupported(bundle, target, selection)
    if text is None:
        found = logic.examples_for(bundle, ctx.corpus_name(model))
        text, autorun = (found[0] if found else ""), 0
    else:
        autorun = 1
    return html.Div(
        [
            html.H2("Explain"),
            dcc.Store(id="explain-cells", data=selection),
            html.Div(
                [
                    html.Label(
                        [
                            "Model",
                            dcc.Dropdown(
                                id="explain-model", options=names, value=model, clearable=False
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "Example",
                            dcc.Dropdown(
                                id="explain-example",
                                options=_example_options(ctx, model),
                                placeholder="pick a real example from the test split",
                            ),
                        ]
                    ),
                ],
                className="wb-row",
                style={"display": "grid", "gridTemplateColumns": "1fr 3fr", "gap": "1em"},
            ),  # fmt: skip
            dcc.Textarea(
                id="explain-text",
                value=text,
                style={"width": "100%", "height": "6em"},
                maxLength=20_000,
            ),  # fmt: skip
            html.P(_hint(bundle), id="explain-hint", className="wb-hint"),
            html.Div(
                [
                    html.Label(
                        [
                            "Methods",
                            dcc.Checklist(
                                id="explain-methods",
                                options=_method_options(skip),
                                value=[m for m in chosen if m not in skip],
                                inline=True,
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "IG steps ",
                            dcc.Input(
                                id="explain-ig-steps",
                                type="number",
                                value=ig,
                                min=logic.IG_STEPS_RANGE[0],
                                max=logic.IG_STEPS_RANGE[1],
                                step=1,
                                style={"width": "6em"},
                            ),
                        ],
                        title="integration steps of integrated_gradients (more: a smaller "
                        "completeness delta, slower)",
                    ),
                    html.Label(
                        [
                            "Explain: ",
                            dcc.RadioItems(
                                id="explain-target",
                                options=targets,
                                value=target,
                                inline=True,
                                style={"display": "inline-block"},
                            ),
                        ],
                        style={"display": "block"},  # its own line, not after the IG steps
                    ),
                ]
            ),  # fmt: skip
            html.Div(
                [
                    html.Button("Explain", id="explain-run", n_clicks=autorun),
                    html.Button(
                        "Explain these cells",
                        id="explain-use-selection",
                        n_clicks=0,
                        title="Explain the cells brushed on the States page, in their window",
                    ),
                    html.Span(id="explain-selection-info", className="wb-hint"),
                ],
                style={"display": "flex", "gap": "1em", "alignItems": "center"},
            ),  # fmt: skip
            dcc.Loading(html.Div(id="explain-output"), type="default"),
        ],
        className="wb-explain",
    )


# ------------------------------------------------------------------------------- rendering
def _ig_warning(r: logic.MethodResult) -> html.Div | None:
    """A warning and a rerun button when integrated gradients' delta is above a few percent."""
    rel = r.checks.get("relative_delta")
    if rel is None or not rel > logic.IG_DELTA_WARN:
        return None
    n = int(r.explanation.settings.get("n_steps") or 0)
    more = logic.more_steps(n)
    text = (
        f"Not converged: the completeness delta is {rel:.0%} of F(x) - F(baseline) (above "
        f"{logic.IG_DELTA_WARN:.0%}) with {n} steps, so these relevances do not add up to "
        "the explained change."
    )
    if more > n:
        button = html.Button(f"Rerun with {more} steps", id="explain-more-steps", n_clicks=0)
    else:
        text += (
            f" {n} steps is the page's maximum; a baseline whose score is close to the "
            "input's makes the relative delta large whatever the steps."
        )
        button = None
    return html.Div([html.P(text), button], id="explain-ig-warning", className="wb-warning")


def _panel(r: logic.MethodResult, prepared) -> html.Div:
    pid = f"explain-panel-{r.method}"
    if r.skipped:
        return html.Div(
            [html.H4(r.method), html.P(f"not run: {r.skipped}", className="wb-hint")],
            id=pid, className="explain-panel explain-skipped",
        )  # fmt: skip
    if not r.ok:
        return html.Div(
            [html.H4(r.method), html.P(f"failed: {r.error}", className="wb-error")],
            id=pid, className="explain-panel explain-failed",
        )  # fmt: skip
    c = r.checks
    lines = [f"explained score {c['output']:.4g}; relevance sum {c['sum']:.4g}"]
    if r.method == "integrated_gradients" and "delta" in c:
        lines.append(
            f"completeness delta {c['delta']:.3g} (sum - (F(x) - F(baseline)); relative "
            f"{c.get('relative_delta', float('nan')):.2%})"
        )
    elif r.method == "lrp" and "delta" in c:
        lines.append(
            f"conservation: output {c['output']:.4g} = relevance {c['sum']:.4g} + initial "
            f"state {c.get('initial_state_relevance', 0.0):.3g} + absorbed by biases "
            f"{c['delta']:.3g} (relative {c.get('relative_delta', float('nan')):.2%})"
        )
    elif "delta" in c:
        lines.append(f"delta {c['delta']:.3g}")
    if r.curve is not None:
        lines.append(f"AOPC (deletion, most relevant first) {float(r.curve['aopc'][0]):.4f}")
    elif r.curve_error:
        lines.append(f"deletion curve failed: {r.curve_error}")
    top = r.explanation.top_k(5, absolute=True)
    tops = ", ".join(f"{tok!r} ({pos}) {val:+.3g}" for pos, tok, val in top)
    lines.append(f"top tokens: {tops}")
    lines.append(f"{r.seconds:.2f} s")
    warning = _ig_warning(r) if r.method == "integrated_gradients" else None
    return html.Div(
        [html.H4(r.method)] + [html.P(x) for x in lines] + ([warning] if warning else []),
        id=pid, className="explain-panel explain-ok",
    )  # fmt: skip


def render(result: dict) -> list:
    """Dash children showing :func:`workbench.app._explain_logic.explain_all`'s result."""
    from workbench import viz

    prepared, pred, results = result["prepared"], result["prediction"], result["results"]
    target = result["target"]
    what = "the prediction" if target is None else str(target)
    out = [
        html.P(pred["summary"], id="explain-prediction", className="wb-prediction"),
        html.P(f"explaining {what} over {len(prepared)} steps", className="wb-hint"),
    ]
    if prepared.unknown:
        out.append(
            html.P(
                f"{prepared.unknown} token(s) are not in the vocabulary (read as <unk>)",
                className="wb-hint",
            )
        )
    ok = [r for r in results.values() if r.ok]
    if ok:
        fig = viz.attribution_heatmap(
            [r.explanation for r in ok],
            prepared.tokens,
            title="relevance per token (each row / its max)",
        )
        out.append(dcc.Graph(id="explain-heatmap", figure=fig))
    out.append(
        html.Div(
            [_panel(r, prepared) for r in results.values()],
            style={
                "display": "grid",
                "gap": "0.5em",
                "gridTemplateColumns": "repeat(auto-fill, minmax(320px, 1fr))",
            },
        )
    )
    methods, matrix = result["agreement"]
    if len(methods) >= 2:
        out.append(
            dcc.Graph(
                id="explain-agreement",
                figure=viz.agreement_heatmap(
                    matrix, methods, title="agreement between methods (Spearman)"
                ),
            )
        )
    curves = {r.method: r.curve for r in ok if r.curve is not None}
    if curves:
        out.append(
            dcc.Graph(
                id="explain-curves",
                figure=viz.deletion_curve(
                    curves, title="deletion curves (lower and faster is more faithful)"
                ),
            )
        )
    return out


# ------------------------------------------------------------------------------- callbacks
def register(app, ctx) -> None:
    """The page's callbacks."""

    @app.callback(
        Output("explain-example", "options"),
        Output("explain-hint", "children"),
        Output("explain-target", "options"),
        Output("explain-example", "value"),
        Input("explain-model", "value"),
        Input("explain-cells", "data"),
        State("explain-text", "value"),
        prevent_initial_call=True,
    )
    def on_model(model, cells, text):
        if model not in ctx.model_names():
            return no_update, no_update, no_update, no_update
        bundle = ctx.bundle(model)
        try:  # keep text that suits the new model; else show its first example
            logic.prepare(bundle, text)
            example = no_update
        except logic.InputError:
            example = 0
        options = _example_options(ctx, model)
        return options, _hint(bundle), _target_options(bundle, cells), example

    @app.callback(
        Output("explain-text", "value"),
        Input("explain-example", "value"),
        State("explain-model", "value"),
        prevent_initial_call=True,
    )
    def on_example(index, model):
        if index is None or model not in ctx.model_names():
            return no_update
        found = logic.examples_for(ctx.bundle(model), ctx.corpus_name(model))
        return found[index] if 0 <= int(index) < len(found) else no_update

    @app.callback(
        Output("explain-cells", "data"),
        Output("explain-model", "value"),
        Output("explain-text", "value", allow_duplicate=True),
        Output("explain-target", "value"),
        Output("explain-selection-info", "children"),
        Output("explain-run", "n_clicks"),
        Input("explain-use-selection", "n_clicks"),
        State("wb-selection", "data"),
        State("explain-text", "value"),
        State("explain-run", "n_clicks"),
        prevent_initial_call=True,
    )
    def on_selection(_clicks, selection, text, runs):
        out = use_selection(ctx, selection, text)
        ran = out[0] is not no_update  # a usable selection: run it at once (one click)
        return (*out, (runs or 0) + 1 if ran else no_update)

    @app.callback(
        Output("explain-methods", "options"),
        Output("explain-methods", "value"),
        Input("explain-target", "value"),
        Input("explain-cells", "data"),
        Input("explain-model", "value"),
        State("explain-methods", "value"),
        prevent_initial_call=True,
    )
    def on_target(target, cells, model, methods):
        if model not in ctx.model_names():
            return no_update, no_update
        skip = logic.unsupported(ctx.bundle(model), target, cells)
        chosen = [m for m in methods or [] if m not in skip]
        return _method_options(skip), chosen or no_update

    @app.callback(
        Output("explain-ig-steps", "value"),
        Output("explain-run", "n_clicks", allow_duplicate=True),
        Input("explain-more-steps", "n_clicks"),
        State("explain-ig-steps", "value"),
        State("explain-run", "n_clicks"),
        prevent_initial_call=True,
    )
    def on_more_steps(clicks, steps, runs):
        if not clicks:
            return no_update, no_update
        try:
            n = logic.ig_steps(steps)
        except logic.InputError:
            n = logic.APP_SETTINGS["integrated_gradients"]["n_steps"]
        return logic.more_steps(n), (runs or 0) + 1

    @app.callback(
        Output("explain-output", "children"),
        Input("explain-run", "n_clicks"),
        State("explain-model", "value"),
        State("explain-text", "value"),
        State("explain-methods", "value"),
        State("explain-target", "value"),
        State("explain-cells", "data"),
        State("explain-ig-steps", "value"),
    )
    def on_run(clicks, model, text, methods, target, cells, steps):
        if not clicks:
            return html.P("Press Explain to run the chosen methods.", className="wb-hint")
        return run(ctx, model, text, methods, target, cells, steps)


def run(ctx, model, text, methods, target, cells, ig_steps=None) -> list:
    """The output children for one press of Explain; user mistakes become a message.

    Methods that cannot explain the target are not run (their panel says why), so a
    selection of cells explains with every method that can.
    """
    if model not in ctx.model_names():
        return [html.P(f"unknown model {model!r}", className="wb-error")]
    if not methods:
        return [html.P("choose at least one method", className="wb-error", id="explain-error")]
    try:
        settings = {"integrated_gradients": {"n_steps": logic.ig_steps(ig_steps)}}
        result = logic.explain_all(
            ctx.bundle(model), text, methods, target, cells, settings=settings
        )
    except logic.InputError as err:
        return [html.P(str(err), className="wb-error", id="explain-error")]
    except Exception as err:  # noqa: BLE001 - a message in the page, the session goes on
        msg = f"could not explain this input ({type(err).__name__}: {err})"
        return [html.P(msg, className="wb-error", id="explain-error")]
    return render(result)


def use_selection(ctx, selection, text):
    """Turn the States page's selection into the Explain target (and input window).

    Returns
    -------
    tuple
        ``(cells store data, model, text, target choice, info message)``.
    """
    sel = selection or {}
    if not sel.get("name") or not sel.get("cells"):
        msg = "No cells selected yet: brush cells on the States page first."
        return no_update, no_update, no_update, no_update, msg
    model = sel.get("model")
    if model not in ctx.model_names():
        return (
            no_update,
            no_update,
            no_update,
            no_update,
            f"the selection's model {model!r} is not served here",
        )
    cells = {"name": str(sel["name"]), "cells": [int(c) for c in sel["cells"]], "step": -1}
    store = ctx.store(model)
    new_text = no_update
    info = f"explaining cells {cells['cells']} of {cells['name']} at the last step"
    if store is not None and "start" in sel and "end" in sel:
        try:
            tokens, step = logic.selection_input(store, sel)
            new_text = logic.joiner(ctx.bundle(model)).join(tokens)
            cells["step"] = int(step)
            info = (
                f"explaining cells {cells['cells']} of {cells['name']} at the last brushed "
                f"token (step {step}) of corpus window [{sel['start']}, {sel['end']})"
            )
        except logic.InputError as err:
            info = f"{err}; explaining the typed text at its last step instead"
    if new_text is no_update:  # the typed text must suit the selection's model
        bundle = ctx.bundle(model)
        try:
            logic.prepare(bundle, text)
        except logic.InputError:
            found = logic.examples_for(bundle, ctx.corpus_name(model))
            new_text = found[0] if found else ""
            info += " (of its first example: the typed text does not suit this model)"
    return cells, model, new_text, "cells", info
