"""Perturb page: edit the input or the cells, and see what changes.

Sensitivity: edit, delete or insert tokens (or change series values) and compare the
original and perturbed runs side by side: prediction change, per-unit change of a recorded
state over time, and the units that moved most. Causal test: zero, clamp, scale or set the
selected cells (to a value or their corpus mean) through :func:`workbench.intervene` and see
the effect on the output.
"""

from __future__ import annotations

from dash import Input, Output, State, callback_context, dcc, html, no_update

from workbench import names as _names
from workbench.app import _explain_logic as xlogic
from workbench.app import _perturb_logic as logic

PATH = "/perturb"
TITLE = "Perturb"
#: Rows of the difference heatmap (the units that moved most).
HEATMAP_UNITS = 32

_NAMES: dict = {}
#: The controls an intervention reads (``perturb-`` ids), in :func:`intervene`'s order.
_ABLATE_INPUTS = ("model", "text", "name", "cells", "mode", "value", "low", "high", "start",
                  "stop")  # fmt: skip
#: Client-side: say when shown results no longer match the inputs (``WHAT``, ``BUTTON``).
STALE_JS = """
function(done, ...now) {
    const hide = [null, {display: "none"}];
    if (!done) { return hide; }
    const same = done.length === now.length && done.every(
        (v, i) => JSON.stringify(v ?? null) === JSON.stringify(now[i] ?? null));
    if (same) { return hide; }
    return ["The inputs changed since WHAT ran: the results below are out of date. "
            + "Press BUTTON to update them.", {display: "block"}];
}
"""


def recorded_names(ctx, model: str) -> list[str]:
    """Recorded quantity names of ``model`` (from one tiny recording, cached)."""
    key = (id(ctx), model)
    if key not in _NAMES:
        import torch

        import workbench

        bundle = ctx.bundle(model)
        if bundle.tokenizer is None:
            args, kwargs = (torch.zeros(1, 2, 1),), {}
        else:
            args = (torch.full((1, 2), bundle.tokenizer.unk_id, dtype=torch.long),)
            kwargs = {"lengths": torch.tensor([2])} if bundle.kind == "classifier" else {}
        with torch.no_grad():
            trace = workbench.record(bundle.model, *args, **kwargs)
        _NAMES[key] = [n for n in trace.names if not _names.is_attention(n)]
    return _NAMES[key]


def _ints(text) -> list[int]:
    try:
        return sorted({int(x) for x in str(text or "").replace(";", ",").split(",") if x.strip()})
    except ValueError:
        return []


def _num(v):
    try:
        return None if v in (None, "") else float(v)
    except (TypeError, ValueError):
        return None


def _label(text, control):
    return html.Label([text, control], style={"display": "flex", "flexDirection": "column"})


