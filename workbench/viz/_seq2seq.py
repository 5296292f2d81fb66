"""Figures of encoder-decoder outputs: the attention of a decode, the beam search as a tree."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from workbench.viz._common import base_layout, display_token


def seq2seq_attention(
    attention,
    outputs: Sequence[str],
    sources: Sequence[str],
    *,
    forced: int | None = None,
    title: str | None = None,
):
    """A decode's attention: one row per output token, one column per source token.

    Parameters
    ----------
    attention : array-like
        ``[steps, source]`` weights of each decoder step (rows sum to 1).
    outputs : sequence of str
        The output token of every step (``</s>`` last when reached).
    sources : sequence of str
        The source tokens (a word's characters).
    forced : int, optional
        A step whose output was forced (what-if): its label is marked ``*``.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace ``[steps, source]`` (:func:`attention_heatmap`), axes titled
        source character / output phoneme.
    """
    from workbench.viz._explain import attention_heatmap

    labels = [f"{o}*" if t == forced else o for t, o in enumerate(outputs)]
    fig = attention_heatmap(attention, labels, list(sources), title=title)
    fig.update_xaxes(title_text="source character")
    fig.update_yaxes(title_text="output phoneme (decoder step)")
    return fig


def beam_tree(nodes: Sequence[dict], labels: Sequence[str], *, title: str | None = None):
    """The candidates a beam search kept, step by step, each linked to the one it extends.

    Parameters
    ----------
    nodes : sequence of dict
        ``{"step", "token", "logprob", "parent", "finished"}`` per kept candidate, as in
        :attr:`workbench.models.seq2seq.Beam.nodes` (``parent`` -1 at step 0).
    labels : sequence of str
        Display string of every token id.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        x = decoder step, y = rank among the step's kept candidates (best on top); finished
        candidates (``</s>``) drawn as squares. One line trace (edges), one marker trace.
    """
    rank: dict[int, int] = {}
    per_step: dict[int, int] = {}
    for i, n in enumerate(nodes):
        rank[i] = per_step.get(n["step"], 0)
        per_step[n["step"]] = rank[i] + 1
    ex, ey = [], []
    for i, n in enumerate(nodes):
        if n["parent"] >= 0:
            p = n["parent"]
            ex += [nodes[p]["step"], n["step"], None]
            ey += [rank[p], rank[i], None]
        else:
            ex += [-1, n["step"], None]
            ey += [0, rank[i], None]
    text = [display_token(labels[n["token"]]) for n in nodes]
    fig = go.Figure(
        [
            go.Scatter(x=ex, y=ey, mode="lines", line={"color": "#bbb"}, hoverinfo="skip",
                       showlegend=False),
            go.Scatter(
                x=[-1] + [n["step"] for n in nodes],
                y=[0] + [rank[i] for i in range(len(nodes))],
                mode="markers+text",
                text=["&lt;s&gt;", *text],
                textposition="top center",
                marker={
                    "size": 10,
                    "symbol": ["circle"] + ["square" if n["finished"] else "circle" for n in nodes],
                    "color": [0.0] + [n["logprob"] for n in nodes],
                    "colorscale": "Viridis",
                    "colorbar": {"title": {"text": "log p"}},
                },
                customdata=[0.0] + [n["logprob"] for n in nodes],
                hovertemplate="step %{x}<br>%{text}<br>log p %{customdata:.3f}<extra></extra>",
                showlegend=False,
            ),
        ]
    )  # fmt: skip
    height = max(260, min(700, 40 * max(per_step.values(), default=1) + 120))
    fig.update_layout(**base_layout(title, height=height))
    fig.update_xaxes(title_text="decoder step", dtick=1)
    top = max(per_step.values(), default=1) - 1
    fig.update_yaxes(title_text="rank in the beam", range=[top + 0.5, -0.8], dtick=1)
    return fig


def seq2seq_relevance(
    relevance,
    methods: Sequence[str],
    sources: Sequence[str],
    *,
    title: str | None = None,
):
    """Relevance of every source token for one output token, one row per method.

    Each row is scaled by its own largest ``|relevance|`` for the colour (methods differ
    in scale); the hover shows the raw value.

    Parameters
    ----------
    relevance : array-like
        ``[methods, source]`` signed relevance (e.g. ``Explanation.attributions[0]``).
    methods : sequence of str
        The method of every row.
    sources : sequence of str
        The source tokens (a word's characters), raw text.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace, ``z`` ``[methods, source]`` in [-1, 1], ``customdata`` the
        raw relevance.
    """
    import numpy as np

    from workbench.viz._common import DIVERGING, as_array, token_axis, token_labels

    r = as_array(relevance, 2, "relevance").astype(float)
    n_m, n_s = r.shape
    scale = np.abs(r).max(axis=1, keepdims=True)
    z = r / np.where(scale > 0, scale, 1.0)
    labels = token_labels(sources, n_s)
    rows = [display_token(m) for m in methods]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=np.arange(n_s), y=np.arange(n_m), zmin=-1, zmax=1, colorscale=DIVERGING,
            customdata=r, text=np.array([labels] * n_m, dtype=object),
            hovertemplate="%{text} (%{x})<br>relevance %{customdata:.4g}<extra></extra>",
            colorbar={"title": {"text": "relevance / row max"}},
        )
    )  # fmt: skip
    fig.update_layout(**base_layout(title, height=max(220, min(600, 40 * n_m + 140))))
    fig.update_xaxes(**token_axis(labels), title_text="source character")
    fig.update_yaxes(tickmode="array", tickvals=list(range(n_m)), ticktext=rows,
                     autorange="reversed", title_text="method")  # fmt: skip
    return fig
