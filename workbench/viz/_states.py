"""Figures of recorded states: trajectories, gate heatmaps, gate saturation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from workbench.viz._common import (
    FADED,
    SELECTED_COLOURS,
    SEQUENTIAL,
    as_array,
    base_layout,
    display_token,
    token_axis,
    token_labels,
)


def _nan_joined(values: np.ndarray, units: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Many unit lines as one trace: x/y concatenated with NaN breaks."""
    time = values.shape[0]
    if not len(units):
        return np.empty(0), np.empty(0)
    x = np.tile(np.append(np.arange(time, dtype=np.float64), np.nan), len(units))
    y = np.concatenate([np.append(values[:, u], np.nan) for u in units])
    return x, y


def trajectories(
    values: Any,
    tokens: Sequence[Any] | None = None,
    *,
    threshold: float | None = 0.3,
    selected: Sequence[int] = (),
    brush: tuple[int, int] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Hidden-unit trajectories over tokens, LSTMVis style.

    Parameters
    ----------
    values : array-like
        ``[time, units]`` activations of one sequence (or a corpus window).
    tokens : sequence of str, optional
        ``[time]`` tokens for the x-axis (escaped; whitespace made visible).
    threshold : float or None
        Draws a horizontal threshold line when given.
    selected : sequence of int
        Units drawn in colour, one trace each; the others form one faded trace.
    brush : (int, int), optional
        The brushed range ``[start, end)``, shaded.
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        Trace 0 ``"other units"`` (all unselected units, NaN-separated), then one trace
        per selected unit named ``"unit N"``.
    """
    v = as_array(values, 2, "values")
    time, n_units = v.shape
    selected = [int(u) for u in selected]
    bad = [u for u in selected if not 0 <= u < n_units]
    if bad:
        raise ValueError(f"selected units {bad} out of range for {n_units} units")
    labels = token_labels(tokens, time)
    chosen = set(selected)
    rest = [u for u in range(n_units) if u not in chosen]
    x, y = _nan_joined(v, rest)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x, y=y, mode="lines", name="other units", hoverinfo="skip",
            line={"color": FADED, "width": 1},
        )
    )  # fmt: skip
    for i, u in enumerate(selected):
        fig.add_trace(
            go.Scatter(
                x=np.arange(time), y=v[:, u], mode="lines", name=f"unit {u}",
                line={"color": SELECTED_COLOURS[i % len(SELECTED_COLOURS)], "width": 2},
                customdata=labels,
                hovertemplate=f"unit {u}<br>%{{customdata}}: %{{y:.3f}}<extra></extra>",
            )
        )  # fmt: skip
    if threshold is not None:
        fig.add_hline(y=float(threshold), line={"dash": "dash", "color": "#444", "width": 1})
    if brush is not None:
        fig.add_vrect(x0=brush[0] - 0.5, x1=brush[1] - 0.5, fillcolor="#ffd54f", opacity=0.3,
                      line_width=0)  # fmt: skip
    fig.update_layout(**base_layout(title), showlegend=bool(selected))
    fig.update_xaxes(**token_axis(labels))
    fig.update_yaxes(title_text="activation")
    return fig


def gate_heatmap(
    values: Any,
    tokens: Sequence[Any] | None = None,
    *,
    gate: str = "gate",
    units: Sequence[int] | None = None,
    title: str | None = None,
) -> go.Figure:
    """One gate (or any recorded quantity) as a units x time heatmap.

    Parameters
    ----------
    values : array-like
        ``[time, units]`` values of one sequence.
    tokens : sequence of str, optional
        ``[time]`` tokens for the x-axis.
    gate : str
        Name shown in the hover and colour bar.
    units : sequence of int, optional
        Only these units (rows), in this order.
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace, ``z`` shaped ``[units, time]``.
    """
    v = as_array(values, 2, "values")
    time, n_units = v.shape
    rows = list(range(n_units)) if units is None else [int(u) for u in units]
    labels = token_labels(tokens, time)
    z = v[:, rows].T
    lo, hi = float(np.nanmin(z)) if z.size else 0.0, float(np.nanmax(z)) if z.size else 1.0
    bounded = lo >= 0.0 and hi <= 1.0
    name = display_token(gate)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=np.arange(time), y=[str(u) for u in rows],
            colorscale=SEQUENTIAL if bounded else "RdBu_r",
            zmin=0.0 if bounded else -max(abs(lo), abs(hi)),
            zmax=1.0 if bounded else max(abs(lo), abs(hi)),
            zmid=None if bounded else 0.0,
            customdata=np.broadcast_to(np.array(labels, dtype=object), z.shape),
            hovertemplate=f"{name}<br>unit %{{y}}<br>%{{customdata}} (step %{{x}}): "
            "%{z:.3f}<extra></extra>",
            colorbar={"title": {"text": name}},
        )
    )  # fmt: skip
    fig.update_layout(**base_layout(title, height=max(240, min(700, 14 * len(rows) + 100))))
    fig.update_xaxes(**token_axis(labels))
    fig.update_yaxes(title_text="unit", type="category", autorange="reversed")
    return fig


def saturation(values: Any, *, low: float = 0.1, high: float = 0.9) -> tuple[np.ndarray, ...]:
    """Fractions of steps each unit's gate is left / right saturated (Karpathy et al. 2015).

    Parameters
    ----------
    values : array-like
        ``[steps, units]`` gate activations in ``[0, 1]`` (real steps only).
    low, high : float
        Left saturation is ``< low``, right saturation ``> high``.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``[units]`` left and right fractions.
    """
    v = as_array(values, 2, "values")
    if v.shape[0] == 0:
        raise ValueError("no steps to measure saturation on")
    return (v < low).mean(0), (v > high).mean(0)


def saturation_scatter(
    gates: Mapping[str, Any],
    *,
    low: float = 0.1,
    high: float = 0.9,
    title: str | None = None,
) -> go.Figure:
    """Gate saturation scatter: fraction left-saturated vs right-saturated per unit.

    Parameters
    ----------
    gates : mapping of str to array-like
        Gate name -> ``[steps, units]`` activations (real steps only), one marker trace each.
    low, high : float
        Saturation bounds.
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Scatter`` trace per gate, a marker per unit, plus the diagonal ``x + y = 1``.
    """
    if not gates:
        raise ValueError("pass at least one gate, e.g. {'forget_gate': values}")
    points = []
    for name, values in gates.items():
        left, right = saturation(values, low=low, high=high)
        points.append((name, left, right, np.arange(len(left))))
    return saturation_figure(points, low=low, high=high, title=title)


def saturation_figure(points, *, low: float, high: float, title=None, gl: bool = False):
    """The saturation scatter both builders share (the app's table and raw activations).

    Parameters
    ----------
    points : iterable of (name, left, right, units)
        Per gate: fractions left/right saturated and the unit index of each marker.
    gl : bool
        WebGL markers (``Scattergl``), for the app's many units.
    """
    trace = go.Scattergl if gl else go.Scatter
    fig = go.Figure()
    for i, (name, left, right, units) in enumerate(points):
        label = display_token(name)
        fig.add_trace(
            trace(
                x=left, y=right, mode="markers", name=label,
                marker={"size": 6, "opacity": 0.7,
                        "color": SELECTED_COLOURS[i % len(SELECTED_COLOURS)]},
                customdata=units,
                hovertemplate=f"{label} unit %{{customdata}}<br>&lt;{low}: %{{x:.2f}}"
                f"<br>&gt;{high}: %{{y:.2f}}<extra></extra>",
            )
        )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[1, 0], mode="lines", name="x + y = 1", hoverinfo="skip",
                   line={"dash": "dot", "color": "#999", "width": 1})
    )  # fmt: skip
    fig.update_layout(**base_layout(title, height=380))
    fig.update_xaxes(title_text=f"fraction left saturated (< {low})", range=[-0.02, 1.02])
    fig.update_yaxes(title_text=f"fraction right saturated (> {high})", range=[-0.02, 1.02])
    return fig