# ---------------------------------------------------------------------------------- layout
def layout(ctx, model=None, text=None, edited=None, name=None, cells=None, mode=None,
           **_ignored):  # fmt: skip
    """The Perturb page, prefilled from the URL query (bad values are ignored)."""
    names = ctx.model_names()
    if not names:
        return html.Div("No model is served.", className="wb-error")
    model = model if model in names else names[0]
    bundle = ctx.bundle(model)
    autorun = int(text is not None and edited is not None)
    if text is None:
        found = xlogic.examples_for(bundle, ctx.corpus_name(model))
        text = found[0] if found else ""
    edited = text if edited is None else edited
    quantities = recorded_names(ctx, model)
    name = name if name in quantities else logic.default_name(quantities)
    mode = mode if mode in logic.ABLATIONS else "zero"
    cells_text = ", ".join(str(c) for c in _ints(cells))
    box = {"width": "100%", "height": "5em"}
    return html.Div(
        [
            html.H2("Perturb"),
            html.Div(
                [
                    _label(
                        "Model",
                        dcc.Dropdown(
                            id="perturb-model", options=names, value=model, clearable=False
                        ),
                    ),
                    _label(
                        "State compared / edited",
                        dcc.Dropdown(
                            id="perturb-name", options=quantities, value=name, clearable=False
                        ),
                    ),
                ],
                style={"display": "grid", "gridTemplateColumns": "1fr 2fr", "gap": "1em"},
            ),  # fmt: skip
            html.P(xlogic_hint(bundle), id="perturb-hint", className="wb-hint"),
            html.Div(
                [
                    _label(
                        "Original",
                        dcc.Textarea(id="perturb-text", value=text, style=box, maxLength=20_000),
                    ),
                    _label(
                        "Perturbed (edit freely)",
                        dcc.Textarea(
                            id="perturb-edited", value=edited, style=box, maxLength=20_000
                        ),
                    ),
                ],
                style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "1em"},
            ),  # fmt: skip
            html.Div(
                [
                    _label(
                        "Token / step",
                        dcc.Input(id="perturb-position", type="number", value=0, step=1),
                    ),
                    _label(
                        "New token / value",
                        dcc.Input(id="perturb-replacement", type="text", value=""),
                    ),
                    html.Button("Replace", id="perturb-replace", n_clicks=0),
                    html.Button("Delete", id="perturb-delete", n_clicks=0),
                    html.Button("Insert before", id="perturb-insert", n_clicks=0),
                    html.Button("Reset", id="perturb-reset", n_clicks=0),
                    html.Button("Compare", id="perturb-compare", n_clicks=autorun),
                    html.Span(id="perturb-edit-error", className="wb-error"),
                ],
                style={"display": "flex", "gap": "0.7em", "alignItems": "end", "flexWrap": "wrap"},
            ),  # fmt: skip
            dcc.Store(id="perturb-compared"),
            html.Div(id="perturb-stale", className="wb-warning", style={"display": "none"}),
            dcc.Loading(html.Div(id="perturb-output"), type="default"),
            html.H3("Intervene on cells (causal test)"),
            html.Div(
                [
                    _label(
                        "Cells",
                        dcc.Input(
                            id="perturb-cells",
                            type="text",
                            value=cells_text,
                            placeholder="e.g. 3, 17, 40",
                            style={"width": "16em"},
                        ),
                    ),
                    _label(
                        "Edit",
                        dcc.RadioItems(
                            id="perturb-mode",
                            options=[
                                {"label": "zero", "value": "zero"},
                                {"label": "corpus mean", "value": "mean"},
                                {"label": "clamp", "value": "clamp"},
                                {"label": "set to", "value": "set"},
                                {"label": "scale by", "value": "scale"},
                            ],
                            value=mode,
                            inline=True,
                        ),
                    ),
                    _label("Value / factor", dcc.Input(id="perturb-value", type="number", value=0)),
                    _label("Clamp low", dcc.Input(id="perturb-low", type="number")),
                    _label("Clamp high", dcc.Input(id="perturb-high", type="number")),
                    _label(
                        "From step",
                        dcc.Input(id="perturb-start", type="number", value=0, min=0, step=1),
                    ),
                    _label(
                        "To step (excl.)",
                        dcc.Input(id="perturb-stop", type="number", min=0, step=1),
                    ),
                    html.Button("Use States selection", id="perturb-use-selection", n_clicks=0),
                    html.Button("Run intervention", id="perturb-ablate", n_clicks=0),
                ],
                style={"display": "flex", "gap": "0.7em", "alignItems": "end", "flexWrap": "wrap"},
            ),  # fmt: skip
            html.P(
                "Runs the original input with the cells of the chosen state edited from "
                "'From step' on; the recurrence continues from the edited values.",
                id="perturb-selection-info",
                className="wb-hint",
            ),  # fmt: skip
            dcc.Store(id="perturb-ablated"),
            html.Div(id="perturb-ablate-stale", className="wb-warning", style={"display": "none"}),
            dcc.Loading(html.Div(id="perturb-ablate-output"), type="default"),
        ],
        className="wb-perturb",
    )


def xlogic_hint(bundle) -> str:
    """Input format and length limit for the model."""
    limit = xlogic.MAX_STEPS
    if bundle.tokenizer is None:
        return (f"Series values separated by commas ({limit} at most); change values to "
                "perturb. Positions count from 0.")  # fmt: skip
    unit = "characters" if bundle.tokenizer.level == "char" else "words"
    return f"Text of up to {limit} {unit}; token positions count from 0."


