"""Projection page: UMAP (or PCA) map of a store's states.

Points are coloured by a meta track, the token, the prediction, the loss or any unit; lasso
points to list their contexts and open them on the States page. A UMAP map not yet cached
in the store is fitted as a job (:mod:`workbench.app._jobs`): the page shows its progress
and a Cancel button, and draws the map when the job is done.
"""

from __future__ import annotations

import numpy as np
from dash import Input, Output, State, dcc, html, no_update

from workbench.app import _job_panel
from workbench.app import _states_logic as slogic
from workbench.viz._common import visible_token

PATH = "/projection"
TITLE = "Projection"
SAMPLES = (2000, 5000, 20000)
DEFAULT_SAMPLE = 5000
MAX_LISTED = 30
GRAPH = {"displaylogo": False}
PREFIX = "projection"


def _error(text: str) -> html.Div:
    return html.Div(text, className="wb-error")


def colour_options(store) -> list[dict]:
    """What points can be coloured by."""
    opts = [{"label": f"meta: {t}", "value": f"meta:{t}"} for t in store.meta_tracks]
    opts += [
        {"label": "token", "value": "token"},
        {"label": "prediction", "value": "prediction"},
        {"label": "loss", "value": "loss"},
        {"label": "a unit (below)", "value": "unit"},
    ]
    return opts  # fmt: skip


