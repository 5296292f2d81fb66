"""Figures the app's States, Projection and Gates pages add to the shared viz layer.

Pure functions of numpy arrays and token lists returning plotly figures (or, for
:func:`trajectory_selection`, the plain-data update of a figure made by
:func:`trajectory_slots`), so the notebook widgets and reports can use them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from workbench.viz._common import (
    SELECTED_COLOURS,
    SEQUENTIAL,
    as_array,
    base_layout,
    display_token,
    plotly_text,
    token_axis,
    token_labels,
)
from workbench.viz._scale import axis as scale_axis
from workbench.viz._scale import resolve as resolve_scale
from workbench.viz._scale import transform as scale_values
from workbench.viz._states import saturation_figure, trajectories

#: Coloured traces of a :func:`trajectory_slots` figure; the last one holds any overflow.
SLOTS = 10


def trajectory_slots(
    values: Any,
    tokens: Sequence[Any] | None = None,
    *,
    threshold: float = 0.3,
    slots: int = SLOTS,
    scale: str = "auto",
    title: str | None = None,
) -> go.Figure:
    """Trajectories of every unit with a fixed number of empty "selected" traces.

    The selection is drawn later by updating traces ``1 .. slots`` and the brush shape in
    place (:func:`trajectory_selection`), so a brush never re-sends the whole figure.

    Parameters
    ----------
    values : array-like
        ``[time, units]`` activations of a corpus window.
    tokens : sequence of str, optional
        ``[time]`` tokens along the x-axis.
    threshold : float
        Initial position of the dashed threshold line (``layout.shapes[0]``).
    slots : int
        Number of selected-unit traces (the last one joins every unit beyond ``slots - 1``).
    scale : str
        ``auto linear symlog tanh clip`` (:mod:`workbench.viz._scale`): how values and the
        threshold line are drawn; ``layout.meta.scale`` holds the concrete one.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        Trace 0 all units faded, traces ``1 .. slots`` empty; shapes: 0 the threshold line,
        1 the brush rectangle (hidden).
    """
    v = as_array(values, 2, "values")
    concrete = resolve_scale(scale, v)
    shown = scale_values(v, concrete)
    line = float(scale_values(threshold, concrete))
    fig = trajectories(shown, tokens, threshold=line, selected=(), title=title)
    faded = fig.data[0]  # all units: sent as float32 (half the bytes of a 400 x 650 window)
    faded.update(x=np.asarray(faded.x, np.float32), y=np.asarray(faded.y, np.float32))
    labels = token_labels(tokens, v.shape[0])
    for i in range(slots):
        fig.add_trace(
            go.Scatter(
                x=[], y=[], mode="lines", name="", visible=False, customdata=[],
                line={"color": SELECTED_COLOURS[i % len(SELECTED_COLOURS)], "width": 2},
                hovertemplate="%{fullData.name}<br>%{customdata[0]}: %{customdata[1]:.4g}"
                "<extra></extra>",
            )
        )  # fmt: skip
    fig.add_vrect(x0=0, x1=0, fillcolor="#ffd54f", opacity=0.3, line_width=0, visible=False)
    fig.update_layout(
        dragmode="select", selectdirection="h", showlegend=True, uirevision="states",
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        margin={"l": 60, "r": 20, "t": 56, "b": 60},
        meta={"tokens": labels, "scale": concrete},
    )  # fmt: skip
    fig.update_yaxes(**scale_axis(concrete, v, threshold))
    return fig


def trajectory_selection(
    values: Any,
    tokens: Sequence[Any] | None,
    selected: Sequence[int],
    *,
    brush: tuple[int, int] | None,
    threshold: float,
    slots: int = SLOTS,
    scale: str = "auto",
) -> dict:
    """Plain-data update of a :func:`trajectory_slots` figure for a new selection.

    Parameters
    ----------
    values : array-like
        ``[time, units]`` the same window the figure shows.
    tokens : sequence of str or None
    selected : sequence of int
        Selected units (window columns).
    brush : (int, int) or None
        Brushed steps ``[start, end)`` relative to the window.
    threshold : float
    scale : str
        The figure's scale (``layout.meta.scale``; ``auto`` resolves on ``values`` alike).

    Returns
    -------
    dict
        ``traces``: ``slots`` dicts (``x y name visible customdata``) for traces
        ``1 .. slots``, ``y`` on the scale and ``customdata`` ``[token, raw value]`` pairs;
        ``threshold``: the line's y on the scale; ``brush``: ``(x0, x1)`` or None.
    """
    v = as_array(values, 2, "values")
    concrete = resolve_scale(scale, v)
    shown = scale_values(v, concrete)
    time = v.shape[0]
    labels = token_labels(tokens, time)
    units = [int(u) for u in selected]
    traces = []
    steps = np.arange(time, dtype=np.float64)
    for i in range(slots):
        if i < slots - 1 or len(units) <= slots:
            group = units[i : i + 1]
        else:
            group = units[i:]
        if not group:
            traces.append({"x": [], "y": [], "name": "", "visible": False, "customdata": []})
            continue
        xs = np.concatenate([np.append(steps, np.nan) for _ in group])[:-1]
        ys = np.concatenate([np.append(shown[:, u], np.nan) for u in group])[:-1]
        name = f"unit {group[0]}" if len(group) == 1 else f"{len(group)} more units"
        custom = []
        for u in group:
            raw = np.round(v[:, u], 4).tolist()
            custom += [[t, r] for t, r in zip(labels, raw, strict=True)] + [["", None]]
        traces.append(
            {"x": xs.tolist(), "y": np.round(ys, 4).tolist(), "name": name, "visible": True,
             "customdata": custom[:-1]}
        )  # fmt: skip
    span = None if brush is None else (float(brush[0]) - 0.5, float(brush[1]) - 0.5)
    line = float(scale_values(threshold, concrete))
    return {"traces": traces, "threshold": line, "brush": span}


def apply_selection(fig: go.Figure, update: dict) -> go.Figure:
    """Apply a :func:`trajectory_selection` update to a figure (what the app's patch does)."""
    for i, t in enumerate(update["traces"]):
        fig.data[1 + i].update(**t)
    fig.layout.shapes[0].update(y0=update["threshold"], y1=update["threshold"])
    if update["brush"] is None:
        fig.layout.shapes[1].update(visible=False)
    else:
        x0, x1 = update["brush"]
        fig.layout.shapes[1].update(x0=x0, x1=x1, visible=True)
    return fig


def selection_counts(
    counts: Any, rows: Sequence[str], tokens: Sequence[Any] | None = None, *, title=None
) -> go.Figure:
    """Number of selected cells on under each token, one row per layer.

    Parameters
    ----------
    counts : array-like
        ``[layer, time]`` counts.
    rows : sequence of str
        ``[layer]`` row names.
    tokens : sequence of str, optional
        ``[time]`` tokens.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap``, the counts written in the cells.
    """
    z = as_array(counts, 2, "counts")
    labels = token_labels(tokens, z.shape[1])
    fig = go.Figure(
        go.Heatmap(
            z=z, x=np.arange(z.shape[1]), y=[display_token(r) for r in rows],
            colorscale="Blues", zmin=0, zmax=max(1.0, float(z.max()) if z.size else 1.0),
            text=z.astype(int).astype(str), texttemplate="%{text}" if z.shape[1] <= 120 else None,
            customdata=np.broadcast_to(np.array(labels, dtype=object), z.shape),
            hovertemplate="%{y}<br>%{customdata}: %{z} cells on<extra></extra>",
            showscale=False,
        )
    )  # fmt: skip
    axis = token_axis(labels)
    # vertical word labels need room below the cells (about 7 px a character)
    longest = max((len(t) for t in axis["ticktext"]), default=1)
    bottom = 40 if axis["tickangle"] == 0 else min(40 + 7 * longest, 140)
    fig.update_layout(**base_layout(title, height=30 + bottom + 28 * len(rows)))
    fig.update_layout(margin={"l": 120, "r": 20, "t": 10, "b": bottom})
    fig.update_xaxes(**axis)
    return fig


def aligned_heatmap(
    z: Any,
    tokens: Sequence[Sequence[str]],
    rows: Sequence[str],
    *,
    name: str,
    zmin: float | None = None,
    zmax: float | None = None,
    colorscale: Any = "Blues",
    offsets: Sequence[int] | None = None,
    title: str | None = None,
    cell_text: bool = True,
) -> go.Figure:
    """Matched spans aligned at their start: one row per match, tokens written in the cells.

    Parameters
    ----------
    z : array-like
        ``[match, offset]`` values (match strength, a meta track); NaN outside a document.
    tokens : sequence of sequence of str
        ``[match][offset]`` tokens ("" where there is none).
    rows : sequence of str
        ``[match]`` row labels (e.g. ``"#1 doc 3 @ 1200"``).
    name : str
        What ``z`` is (hover and colour bar).
    offsets : sequence of int, optional
        ``[offset]`` step relative to the match start (default ``0 .. offset - 1``).
    cell_text : bool
        Write the tokens in the cells (False: on hover only; plotly draws each written
        cell as its own SVG text, about 1-3 s for 20 x 60 cells in a loaded browser, so a
        second heatmap aligned under a first one need not write them again).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap``; ``y`` holds the row index so a click names the match.
    """
    values = as_array(z, 2, "z")
    n, width = values.shape
    offsets = list(range(width)) if offsets is None else [int(o) for o in offsets]
    text = np.array([[display_token(t) for t in row] for row in tokens], dtype=object)
    if text.shape != values.shape:
        raise ValueError(f"tokens shaped {text.shape}, values {values.shape}: pass one per cell")
    label = display_token(name)
    fig = go.Figure(
        go.Heatmap(
            z=values, x=offsets, y=list(range(n)), text=text,
            texttemplate="%{text}" if cell_text else None,
            colorscale=colorscale, zmin=zmin, zmax=zmax, textfont={"size": 11},
            hovertemplate=f"%{{text}} (offset %{{x}})<br>{label}: %{{z}}<extra></extra>",
            colorbar={"title": {"text": label}, "thickness": 10}, xgap=1, ygap=1,
        )
    )  # fmt: skip
    fig.update_layout(**base_layout(title, height=max(160, 60 + 22 * n)))
    if offsets and offsets[0] < 0 <= offsets[-1]:  # where the matches start
        fig.add_vline(x=-0.5, line={"color": "#d62728", "width": 2})
    fig.update_xaxes(title_text="steps from the match start", dtick=1 if width <= 40 else None)
    fig.update_yaxes(
        tickmode="array", tickvals=list(range(n)), ticktext=[display_token(r) for r in rows],
        autorange="reversed",
    )  # fmt: skip
    return fig


def length_histogram(fuzzy: Any, strict: Any, *, title: str | None = None) -> go.Figure:
    """Histogram of candidate match lengths: all candidates and the strict ones.

    Parameters
    ----------
    fuzzy, strict : array-like
        ``[length]`` counts indexed by span length (:class:`~workbench.store.search.Matches`).

    Returns
    -------
    plotly.graph_objects.Figure
        Two ``Bar`` traces (``all candidates``, ``all cells on``).
    """
    fig = go.Figure()
    for counts, label, colour in ((fuzzy, "all candidates", "#9ecae1"),
                                  (strict, "all cells on", "#08519c")):  # fmt: skip
        c = np.asarray(counts, dtype=np.int64).ravel()
        keep = np.flatnonzero(c)
        fig.add_trace(go.Bar(x=keep, y=c[keep], name=label, marker={"color": colour}))
    fig.update_layout(**base_layout(title, height=220), barmode="overlay")
    fig.update_xaxes(title_text="span length (steps)")
    fig.update_yaxes(title_text="spans", type="log")
    return fig


def projection_scatter(
    xy: Any,
    colour: Any,
    hover: Sequence[str],
    steps: Sequence[int],
    *,
    colour_name: str,
    categorical: bool = False,
    documents: Sequence[str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """2-D map of states (UMAP / PCA) as a WebGL scatter, coloured by a track or unit.

    Parameters
    ----------
    xy : array-like
        ``[point, 2]`` map positions.
    colour : array-like
        ``[point]`` values (numbers, or categories when ``categorical``).
    hover : sequence of str or of (str, str, str)
        ``[point]`` raw context text shown on hover (escaped here, once), or
        ``(before, token, after)`` with the point's own token in bold.
    steps : sequence of int
        ``[point]`` global steps.
    colour_name : str
    categorical : bool
        One trace per category (at most 20, the rest as "other") instead of a colour scale.
    documents : sequence of str, optional
        ``[point]`` document of each point, shown on hover.

    Returns
    -------
    plotly.graph_objects.Figure
        ``Scattergl`` traces, ``dragmode="lasso"``. ``customdata`` holds one
        ``[step, document, value]`` row per point as plain JSON lists: a lasso or box
        selection returns it, which Dash reads from the figure as given (a numpy array
        would travel binary-encoded and reach the callback as nothing).
    """
    p = as_array(xy, 2, "xy")
    n = p.shape[0]
    hover_text = np.array([_hover_context(h) for h in hover], dtype=object)
    steps = np.asarray(steps, dtype=np.int64)
    docs = [""] * n if documents is None else [plotly_text(d) for d in documents]
    shown = [plotly_text(c) if categorical else f"{float(c):.4g}" for c in colour]
    custom = np.empty((n, 3), dtype=object)
    custom[:, 0], custom[:, 1], custom[:, 2] = steps.tolist(), docs, shown
    label = plotly_text(colour_name)
    fig = go.Figure()
    common = {
        "mode": "markers",
        "selected": {"marker": {"opacity": 1.0}},
        "unselected": {"marker": {"opacity": 0.12}},
        "hovertemplate": "%{text}<br>document %{customdata[1]}, step %{customdata[0]}<br>"
        f"{label}: %{{customdata[2]}}<extra></extra>",
    }
    if categorical:
        cats = np.asarray([str(c) for c in colour], dtype=object)
        names, counts = np.unique(cats, return_counts=True)
        top = list(names[np.argsort(-counts, kind="stable")][:20])
        cats = np.where(np.isin(cats, top), cats, "other")
        for i, c in enumerate([*top, "other"] if (cats == "other").any() else top):
            m = cats == c
            fig.add_trace(
                go.Scattergl(
                    x=p[m, 0], y=p[m, 1], text=hover_text[m].tolist(),
                    customdata=custom[m].tolist(), name=display_token(c),
                    marker={"size": 4, "opacity": 0.7,
                            "color": SELECTED_COLOURS[i % len(SELECTED_COLOURS)]}, **common,
                )
            )  # fmt: skip
    else:
        c = as_array(colour, 1, "colour")
        fig.add_trace(
            go.Scattergl(
                x=p[:, 0], y=p[:, 1], text=hover_text.tolist(), customdata=custom.tolist(),
                name=label, marker={"size": 4, "opacity": 0.7, "color": c,
                "colorscale": SEQUENTIAL, "colorbar": {"title": {"text": label}}}, **common,
            )
        )  # fmt: skip
    fig.update_layout(**base_layout(title, height=560), dragmode="lasso", uirevision="map")
    fig.update_layout(margin={"l": 20, "r": 20, "t": 40, "b": 20})
    fig.update_xaxes(showticklabels=False, title_text="")
    fig.update_yaxes(showticklabels=False, title_text="")
    return fig


def _hover_context(h) -> str:
    if isinstance(h, tuple | list) and len(h) == 3:
        before, tok, after = h
        return f"{plotly_text(before)}<b>{display_token(tok)}</b>{plotly_text(after)}"
    return plotly_text(h)


def saturation_points(frame, *, low: float = 0.1, high: float = 0.9, title=None) -> go.Figure:
    """Saturation scatter from precomputed fractions (``StateStore.saturation``'s table).

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``name, unit, left, right`` (one row per gate unit).

    Returns
    -------
    plotly.graph_objects.Figure
        One marker trace per gate name plus the diagonal ``x + y = 1``.
    """
    points = [(name, part["left"], part["right"], part["unit"])
              for name, part in frame.groupby("name", sort=False)]  # fmt: skip
    return saturation_figure(points, low=low, high=high, title=title, gl=True)


def unit_track(
    values: Any,
    track: Any,
    tokens: Sequence[Any] | None = None,
    *,
    unit_name: str,
    track_name: str,
    title: str | None = None,
) -> go.Figure:
    """One unit's trajectory over a window with a meta track shaded behind it.

    Parameters
    ----------
    values : array-like
        ``[time]`` the unit's values.
    track : array-like
        ``[time]`` the meta track (bool or numbers), drawn on a second axis.

    Returns
    -------
    plotly.graph_objects.Figure
        Trace 0 the track (filled, right axis), trace 1 the unit.
    """
    v = as_array(values, 1, "values")
    t = as_array(track, 1, "track")
    labels = token_labels(tokens, v.shape[0])
    steps = np.arange(v.shape[0])
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=steps, y=t, name=display_token(track_name), yaxis="y2", mode="lines",
                   line={"shape": "hvh", "width": 0, "color": "#fdae6b"}, fill="tozeroy",
                   fillcolor="rgba(253,174,107,0.35)", customdata=labels,
                   hovertemplate="%{customdata}: %{y}<extra>%{fullData.name}</extra>")
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=steps, y=v, name=display_token(unit_name), mode="lines",
                   line={"color": SELECTED_COLOURS[0], "width": 2}, customdata=labels,
                   hovertemplate="%{customdata}: %{y:.3f}<extra>%{fullData.name}</extra>")
    )  # fmt: skip
    fig.update_layout(**base_layout(title, height=300))
    fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "showgrid": False,
                              "title": {"text": display_token(track_name)}})  # fmt: skip
    fig.update_xaxes(**token_axis(labels))
    fig.update_yaxes(title_text="activation")
    return fig


