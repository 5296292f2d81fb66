"""Attention page: an encoder-decoder's attention, greedy output, top-k and beam search.

Type a word; the grapheme-to-phoneme model decodes it greedily (each output phoneme's
attention over the source characters as a matrix, the top-k phonemes of every step) and by
beam search with the beam size chosen. What-if: edit the word or force another phoneme at
a decoder step and see the rest re-decoded greedily, with the new decode's attention.
"Explain this output token": the relevance of every letter for one output phoneme,
one row per chosen method. Served on the encoder-decoder models of the app, or
the shipped ``g2p`` model.
"""

from __future__ import annotations

from urllib.parse import quote

from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from workbench.app import _attention_logic as alogic

PATH = "/attention"
TITLE = "Attention"
GRAPH = {"displaylogo": False}
EXAMPLE = "workbench"
POOL_EXAMPLE = "a wonderful, moving film with a weak ending"
MAX_POOL_TEXT = 20 * alogic.MAX_POOL_TOKENS


def _error(text: str) -> html.Div:
    return html.Div(text, className="wb-error")


def layout(ctx, model=None, word=None, **_ignored):
    """The page for ``?model=&word=`` (bad values are reported, never raised).

    ``?model=`` naming an attention-pooling classifier (e.g. ``sentiment``) shows its
    pooling weights instead (:func:`pool_layout`); the encoder-decoder stays the default.
    """
    pools = alogic.pool_models(ctx)
    found = alogic.models(ctx)
    if isinstance(model, str) and model in pools and model not in found:
        return pool_layout(model, word)
    if not found:
        return html.Div(
            [
                html.H2("Attention"),
                _error(
                    "No encoder-decoder model is served: train one with `workbench train g2p` "
                    "or reinstall the package (it ships workbench/models/shipped/g2p)."
                ),
            ]
        )
    names = list(found)
    problem = None
    if model not in names:
        problem = None if model is None else f"unknown model {model!r}; showing {names[0]!r}"
        model = names[0]
    word = word if isinstance(word, str) and word else EXAMPLE
    return html.Div(
        [
            html.H2("Attention"),
            html.P(
                [
                    f"Model: {model}. Type a word: the decoder's attention over its characters "
                    "(rows: output phonemes, columns: letters), the top phonemes of every step "
                    "and the beam search. ",
                    *[
                        dcc.Link(
                            f"Attention pooling of {p}",
                            href=f"{PATH}?model={quote(p)}",
                            id="attention-pool-link",
                        )
                        for p in list(pools)[:1]
                    ],
                ],
                className="wb-hint",
            ),
            _error(problem) if problem else None,
            dcc.Store(id="attention-model", data=model),
            html.Div(
                [
                    html.Label(
                        [
                            "Word",
                            dcc.Input(
                                id="attention-word",
                                value=word[: 4 * alogic.MAX_CHARS],
                                type="text",
                                maxLength=4 * alogic.MAX_CHARS,
                                debounce=True,
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            f"Beam size (1-{alogic.MAX_BEAM})",
                            dcc.Input(id="attention-beam", value=4, type="number", step=1),
                        ]
                    ),
                    html.Label(
                        [
                            f"Top-k (1-{alogic.MAX_TOPK})",
                            dcc.Input(id="attention-topk", value=3, type="number", step=1),
                        ]
                    ),
                    html.Button("Decode", id="attention-run", n_clicks=0),
                ],
                className="wb-controls",
            ),
            dcc.Loading(
                html.Div(
                    [
                        html.Div(id="attention-message"),
                        html.Div(id="attention-output"),
                        dcc.Graph(id="attention-matrix", config=GRAPH),
                        html.H3("Top phonemes per step"),
                        html.Div(id="attention-topk-table"),
                        html.H3("Beam search"),
                        html.Div(id="attention-beam-table"),
                        dcc.Graph(id="attention-beam-tree", config=GRAPH),
                    ]
                )
            ),
            html.H3("What if"),
            html.P(
                "Edit the word, or force a phoneme at a decoder step (0 = the first output; "
                "ARPAbet without stress digits, or </s> to end there): the steps after it are "
                "decoded greedily again. Leave step and phoneme empty to re-decode the edited "
                "word only. A forced step is marked * in the matrix.",
                className="wb-hint",
            ),
            html.Div(
                [
                    html.Label(
                        [
                            "Word",
                            dcc.Input(
                                id="attention-whatif-word",
                                value=word[: 4 * alogic.MAX_CHARS],
                                type="text",
                                maxLength=4 * alogic.MAX_CHARS,
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "Force at step",
                            dcc.Input(id="attention-force-step", type="number", step=1),
                        ]
                    ),  # fmt: skip
                    html.Label(
                        [
                            "phoneme",
                            dcc.Input(
                                id="attention-force-phoneme",
                                type="text",
                                maxLength=8,
                                placeholder="e.g. AH",
                            ),
                        ]
                    ),  # fmt: skip
                    html.Button("Re-decode", id="attention-whatif-run", n_clicks=0),
                ],
                className="wb-controls",
            ),
            dcc.Loading(html.Div(id="attention-whatif-result")),
            html.H3("Explain this output token"),
            html.P(
                "Choose a decoder step of the word's greedy output (0 = the first phoneme) and "
                "methods: the relevance of every letter for that phoneme's logit, one row per "
                "method (each row scaled by its largest |relevance|), run teacher-forced on "
                "the greedy output. Under it, per method, the explained score and its "
                "completeness (integrated gradients) or conservation (LRP) line.",
                className="wb-hint",
            ),
            html.Div(
                [
                    html.Label(
                        [
                            "Step",
                            dcc.Input(id="attention-explain-step", value=0, type="number", step=1),
                        ]
                    ),  # fmt: skip
                    dcc.Checklist(
                        id="attention-explain-methods",
                        options=[{"label": m, "value": m} for m in alogic.EXPLAIN_METHODS],
                        value=["integrated_gradients", "occlusion", "lrp"],
                        inline=True,
                    ),
                    html.Label(
                        [
                            f"IG steps (1-{alogic.MAX_IG_STEPS})",
                            dcc.Input(
                                id="attention-explain-igsteps", value=32, type="number", step=1
                            ),
                        ]
                    ),  # fmt: skip
                    html.Button("Explain", id="attention-explain-run", n_clicks=0),
                ],
                className="wb-controls",
            ),
            dcc.Loading(html.Div(id="attention-explain-result")),
        ],
        className="wb-attention",
    )


def pool_layout(model: str, text=None) -> html.Div:
    """The pooling view: type a text, see the classifier's attention over its tokens."""
    text = text if isinstance(text, str) and text else POOL_EXAMPLE
    return html.Div(
        [
            html.H2("Attention"),
            html.P(
                f"Model: {model} (attention pooling). Type a text: the weights the classifier's "
                "pooling gives every token (recorded as pool.weights) as a 1 x tokens matrix, "
                "with the predicted class.",
                className="wb-hint",
            ),
            dcc.Store(id="attention-model", data=model),
            html.Div(
                [
                    html.Label(
                        [
                            "Text",
                            dcc.Input(
                                id="attention-pool-text",
                                value=text[:MAX_POOL_TEXT],
                                type="text",
                                maxLength=MAX_POOL_TEXT,
                                debounce=True,
                                style={"width": "40em"},
                            ),
                        ]
                    ),  # fmt: skip
                    html.Button("Show", id="attention-pool-run", n_clicks=0),
                ],
                className="wb-controls",
            ),
            dcc.Loading(html.Div(id="attention-pool-result")),
        ],
        className="wb-attention",
    )


def pool_view(ctx, model: str, text):
    """The pooling answer: an error line, or the predicted class and the weights' matrix."""
    from workbench.viz import attention_heatmap

    found = alogic.pool_models(ctx)
    if model not in found:
        return _error(f"unknown model {model!r}")
    bundle = ctx.cached(("attention-bundle", model), lambda: _load(found[model]))
    try:
        r = alogic.pool_attention(bundle, text)
    except alogic.AttentionInputError as exc:
        return html.Div(_error(str(exc)), id="attention-pool-error")
    probs = ", ".join(f"{k} {v:.2f}" for k, v in r["probs"].items())
    fig = attention_heatmap(r["weights"], [f"pooled ({r['label']})"], r["tokens"],
                            title=f"attention pooling: predicted {r['label']}")  # fmt: skip
    fig.update_layout(height=260)
    fig.update_xaxes(title_text="token")
    fig.update_yaxes(title_text="")
    return html.Div(
        [
            html.P(["Predicted: ", html.B(r["label"], id="attention-pool-label"), f" ({probs})"]),
            dcc.Graph(id="attention-pool-matrix", figure=fig, config=GRAPH),
        ]
    )


def decode_view(ctx, model: str, word, beam, topk):
    """``(message, output line, figure, top-k table, beam table, beam tree)`` of a request."""
    import plotly.graph_objects as go

    from workbench.viz import beam_tree, seq2seq_attention

    found = alogic.models(ctx)
    if model not in found:
        return _error(f"unknown model {model!r}"), None, go.Figure(), None, None, go.Figure()
    bundle = ctx.cached(("attention-bundle", model), lambda: _load(found[model]))
    try:
        r = alogic.analyse(bundle, word, beam, topk)
    except alogic.AttentionInputError as exc:
        return _error(str(exc)), None, go.Figure(), None, None, go.Figure()
    fig = seq2seq_attention(
        r["attention"], r["phonemes"], r["chars"], title=f"attention: {r['word']}"
    )
    output = html.P(
        ["Greedy: ", html.B(" ".join(r["phonemes"][:-1]) or "(nothing)", id="attention-greedy")]
    )
    head = html.Tr([html.Th("step"), html.Th("output")] + [
        html.Th(f"#{k + 1}") for k in range(len(r["topk"][0]))
    ])  # fmt: skip
    rows = [
        html.Tr([html.Td(t), html.Td(r["phonemes"][t])]
                + [html.Td(f"{p} {q:.2f}") for p, q in step])
        for t, step in enumerate(r["topk"])
    ]  # fmt: skip
    topk = html.Table([html.Thead(head), html.Tbody(rows)], className="wb-table")
    beam_rows = [
        html.Tr([html.Td(k + 1), html.Td(" ".join(p)), html.Td(f"{lp:.3f}"),
                 html.Td("yes" if done else "no (step limit)")])
        for k, (p, lp, done) in enumerate(r["beam"])
    ]  # fmt: skip
    beam_table = html.Div(
        [
            html.P(f"beam size {r['beam_size']}: finished hypotheses, best first"),
            html.Table(
                [
                    html.Thead(
                        html.Tr(
                            [
                                html.Th("rank"),
                                html.Th("phonemes"),
                                html.Th("log-probability"),
                                html.Th("finished"),
                            ]
                        )
                    ),
                    html.Tbody(beam_rows),
                ],
                className="wb-table",
                id="attention-beam-hypotheses",
            ),  # fmt: skip
        ]
    )
    tree = beam_tree(r["beam_nodes"], r["labels"], title=f"beam search, size {r['beam_size']}")
    return None, output, fig, topk, beam_table, tree


def what_if_view(ctx, model: str, word, step, phoneme):
    """The what-if answer: an error line, or the re-decoded output and its attention."""
    from workbench.viz import seq2seq_attention

    found = alogic.models(ctx)
    if model not in found:
        return _error(f"unknown model {model!r}")
    bundle = ctx.cached(("attention-bundle", model), lambda: _load(found[model]))
    try:
        r = alogic.what_if(bundle, word, step, phoneme)
    except alogic.AttentionInputError as exc:
        return html.Div(_error(str(exc)), id="attention-whatif-error")
    forced = "" if r["forced"] is None else f", {r['phonemes'][r['forced']]} forced at step "
    forced += "" if r["forced"] is None else str(r["forced"])
    title = f"what if: {r['word']}{forced}"
    return html.Div(
        [
            html.P(["Re-decoded: ",
                    html.B(" ".join(r["phonemes"]) or "(nothing)", id="attention-whatif-output"),
                    f" (greedy without forcing: {' '.join(r['original'])})"]),
            dcc.Graph(
                id="attention-whatif-matrix",
                figure=seq2seq_attention(r["attention"], r["phonemes"], r["chars"],
                                         forced=r["forced"], title=title),
                config=GRAPH,
            ),
        ]
    )  # fmt: skip


def _check_lines(method: str, c: dict, fed: float = 0.0) -> list[str]:
    """The explained score and the completeness / conservation line of one method.

    ``c`` is :func:`workbench.app._explain_logic.checks` of the explanation; ``fed`` the
    LRP relevance of the earlier output phonemes the decoder was fed (teacher forcing).
    """
    lines = [f"explained score {c['output']:.4g}; relevance sum {c['sum']:.4g}"]
    rel = c.get("relative_delta", float("nan"))
    if method == "integrated_gradients" and "delta" in c:
        lines.append(
            f"completeness delta {c['delta']:.3g} (sum - (F(x) - F(baseline)); relative {rel:.2%})"
        )
    elif method == "lrp" and "delta" in c:
        lines.append(
            f"conservation: output {c['output']:.4g} = relevance {c['sum']:.4g} + initial "
            f"state {c.get('initial_state_relevance', 0.0):.3g} + earlier phonemes "
            f"{fed:.3g} + absorbed by biases "
            f"{c['delta']:.3g} (relative {rel:.2%})"
        )
    return lines


def _fed(explanation) -> float:
    """LRP's relevance of the fed earlier outputs (0 for the other methods)."""
    tokens = explanation.extras.get("token_relevance") or {}
    return float(sum(float(v.double().sum()) for v in tokens.values()))


def explain_view(ctx, model: str, word, step, methods, n_steps):
    """Explain this output token: an error line, or the relevance figure and the checks."""
    from workbench.app._explain_logic import checks
    from workbench.viz import seq2seq_relevance

    found = alogic.models(ctx)
    if model not in found:
        return _error(f"unknown model {model!r}")
    bundle = ctx.cached(("attention-bundle", model), lambda: _load(found[model]))
    try:
        r = alogic.explain_output(bundle, word, step, methods, n_steps)
    except alogic.AttentionInputError as exc:
        return html.Div(_error(str(exc)), id="attention-explain-error")
    names = list(r["explanations"])
    rel = [r["explanations"][m].attributions[0].detach().double().tolist() for m in names]
    title = f"relevance for {r['phoneme']} at step {r['step']} of {r['word']}"
    items = [
        html.Li([html.B(m), ": ", "; ".join(_check_lines(m, checks(e), _fed(e)))],
                id=f"attention-explain-check-{m}")
        for m, e in r["explanations"].items()
    ]  # fmt: skip
    return html.Div(
        [
            html.P(["Explained: ", html.B(r["phoneme"], id="attention-explain-phoneme"),
                    f" at step {r['step']} of {' '.join(r['phonemes'])}"]),
            dcc.Graph(id="attention-explain-matrix", config=GRAPH,
                      figure=seq2seq_relevance(rel, names, r["chars"], title=title)),
            html.Ul(items, id="attention-explain-checks"),
        ]
    )  # fmt: skip


def _load(path):
    from workbench.models.checkpoint import load

    return load(path)


def register(app, ctx) -> None:
    """Decode on load/Decode/Enter; what-if on Re-decode; explain on Explain (own callbacks)."""

    @app.callback(
        Output("attention-message", "children"),
        Output("attention-output", "children"),
        Output("attention-matrix", "figure"),
        Output("attention-topk-table", "children"),
        Output("attention-beam-table", "children"),
        Output("attention-beam-tree", "figure"),
        Input("attention-run", "n_clicks"),
        Input("attention-word", "value"),
        State("attention-model", "data"),
        State("attention-beam", "value"),
        State("attention-topk", "value"),
    )
    def _decode(_clicks, word, model, beam, topk):
        return decode_view(ctx, model, word, beam, topk)

    @app.callback(
        Output("attention-whatif-result", "children"),
        Input("attention-whatif-run", "n_clicks"),
        State("attention-model", "data"),
        State("attention-whatif-word", "value"),
        State("attention-force-step", "value"),
        State("attention-force-phoneme", "value"),
    )
    def _what_if(clicks, model, word, step, phoneme):
        if not clicks:
            raise PreventUpdate
        return what_if_view(ctx, model, word, step, phoneme)

    @app.callback(
        Output("attention-pool-result", "children"),
        Input("attention-pool-run", "n_clicks"),
        Input("attention-pool-text", "value"),
        State("attention-model", "data"),
    )
    def _pool(_clicks, text, model):
        return pool_view(ctx, model, text)

    @app.callback(
        Output("attention-explain-result", "children"),
        Input("attention-explain-run", "n_clicks"),
        State("attention-model", "data"),
        State("attention-word", "value"),
        State("attention-explain-step", "value"),
        State("attention-explain-methods", "value"),
        State("attention-explain-igsteps", "value"),
    )
    def _explain(clicks, model, word, step, methods, n_steps):
        if not clicks:
            raise PreventUpdate
        return explain_view(ctx, model, word, step, methods, n_steps)