def layout(ctx, model=None, name=None, method=None, colour=None, sample=None, unit=None,
           **_ignored):  # fmt: skip
    """The Projection page for the URL query (bad values fall back to defaults)."""
    with_store = [m for m in ctx.model_names() if ctx.store(m) is not None]
    if not with_store:
        return _error("No state store is served; start the app with `workbench serve`.")
    problems = []
    if model not in with_store:
        if model is not None:
            problems.append(f"no store for model {model!r}; showing {with_store[0]!r}")
        model = with_store[0]
    store = ctx.store(model)
    names = [n for n in store.names if slogic.split_name(n)]
    name = name if name in names else slogic.default_names(names)[0]
    method = method if method in ("umap", "pca") else "umap"
    colours = colour_options(store)
    colour = colour if colour in {o["value"] for o in colours} else colours[0]["value"]
    try:
        sample = int(sample) if int(sample) in SAMPLES else DEFAULT_SAMPLE
    except (TypeError, ValueError):
        sample = DEFAULT_SAMPLE
    try:
        unit = int(unit or 0)
    except ValueError:
        unit = 0
    return html.Div(
        [
            html.H2("Projection"),
            html.Div(
                [
                    html.Label(
                        [
                            "Model",
                            dcc.Dropdown(
                                id="projection-model",
                                options=with_store,
                                value=model,
                                clearable=False,
                            ),
                        ]
                    ),  # fmt: skip
                    html.Label(
                        [
                            "Quantity",
                            dcc.Dropdown(
                                id="projection-name", options=names, value=name, clearable=False
                            ),
                        ],
                        className="wb-wide",
                    ),
                    html.Label(
                        [
                            "Method",
                            dcc.RadioItems(
                                id="projection-method",
                                inline=True,
                                options=["umap", "pca"],
                                value=method,
                            ),
                        ]
                    ),  # fmt: skip
                    html.Label(
                        [
                            "Points",
                            dcc.Dropdown(
                                id="projection-sample",
                                options=list(SAMPLES),
                                value=sample,
                                clearable=False,
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "Colour by",
                            dcc.Dropdown(
                                id="projection-colour",
                                options=colours,
                                value=colour,
                                clearable=False,
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "Unit",
                            dcc.Input(
                                id="projection-unit",
                                type="number",
                                min=0,
                                value=unit,
                                debounce=True,
                            ),
                        ]
                    ),  # fmt: skip
                ],
                className="wb-controls",
            ),
            html.Div("; ".join(problems), className="wb-error"),
            html.P(
                "A UMAP map is fitted in the background the first time (tens of seconds; "
                "progress and Cancel below), then read from the store's cache. Lasso points "
                "to list them.",
                className="wb-hint",
            ),  # fmt: skip
            html.Div(
                [
                    html.Button(
                        "Fit",
                        id="projection-fit",
                        n_clicks=0,
                        title="fit the map again after a Cancel or a failure",
                    ),
                    _job_panel.job_panel(PREFIX),
                ],
                style={"display": "flex", "gap": "1em", "alignItems": "center"},
            ),  # fmt: skip
            html.Div(id="projection-message"),
            dcc.Loading(dcc.Graph(id="projection-map", config=GRAPH), type="default"),
            html.H3("Selected contexts"),
            html.Div(id="projection-selected"),
        ],
        className="wb-projection",
    )


# ------------------------------------------------------------------- callback functions
def fit_arguments(ctx, model: str, name: str, method: str, sample: int) -> dict:
    """The :meth:`StateStore.projection` arguments of the page's map (also the job's)."""
    store = ctx.store(model)
    n = min(int(sample), store.n_tokens)
    return {"method": method, "sample": n if n < store.n_tokens else None, "seed": 0}


def fitted(ctx, model: str, name: str, method: str, sample: int):
    """The projection of ``name`` (fitted once, cached in the store and in memory)."""
    store = ctx.store(model)
    kwargs = fit_arguments(ctx, model, name, method, sample)
    key = ("projection", model, name, method, kwargs["sample"] or store.n_tokens)
    return ctx.cached(key, lambda: store.projection(name, progress=False, **kwargs))


def needs_job(ctx, model: str, name: str, method: str, sample: int) -> bool:
    """Whether the map must be fitted first (UMAP not yet in the store's cache)."""
    from workbench.store.projection import is_cached

    if method != "umap":
        return False
    store = ctx.store(model)
    return not is_cached(store, name, **fit_arguments(ctx, model, name, method, sample))


def waiting_figure(text: str) -> dict:
    """An empty map holding one line of text (while the map is fitted, or after a cancel)."""
    return {
        "data": [],
        "layout": {
            "xaxis": {"visible": False}, "yaxis": {"visible": False}, "height": 420,
            "annotations": [{"text": text, "showarrow": False, "font": {"size": 15}}],
        },
    }  # fmt: skip


def colour_values(store, name: str, steps: np.ndarray, colour: str, unit: int):
    """``(values [point], categorical, label)`` for the colour choice."""
    if colour.startswith("meta:"):
        track = colour.split(":", 1)[1]
        v = store.meta(track)[steps]
        return v, v.dtype == bool, track
    if colour == "token":
        toks = store.tokens()
        return [toks[s] for s in steps], True, "token"
    if colour == "prediction":
        pred = store._column("tokens/prediction")[steps]
        vocab = store.manifest.get("vocab") or []
        if store.manifest.get("kind") == "charlm" and vocab:
            return [vocab[int(p)] if 0 <= int(p) < len(vocab) else str(p) for p in pred], \
                True, "prediction"  # fmt: skip
        return pred, store.manifest.get("kind") == "classifier", "prediction"
    if colour == "loss":
        return store._column("tokens/loss")[steps].astype(np.float64), False, "loss"
    units = int(store.states(name).shape[1])
    if not 0 <= unit < units:
        raise slogic.ViewError(f"unit {unit} out of range: {name} has units 0..{units - 1}")
    col = store.states(name).rows(0, store.n_tokens, [unit])[:, 0]
    return col[steps].astype(np.float64), False, f"{name} unit {unit}"


def context_parts(store, step: int, width: int = 12) -> tuple[str, str, str]:
    """``(before, token, after)``: the text around ``step`` inside its document."""
    d = slogic.document_of(store, step)
    lo, hi = int(store.boundaries[d]), int(store.boundaries[d + 1])
    a, b = max(step - width, lo), min(step + width + 1, hi)
    toks = store.tokens(a, b)
    sep = "" if all(len(t) <= 1 for t in toks) else " "
    i = step - a
    before = sep.join(toks[:i]) + (sep if i else "")
    after = (sep if i + 1 < len(toks) else "") + sep.join(toks[i + 1 :])
    return before, toks[i], after


def context(store, step: int, width: int = 12) -> str:
    """Tokens around ``step`` inside its document, the step itself in brackets."""
    before, tok, after = context_parts(store, step, width)
    return f"{before}[{tok}]{after}"


def map_figure(ctx, model, name, method, sample, colour, unit):
    """The map figure (Scattergl) for the controls."""
    from workbench.viz._app_figures import projection_scatter

    store = ctx.store(model)
    if name not in store.names:
        raise slogic.ViewError(f"{name!r} is not in the {model} store")
    proj = fitted(ctx, model, name, method, sample)
    steps = proj.sample
    values, categorical, label = colour_values(store, name, steps, colour, int(unit or 0))
    hover = ctx.cached(("hover", model, name, method, len(steps)),
                       lambda: [context_parts(store, int(s), 10) for s in steps])  # fmt: skip
    ids = store.doc_ids
    docs = [ids[d] for d in np.searchsorted(store.boundaries, steps, side="right") - 1]
    return projection_scatter(
        proj.embedding,
        values,
        hover,
        steps,
        colour_name=label,
        categorical=categorical,
        documents=docs,
        title=f"{method.upper()} of {name} ({len(steps):,} states)",
    )


def _marked(parts: tuple[str, str, str]) -> html.Code:
    before, tok, after = parts
    return html.Code([before, html.Mark(visible_token(tok)), after])


def selected_steps(selected) -> list[int]:
    """Global steps of a lasso / box selection (``customdata[0]`` of each point)."""
    steps = []
    for p in (selected or {}).get("points") or []:
        c = p.get("customdata")
        c = c[0] if isinstance(c, list) and c else c
        if isinstance(c, int | float) and not isinstance(c, bool):
            steps.append(int(c))
    return steps


def selected_list(ctx, model: str, name: str, steps: list[int], unit: int = 0) -> list:
    """The lassoed steps' contexts (first :data:`MAX_LISTED`), each a link to States.

    A table of document, position in it, the text around (the step in brackets) and the
    value of ``unit`` of ``name`` there; the step link opens the States page with that step
    brushed.
    """
    store = ctx.store(model)
    arr = store.states(name)
    units = int(arr.shape[1])
    unit = int(unit) if unit is not None and 0 <= int(unit) < units else 0
    unique = sorted(set(int(x) for x in steps if 0 <= int(x) < store.n_tokens))
    rows = []
    for s in unique[:MAX_LISTED]:
        d = slogic.document_of(store, s)
        view = slogic.ViewState(model, [name], start=max(s - 40, 0), size=100, brush=(s, s + 1))
        value = float(arr.rows(s, s + 1, [unit])[0, 0])
        rows.append(html.Tr([
            html.Td(dcc.Link(f"step {s}", href="/states" + view.query(), className="wb-chip",
                             title="open in States with this step brushed")),
            html.Td(store.doc_ids[d]), html.Td(str(s - int(store.boundaries[d]))),
            html.Td(_marked(context_parts(store, s))), html.Td(f"{value:.4g}"),
        ]))  # fmt: skip
    head = html.Tr([html.Th(t) for t in ("open in States", "document", "position", "context",
                                         f"{name} unit {unit}")])  # fmt: skip
    more = len(unique) - len(rows)
    summary = html.P(f"{len(unique)} states selected" + (f"; the first {len(rows)} listed"
                     if more > 0 else ""), className="wb-hint")  # fmt: skip
    return [summary, html.Table([html.Thead(head), html.Tbody(rows)],
                                className="wb-table wb-selected")]  # fmt: skip


def register(app, ctx) -> None:
    """Projection callbacks: model options, the map, the lasso list."""

    @app.callback(
        Output("projection-name", "options"), Output("projection-name", "value"),
        Output("projection-colour", "options"), Output("projection-colour", "value"),
        Input("projection-model", "value"), State("projection-name", "value"),
        State("projection-colour", "value"),
        prevent_initial_call=True,
    )  # fmt: skip
    def on_model(model, name, colour):
        store = ctx.store(model)
        names = [n for n in store.names if slogic.split_name(n)]
        opts = colour_options(store)
        name = name if name in names else slogic.default_names(names)[0]
        colour = colour if colour in {o["value"] for o in opts} else opts[0]["value"]
        return names, name, opts, colour

    _job_panel.register(app, ctx, PREFIX)

    @app.callback(
        Output("projection-map", "figure"), Output("projection-message", "children"),
        Output(f"{PREFIX}-job", "data"),
        Input("projection-model", "value"), Input("projection-name", "value"),
        Input("projection-method", "value"), Input("projection-sample", "value"),
        Input("projection-colour", "value"), Input("projection-unit", "value"),
        Input("projection-fit", "n_clicks"), State(f"{PREFIX}-job", "data"),
    )  # fmt: skip
    def on_map(model, name, method, sample, colour, unit, _fit, current):
        try:
            if ctx.store(model) is None or name not in ctx.store(model).names:
                raise slogic.ViewError(f"{name!r} is not in the {model} store")
            if needs_job(ctx, model, name, method, sample):
                kwargs = fit_arguments(ctx, model, name, method, sample)
                job, refused = _job_panel.start(ctx, current, "projection", model=model,
                                                name=name, **kwargs)  # fmt: skip
                if job is None:
                    return no_update, _error(refused), no_update
                text = f"fitting the UMAP map of {name} (progress below)"
                return waiting_figure(text), "", job
            return map_figure(ctx, model, name, method, sample, colour, unit), "", no_update
        except (slogic.ViewError, ValueError, TypeError) as exc:
            return {}, _error(str(exc)), no_update

    @app.callback(
        Output("projection-map", "figure", allow_duplicate=True),
        Output("projection-message", "children", allow_duplicate=True),
        Input(f"{PREFIX}-job-done", "data"),
        State("projection-model", "value"), State("projection-name", "value"),
        State("projection-method", "value"), State("projection-sample", "value"),
        State("projection-colour", "value"), State("projection-unit", "value"),
        prevent_initial_call=True,
    )  # fmt: skip
    def on_fitted(done, model, name, method, sample, colour, unit):
        state = (done or {}).get("state")
        if state == "cancelled":
            return waiting_figure("UMAP cancelled: press Fit to fit it again"), ""
        if state == "failed":
            return waiting_figure("UMAP failed"), _error(f"the map failed: {done['message']}")
        if state != "done":
            return no_update, no_update
        try:
            kwargs = fit_arguments(ctx, model, name, method, sample)
            if done.get("job") != ctx.jobs().job_id("projection", {"model": model, "name": name,
                                                                    **kwargs}):  # fmt: skip
                return no_update, no_update  # the controls moved on meanwhile
            return map_figure(ctx, model, name, method, sample, colour, unit), ""
        except (slogic.ViewError, ValueError, TypeError) as exc:
            return {}, _error(str(exc))

    @app.callback(
        Output("projection-selected", "children"),
        Input("projection-map", "selectedData"), Input("projection-unit", "value"),
        State("projection-model", "value"), State("projection-name", "value"),
    )  # fmt: skip
    def on_lasso(selected, unit, model, name):
        steps = selected_steps(selected)
        if not steps or ctx.store(model) is None or name not in ctx.store(model).names:
            return html.P("Lasso or box points on the map to list their contexts here.",
                          className="wb-hint")  # fmt: skip
        try:
            unit = int(unit or 0)
        except (TypeError, ValueError):
            unit = 0
        return selected_list(ctx, model, name, steps, unit)