def track_strip(
    values: Any, tokens: Sequence[Any] | None = None, *, name: str, title: str | None = None
) -> go.Figure:
    """A meta track over a window as one row of cells, to sit under the trajectories.

    Margins and x-axis are those of :func:`trajectory_slots`, so the cells line up with the
    tokens of the plot above (LSTMVis shows its meta tracks this way).

    Parameters
    ----------
    values : array-like
        ``[time]`` the track (bool or numbers).
    tokens : sequence of str, optional
        ``[time]`` tokens (hover and the axis).
    name : str
        The track's name (y label and hover).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` with one row.
    """
    v = as_array(values, 1, "values").astype(np.float64)
    labels = token_labels(tokens, v.shape[0])
    label = display_token(name)
    high = max(1.0, float(np.nanmax(v))) if v.size else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=v[None, :], x=np.arange(v.shape[0]), y=[label], colorscale="Oranges", zmin=0,
            zmax=high, customdata=np.array([labels], dtype=object), showscale=False, xgap=1,
            hovertemplate=f"%{{customdata}}<br>{label}: %{{z}}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(**base_layout(title, height=(40 if title else 10) + 36 + 30))
    fig.update_layout(margin={"l": 60, "r": 20, "t": 40 if title else 10, "b": 30})
    axis = token_axis(labels)
    fig.update_xaxes(**{**axis, "ticktext": [""] * len(axis["tickvals"])})
    fig.update_yaxes(tickfont={"size": 9})
    return fig
