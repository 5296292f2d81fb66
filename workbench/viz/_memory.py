"""Figures of memory over time: connectivity curves with bands, unit time scales."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from workbench.viz._common import base_layout, plotly_text

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def memory_curves(
    curves: Mapping[str, Any],
    *,
    share: float | None = 0.1,
    log: bool = True,
    normalize: bool = False,
    title: str | None = None,
    ytitle: str | None = None,
) -> go.Figure:
    """Connectivity (or state gradient) over lag, one line with its 95 % band per curve.

    Parameters
    ----------
    curves : mapping of str to Curve
        Label -> :class:`workbench.memory.Curve` (``lags``, ``mean``, ``low``, ``high``
        ``[lag]``), e.g. one per model or layer.
    share : float or None
        Mark each curve's memory horizon (first lag after the peak below ``share`` of it).
    log : bool
        Logarithmic y-axis.
    normalize : bool
        Divide each curve by its peak (curves of different models on one scale).
    title : str, optional
    ytitle : str, optional
        The y-axis title (default: the first curve's measure name).

    Returns
    -------
    plotly.graph_objects.Figure
        Per curve a band (``fill="toself"``) and a line trace; horizons as dotted lines.
    """
    fig = go.Figure()
    for k, (label, c) in enumerate(curves.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        scale = float(np.max(c.mean)) if normalize and np.max(c.mean) > 0 else 1.0
        lags = np.asarray(c.lags)
        low = np.asarray(c.low) / scale
        if log:
            low = np.maximum(low, np.asarray(c.mean) / scale * 1e-3)
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([lags, lags[::-1]]),
                y=np.concatenate([np.asarray(c.high) / scale, low[::-1]]),
                fill="toself",
                fillcolor=_rgba(colour, 0.2),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                name=f"{plotly_text(label)} band",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=lags,
                y=np.asarray(c.mean) / scale,
                mode="lines",
                line={"color": colour},
                name=plotly_text(label),
                hovertemplate="lag %{x}: %{y:.3g}<extra>" + plotly_text(label) + "</extra>",
            )
        )
        h = c.horizon(share) if share else None
        if h is not None:
            fig.add_vline(x=h, line={"color": colour, "dash": "dot", "width": 1})
    what = ytitle or (next(iter(curves.values())).name if curves else "connectivity")
    fig.update_layout(
        **base_layout(title, 340),
        xaxis={"title": "lag k (steps before the scored output)"},
        yaxis={
            "title": plotly_text(what + (" / peak" if normalize else "")),
            "type": "log" if log else "linear",
            "exponentformat": "power",
        },
        legend={"x": 1, "xanchor": "right", "y": 1, "bgcolor": "rgba(255,255,255,0.7)"},
    )
    return fig


def time_scale_histogram(scales: Sequence[Any], *, title: str | None = None) -> go.Figure:
    """Distribution of per-unit time constants ``tau`` (log10 steps), one histogram per layer.

    Parameters
    ----------
    scales : sequence of TimeScales
        :class:`workbench.memory.TimeScales` (``name``, ``tau [units]``).

    Returns
    -------
    plotly.graph_objects.Figure
        One overlaid ``Histogram`` per layer; units with ``tau = inf`` are counted in the
        last bin (shown at 10^6 steps).
    """
    fig = go.Figure()
    for k, s in enumerate(scales):
        tau = np.minimum(np.asarray(s.tau, dtype=np.float64), 1e6)
        fig.add_trace(
            go.Histogram(
                x=np.log10(np.maximum(tau, 1e-3)),
                name=plotly_text(s.name),
                opacity=0.6,
                marker={"color": _COLOURS[k % len(_COLOURS)]},
                xbins={"size": 0.1},
            )
        )
    fig.update_layout(
        **base_layout(title, 300),
        barmode="overlay",
        xaxis={"title": "log10 tau (steps), tau = -1 / log(mean keep gate)"},
        yaxis={"title": "units"},
        legend={"orientation": "h", "y": 1.15},
    )
    return fig


def time_scale_ranking(
    scales: Any, *, top: int = 15, efold: Any = None, title: str | None = None
) -> go.Figure:
    """The units that hold information longest, ranked by ``tau``, with its spread.

    Parameters
    ----------
    scales : TimeScales
        One layer's time scales.
    top : int
        How many units.
    efold : array-like, optional
        ``[units]`` e-folding lag of the state's autocorrelation (the model-free estimate),
        drawn as diamonds beside each bar.

    Returns
    -------
    plotly.graph_objects.Figure
        Horizontal ``Bar`` of ``tau`` (error bars: 10-90 % over corpus blocks), log x-axis.
    """
    order = scales.ranked(top)
    tau = np.minimum(np.asarray(scales.tau)[order], 1e6)
    q = np.minimum(scales.quantiles((0.1, 0.9))[:, order], 1e6)
    labels = [f"unit {u}" for u in order]
    fig = go.Figure(
        go.Bar(
            x=tau,
            y=labels,
            orientation="h",
            name="tau from gates",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": np.maximum(q[1] - tau, 0),
                "arrayminus": np.maximum(tau - q[0], 0),
            },
            hovertemplate="%{y}: tau %{x:.3g} steps<extra></extra>",
        )
    )
    if efold is not None:
        e = np.minimum(np.asarray(efold, dtype=np.float64)[order], 1e6)
        fig.add_trace(
            go.Scatter(
                x=e,
                y=labels,
                mode="markers",
                marker={"symbol": "diamond", "size": 9},
                name="autocorrelation 1/e lag",
            )
        )
    fig.update_layout(
        **base_layout(title or f"longest memory: {scales.name}", 60 + 22 * len(order)),
        xaxis={"title": "tau (steps)", "type": "log"},
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
