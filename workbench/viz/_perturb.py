"""Figures of perturbations and interventions: state differences and output changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from workbench.viz._common import (
    DIVERGING,
    as_array,
    base_layout,
    display_token,
    token_axis,
    token_labels,
)


def difference_heatmap(
    diff: Any,
    tokens: Sequence[Any] | None = None,
    *,
    units: Sequence[int] | None = None,
    name: str = "change",
    title: str | None = None,
) -> go.Figure:
    """Per-unit change of a state trajectory (perturbed minus original) over time.

    Parameters
    ----------
    diff : array-like
        ``[time, units]`` change; NaN marks steps without a counterpart (shown blank).
    tokens : sequence of str, optional
        ``[time]`` tokens of the x-axis (the original input's).
    units : sequence of int, optional
        Only these units (rows), in this order (e.g. the units that moved most).
    name : str
        Quantity name for the hover and colour bar.
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace, ``z`` shaped ``[units, time]``, diverging colours centred at
        zero and symmetric about it.
    """
    d = as_array(diff, 2, "diff")
    time, n_units = d.shape
    rows = list(range(n_units)) if units is None else [int(u) for u in units]
    bad = [u for u in rows if not 0 <= u < n_units]
    if bad:
        raise ValueError(f"units {bad} out of range for {n_units} units")
    labels = token_labels(tokens, time)
    z = d[:, rows].T
    finite = z[np.isfinite(z)]
    bound = float(np.abs(finite).max()) if finite.size else 0.0
    bound = bound or 1.0
    label = display_token(name)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=np.arange(time), y=[str(u) for u in rows], colorscale=DIVERGING,
            zmin=-bound, zmid=0.0, zmax=bound, hoverongaps=False,
            customdata=np.broadcast_to(np.array(labels, dtype=object), z.shape),
            hovertemplate=f"{label}<br>unit %{{y}}<br>%{{customdata}} (step %{{x}}): "
            "change %{z:.4f}<extra></extra>",
            colorbar={"title": {"text": f"\u0394 {label}"}},
        )
    )  # fmt: skip
    fig.update_layout(**base_layout(title, height=max(240, min(700, 14 * len(rows) + 110))))
    fig.update_xaxes(**token_axis(labels))
    fig.update_yaxes(title_text="unit", type="category", autorange="reversed")
    return fig


def output_change(
    labels: Sequence[Any],
    before: Any,
    after: Any,
    *,
    names: tuple[str, str] = ("original", "perturbed"),
    value: str = "probability",
    title: str | None = None,
) -> go.Figure:
    """Model outputs before and after a perturbation, as grouped bars.

    Parameters
    ----------
    labels : sequence of str
        ``[outputs]`` names (classes, next tokens, or the forecast).
    before, after : array-like
        ``[outputs]`` values of the original and the perturbed run.
    names : (str, str)
        Legend names of the two runs.
    value : str
        What the values are (y-axis title).
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        Two ``Bar`` traces (original first), x = the escaped labels.
    """
    b = np.atleast_1d(as_array(before, np.ndim(before), "before"))
    a = np.atleast_1d(as_array(after, np.ndim(after), "after"))
    if b.ndim != 1 or b.shape != a.shape or len(b) != len(labels):
        raise ValueError(f"before {b.shape}, after {a.shape} and {len(labels)} labels differ")
    x = [display_token(t) for t in labels]
    fig = go.Figure()
    for run, vals, colour in ((names[0], b, "#7f7f7f"), (names[1], a, "#d62728")):
        fig.add_trace(
            go.Bar(
                x=x, y=vals, name=display_token(run), marker_color=colour,
                hovertemplate=f"{display_token(run)}<br>%{{x}}: %{{y:.4g}}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(**base_layout(title, height=300), barmode="group")
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text=display_token(value))
    return fig