# ------------------------------------------------------------------------------- rendering
def _moved_table(moved, tokens) -> html.Table:
    head = html.Tr([html.Th("unit"), html.Th("largest |change|"), html.Th("at step")])
    rows = [
        html.Tr([html.Td(str(u)), html.Td(f"{v:.4f}"),
                 html.Td(f"{s} ({tokens[s]!r})" if s < len(tokens) else str(s))])
        for u, v, s in moved
    ]  # fmt: skip
    return html.Table([head, *rows], id="perturb-moved", className="wb-table")


def _change_labels(bundle, prediction) -> list[str]:
    if bundle.kind == "forecaster":
        return ["forecast"]
    return [str(x) for x in prediction["labels"]]


def render_comparison(bundle, c: logic.Comparison) -> list:
    """Dash children for a :class:`~workbench.app._perturb_logic.Comparison`."""
    from workbench import viz

    before, after = c.prediction, c.perturbed_prediction
    if bundle.kind == "forecaster":
        b_vals, a_vals, value = [before["forecast"]], [after["forecast"]], "forecast"
    else:
        b_vals = before["probs"]
        a_vals = list(b_vals + c.output_change)
        value = "probability" + (" (original's top next tokens)" if bundle.kind == "charlm"
                                 else "")  # fmt: skip
    moved = c.moved(HEATMAP_UNITS)
    top = [u for u, _, _ in moved]
    how = (
        "Same length: positions compared one to one."
        if c.alignment == "position"
        else "Lengths differ: tokens matched by difflib are paired (shown on the original's "
        "axis); deleted or replaced tokens have no partner and stay blank."
    )
    fig_diff = viz.difference_heatmap(
        c.diff, c.original.tokens, units=top, name=c.name,
        title=f"perturbed - original: {c.name} (the {len(top)} units that moved most)",
    )  # fmt: skip
    show = top[:5]
    return [
        html.P(f"original {before['summary']}  \u2192  perturbed {after['summary']}",
               id="perturb-prediction", className="wb-prediction"),
        dcc.Graph(id="perturb-output-change", figure=viz.output_change(
            _change_labels(bundle, before), b_vals, a_vals, value=value,
            title="prediction, original vs perturbed")),
        html.P(how, id="perturb-alignment", className="wb-hint"),
        dcc.Graph(id="perturb-diff", figure=fig_diff),
        html.Div(
            [
                dcc.Graph(id="perturb-traj-original", figure=viz.trajectories(
                    c.states, c.original.tokens, threshold=None, selected=show,
                    title="original")),
                dcc.Graph(id="perturb-traj-perturbed", figure=viz.trajectories(
                    c.perturbed_states, c.perturbed.tokens, threshold=None, selected=show,
                    title="perturbed")),
            ],
            style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "1em"},
        ),
        html.H4("Units that moved most"),
        _moved_table(moved[:10], c.original.tokens),
    ]  # fmt: skip


def render_ablation(bundle, a: logic.Ablation, tokens) -> list:
    """Dash children for an :class:`~workbench.app._perturb_logic.Ablation`."""
    from workbench import viz

    before, after = a.prediction, a.edited_prediction
    if bundle.kind == "forecaster":
        b_vals, a_vals, value = [before["forecast"]], [after["forecast"]], "forecast"
    else:
        b_vals, a_vals = before["probs"], list(before["probs"] + a.output_change)
        value = "probability"
    diff = a.edited_states - a.states
    moved = logic.moved_units(diff, HEATMAP_UNITS)
    rows = list(dict.fromkeys(a.cells + [u for u, _, _ in moved]))[:HEATMAP_UNITS]
    what = {"zero": "set to 0", "mean": "set to their mean", "set": "set to a value",
            "clamp": "clamped", "scale": "scaled"}[a.mode]  # fmt: skip
    extra = ""
    if a.values is not None:
        extra = "; values " + ", ".join(f"{v:.3g}" for v in a.values[:8])
    if a.mean_source:
        extra += f" (mean over {a.mean_source})"
    return [
        html.P(f"cells {a.cells} of {a.name} {what}{extra}", className="wb-hint"),
        html.P(f"plain {before['summary']}  \u2192  edited {after['summary']}",
               id="perturb-ablate-prediction", className="wb-prediction"),
        dcc.Graph(id="perturb-ablate-change", figure=viz.output_change(
            _change_labels(bundle, before), b_vals, a_vals, names=("plain", "edited"),
            value=value, title="output without and with the edit")),
        dcc.Graph(id="perturb-ablate-diff", figure=viz.difference_heatmap(
            diff, tokens, units=rows, name=a.name,
            title=f"edited - plain: {a.name} (edited cells first)")),
    ]  # fmt: skip


