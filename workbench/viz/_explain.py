"""Figures of explanations: token heatmaps, agreement, deletion curves; attention maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from workbench.viz._common import (
    DIVERGING,
    SELECTED_COLOURS,
    SEQUENTIAL,
    as_array,
    base_layout,
    display_token,
    token_axis,
    token_labels,
)


def _rows(attributions: Any, index: int) -> tuple[dict[str, np.ndarray], list | None]:
    """Method -> ``[time]`` relevance, from Explanations or a mapping of arrays."""
    if isinstance(attributions, Mapping):
        rows = {str(k): np.atleast_1d(as_array(v, np.ndim(np.asarray(v)), k)) for k, v in
                attributions.items()}  # fmt: skip
        return {k: (v[index] if v.ndim == 2 else v) for k, v in rows.items()}, None
    if hasattr(attributions, "attributions"):
        attributions = [attributions]
    rows, tokens = {}, None
    for e in attributions:
        a = as_array(e.attributions, 2, f"{e.method} attributions")
        n = int(e.lengths[index]) if getattr(e, "lengths", None) is not None else a.shape[1]
        rows[str(e.method)] = a[index, :n]
        if tokens is None and getattr(e, "tokens", None) is not None:
            tokens = list(e.tokens[index])[:n]
    return rows, tokens


def attribution_heatmap(
    attributions: Any,
    tokens: Sequence[Any] | None = None,
    *,
    index: int = 0,
    normalise: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Token relevance, one row per method, diverging colours centred at zero.

    Parameters
    ----------
    attributions : Explanation, sequence of Explanation, or mapping of str to array-like
        The explanations (one row per ``method``), or method name -> ``[time]`` (or
        ``[batch, time]``) relevance.
    tokens : sequence of str, optional
        ``[time]`` tokens; defaults to the explanations' own tokens.
    index : int
        Which sequence of the batch.
    normalise : bool
        Scale each row by its largest ``|relevance|`` (colours comparable across methods;
        the hover shows the raw value).
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace, ``z`` shaped ``[methods, time]``, raw values in the hover.
    """
    rows, own_tokens = _rows(attributions, index)
    if not rows:
        raise ValueError("no attributions to show")
    time = min(len(v) for v in rows.values())
    raw = np.stack([v[:time] for v in rows.values()])
    z = raw.copy()
    if normalise:
        scale = np.abs(z).max(1, keepdims=True)
        z = np.divide(z, scale, out=np.zeros_like(z), where=scale > 0)
    labels = token_labels(tokens if tokens is not None else own_tokens, time)
    names = [display_token(m) for m in rows]
    bound = float(np.abs(z).max()) or 1.0
    custom = np.stack([np.broadcast_to(np.array(labels, dtype=object), raw.shape), raw], -1)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=np.arange(time), y=names, colorscale=DIVERGING,
            zmin=-bound, zmid=0.0, zmax=bound, customdata=custom, xgap=1, ygap=2,
            hovertemplate="%{y}<br>%{customdata[0]} (step %{x})<br>relevance "
            "%{customdata[1]:.4g}<extra></extra>",
            colorbar={"title": {"text": "relevance" + (" / max" if normalise else "")}},
        )
    )  # fmt: skip
    fig.update_layout(**base_layout(title, height=120 + 40 * len(names)))
    fig.update_xaxes(**token_axis(labels))
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def agreement_heatmap(
    matrix: Any, methods: Sequence[str], *, metric: str = "Spearman", title: str | None = None
) -> go.Figure:
    """Pairwise agreement between methods.

    Parameters
    ----------
    matrix : array-like
        ``[methods, methods]`` agreement (e.g. Spearman rank correlation).
    methods : sequence of str
        Method names.
    metric : str
        Name shown in the hover and colour bar.
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One annotated ``Heatmap`` trace.
    """
    m = as_array(matrix, 2, "matrix")
    names = [display_token(x) for x in methods]
    if m.shape != (len(names), len(names)):
        raise ValueError(f"matrix is {m.shape} for {len(names)} methods")
    fig = go.Figure(
        go.Heatmap(
            z=m, x=names, y=names, zmin=-1, zmax=1, zmid=0, colorscale=DIVERGING,
            text=np.round(m, 2), texttemplate="%{text}",
            hovertemplate=f"%{{y}} vs %{{x}}<br>{metric} %{{z:.3f}}<extra></extra>",
            colorbar={"title": {"text": metric}},
        )
    )  # fmt: skip
    fig.update_layout(**base_layout(title, height=120 + 50 * len(names)))
    fig.update_yaxes(autorange="reversed")
    return fig