# ------------------------------------------------------------------------------- callbacks
def register(app, ctx) -> None:
    """The page's callbacks."""

    @app.callback(
        Output("perturb-name", "options"),
        Output("perturb-name", "value"),
        Output("perturb-hint", "children"),
        Output("perturb-text", "value"),
        Output("perturb-edited", "value"),
        Input("perturb-model", "value"),
        State("perturb-name", "value"),
        State("perturb-text", "value"),
        prevent_initial_call=True,
    )
    def on_model(model, name, text):
        if model not in ctx.model_names():
            return (no_update,) * 5
        bundle = ctx.bundle(model)
        names = recorded_names(ctx, model)
        name = name if name in names else logic.default_name(names)
        try:
            xlogic.prepare(bundle, text)
            new = no_update
        except xlogic.InputError:
            found = xlogic.examples_for(bundle, ctx.corpus_name(model))
            new = found[0] if found else ""
        return names, name, xlogic_hint(bundle), new, new

    @app.callback(
        Output("perturb-edited", "value", allow_duplicate=True),
        Output("perturb-edit-error", "children"),
        Input("perturb-replace", "n_clicks"),
        Input("perturb-delete", "n_clicks"),
        Input("perturb-insert", "n_clicks"),
        Input("perturb-reset", "n_clicks"),
        State("perturb-model", "value"),
        State("perturb-text", "value"),
        State("perturb-edited", "value"),
        State("perturb-position", "value"),
        State("perturb-replacement", "value"),
        prevent_initial_call=True,
    )
    def on_edit(_r, _d, _i, _reset, model, text, edited, position, replacement):
        trigger = (callback_context.triggered_id or "").removeprefix("perturb-")
        if trigger == "reset":
            return text, ""
        if model not in ctx.model_names():
            return no_update, "unknown model"
        try:
            new = logic.edit_tokens(ctx.bundle(model), edited, position, trigger, replacement)
        except xlogic.InputError as err:
            return no_update, str(err)
        return new, ""

    @app.callback(
        Output("perturb-output", "children"),
        Output("perturb-compared", "data"),
        Input("perturb-compare", "n_clicks"),
        State("perturb-model", "value"),
        State("perturb-text", "value"),
        State("perturb-edited", "value"),
        State("perturb-name", "value"),
    )
    def on_compare(clicks, model, text, edited, name):
        if not clicks:
            hint = html.P("Edit the perturbed input, then press Compare.", className="wb-hint")
            return hint, None
        return compare(ctx, model, text, edited, name), [model, text, edited, name]

    # results that no longer match the inputs say so (in the browser: no request per key)
    app.clientside_callback(
        STALE_JS.replace("WHAT", "this comparison").replace("BUTTON", "Compare"),
        Output("perturb-stale", "children"),
        Output("perturb-stale", "style"),
        Input("perturb-compared", "data"),
        Input("perturb-model", "value"),
        Input("perturb-text", "value"),
        Input("perturb-edited", "value"),
        Input("perturb-name", "value"),
    )
    app.clientside_callback(
        STALE_JS.replace("WHAT", "this intervention").replace("BUTTON", "Run intervention"),
        Output("perturb-ablate-stale", "children"),
        Output("perturb-ablate-stale", "style"),
        Input("perturb-ablated", "data"),
        *[Input(f"perturb-{k}", "value") for k in _ABLATE_INPUTS],
    )

    @app.callback(
        Output("perturb-model", "value"),
        Output("perturb-name", "value", allow_duplicate=True),
        Output("perturb-cells", "value"),
        Output("perturb-selection-info", "children"),
        Output("perturb-text", "value", allow_duplicate=True),
        Output("perturb-edited", "value", allow_duplicate=True),
        Input("perturb-use-selection", "n_clicks"),
        State("wb-selection", "data"),
        State("perturb-text", "value"),
        prevent_initial_call=True,
    )
    def on_selection(_clicks, selection, text):
        return use_selection(ctx, selection, text)

    @app.callback(
        Output("perturb-ablate-output", "children"),
        Output("perturb-ablated", "data"),
        Input("perturb-ablate", "n_clicks"),
        *[State(f"perturb-{k}", "value") for k in _ABLATE_INPUTS],
        prevent_initial_call=True,
    )
    def on_ablate(_clicks, model, text, name, cells, mode, value, low, high, start, stop):
        out = intervene(ctx, model, text, name, cells, mode, value, low, high, start, stop)
        return out, [model, text, name, cells, mode, value, low, high, start, stop]