def deletion_curve(
    curves: Mapping[str, Any], *, fractions: Any = None, title: str | None = None
) -> go.Figure:
    """Deletion (or insertion) curves per method, AOPC in the legend.

    Parameters
    ----------
    curves : mapping of str to dict or array-like
        Method -> the dict of :func:`workbench.explainers.metrics.perturbation_curve` (uses
        ``fractions``, ``scores`` of sequence 0 and ``aopc``), or ``[points]`` scores.
    fractions : array-like, optional
        ``[points]`` removed fractions for plain score arrays (default evenly spaced).
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One line trace per method named ``"METHOD (AOPC x.xxx)"``.
    """
    if not curves:
        raise ValueError("no curves to show")
    fig = go.Figure()
    for i, (method, curve) in enumerate(curves.items()):
        if isinstance(curve, Mapping):
            scores = np.atleast_2d(as_array(curve["scores"], np.ndim(curve["scores"]), "scores"))
            y = scores[0]
            fr = as_array(curve["fractions"], 1, "fractions")
            aopc = float(np.atleast_1d(as_array(curve["aopc"], np.ndim(curve["aopc"]), "aopc"))[0])
        else:
            y = as_array(curve, 1, "scores")
            fr = (as_array(fractions, 1, "fractions") if fractions is not None
                  else np.linspace(0, 1, len(y)))  # fmt: skip
            aopc = float(np.mean(y[0] - y))
        name = f"{display_token(method)} (AOPC {aopc:.3f})"
        fig.add_trace(
            go.Scatter(
                x=fr, y=y, mode="lines+markers", name=name,
                line={"color": SELECTED_COLOURS[i % len(SELECTED_COLOURS)]},
                hovertemplate=f"{display_token(method)}<br>removed %{{x:.0%}}: "
                "%{y:.3f}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(**base_layout(title, height=340))
    fig.update_xaxes(title_text="fraction removed (most relevant first)", tickformat=".0%")
    fig.update_yaxes(title_text="score")
    return fig


def attention_heatmap(
    weights: Any,
    query_tokens: Sequence[Any] | None = None,
    key_tokens: Sequence[Any] | None = None,
    *,
    title: str | None = None,
) -> go.Figure:
    """Attention weights of one head as a query x key heatmap.

    Parameters
    ----------
    weights : array-like
        ``[query, key]`` weights (one sequence, one head).
    query_tokens, key_tokens : sequence of str, optional
        Tokens of both axes (``key_tokens`` defaults to ``query_tokens`` when square).
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace, ``z`` shaped ``[query, key]``.
    """
    w = as_array(weights, 2, "weights")
    n_q, n_k = w.shape
    if key_tokens is None and query_tokens is not None and n_q == n_k:
        key_tokens = query_tokens
    q_labels, k_labels = token_labels(query_tokens, n_q), token_labels(key_tokens, n_k)
    custom = np.stack(np.meshgrid(np.array(k_labels, dtype=object),
                                  np.array(q_labels, dtype=object)), -1)  # fmt: skip
    fig = go.Figure(
        go.Heatmap(
            z=w, x=np.arange(n_k), y=np.arange(n_q), colorscale=SEQUENTIAL, zmin=0,
            customdata=custom,
            hovertemplate="query %{customdata[1]} (%{y})<br>key %{customdata[0]} (%{x})"
            "<br>weight %{z:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(**base_layout(title, height=max(300, min(800, 16 * n_q + 120))))
    fig.update_xaxes(**token_axis(k_labels), title_text="key")
    fig.update_yaxes(**{**token_axis(q_labels), "tickangle": 0}, title_text="query",
                     autorange="reversed")  # fmt: skip
    return fig