def use_selection(ctx, selection, text):
    """The States page's selection as the intervention's cells and the brushed window's text.

    Returns
    -------
    tuple
        ``(model, quantity, cells text, info message, original text, perturbed text)``.
    """
    sel = selection or {}
    if not sel.get("cells") or sel.get("model") not in ctx.model_names():
        return (no_update,) * 3 + ("No cells selected on the States page yet.",) + (no_update,) * 2
    model = sel["model"]
    cells = ", ".join(str(int(c)) for c in sel["cells"])
    info = f"cells {cells} of {sel.get('name')} from the States page"
    new_text = no_update
    store = ctx.store(model)
    if store is not None and "start" in sel and "end" in sel:
        try:
            tokens, _step = xlogic.selection_input(store, sel)
            new_text = xlogic.joiner(ctx.bundle(model)).join(tokens)
            info += f", on the text of corpus window [{sel['start']}, {sel['end']})"
        except xlogic.InputError as err:
            info += f" ({err}; keeping the typed text)"
    if new_text is no_update:  # the typed text must suit the selection's model
        bundle = ctx.bundle(model)
        try:
            xlogic.prepare(bundle, text)
        except xlogic.InputError:
            found = xlogic.examples_for(bundle, ctx.corpus_name(model))
            new_text = found[0] if found else ""
    return model, sel.get("name") or no_update, cells, info, new_text, new_text


def compare(ctx, model, text, edited, name) -> list:
    """Output children of Compare; user mistakes become a message."""
    if model not in ctx.model_names():
        return [html.P(f"unknown model {model!r}", className="wb-error")]
    bundle = ctx.bundle(model)
    try:
        c = logic.compare(bundle, text, edited, name)
    except xlogic.InputError as err:
        return [html.P(str(err), className="wb-error", id="perturb-error")]
    except Exception as err:  # noqa: BLE001 - a message in the page, the session goes on
        msg = f"could not compare ({type(err).__name__}: {err})"
        return [html.P(msg, className="wb-error", id="perturb-error")]
    return render_comparison(bundle, c)


def intervene(ctx, model, text, name, cells, mode, value=None, low=None, high=None, start=0,
              stop=None) -> list:  # fmt: skip
    """Output children of Run intervention; user mistakes become a message."""
    if model not in ctx.model_names():
        return [html.P(f"unknown model {model!r}", className="wb-error")]
    bundle = ctx.bundle(model)
    value = _num(value)
    try:
        a = logic.ablate(
            bundle, text, name, _ints(cells), mode or "zero", value=value, low=_num(low),
            high=_num(high), factor=value, start=int(_num(start) or 0),
            stop=None if _num(stop) is None else int(_num(stop)), store=ctx.store(model),
        )  # fmt: skip
    except xlogic.InputError as err:
        return [html.P(str(err), className="wb-error", id="perturb-error")]
    except Exception as err:  # noqa: BLE001 - a message in the page, the session goes on
        msg = f"could not run the intervention ({type(err).__name__}: {err})"
        return [html.P(msg, className="wb-error", id="perturb-error")]
    tokens = xlogic.prepare(bundle, text).tokens
    return render_ablation(bundle, a, tokens)
