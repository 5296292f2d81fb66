"""Figures of a model comparison (:mod:`workbench.compare`).

Bits per character, the CKA matrix, unit matching, interpretable-cell counterparts, gate
saturation side by side.

Each takes plain data (the arrays and tables of a :class:`~workbench.compare.Comparison`) and
is shared by the app's Compare page, the notebook widget and the report section.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz._common import SELECTED_COLOURS, base_layout, display_token, plotly_text

MAX_ROWS = 50  # table rows drawn at most


def bpc_bars(rows, title=None) -> go.Figure:
    """Held-out bits per character of several models.

    Parameters
    ----------
    rows : sequence of (label, bits_per_char)
        One bar per model (a NaN or None value is left out).
    """
    rows = [(str(k), float(v)) for k, v in rows if v is not None and np.isfinite(v)]
    fig = go.Figure(
        go.Bar(
            x=[plotly_text(k) for k, _ in rows],
            y=[v for _, v in rows],
            text=[f"{v:.3f}" for _, v in rows],
            textposition="outside",
            marker={
                "color": [SELECTED_COLOURS[i % len(SELECTED_COLOURS)] for i in range(len(rows))]
            },
            hovertemplate="%{x}: %{y:.4f} bits per character<extra></extra>",
        )
    )
    fig.update_layout(**base_layout(title, height=300))
    top = max([v for _, v in rows], default=1.0)
    fig.update_yaxes(title_text="test bits per character", range=[0, top * 1.2])
    return fig


def cka_heatmap(cka, names_a, names_b, label_a="A", label_b="B", title=None) -> go.Figure:
    """Layer x layer linear CKA matrix.

    Parameters
    ----------
    cka : array-like
        ``[len(names_a), len(names_b)]`` values in [0, 1].
    names_a, names_b : sequence of str
        State names of each model (rows, columns).
    label_a, label_b : str
        The models' names (axis titles).
    """
    z = np.asarray(cka, dtype=float)
    if z.shape != (len(names_a), len(names_b)):
        raise ValueError(f"CKA matrix {z.shape} for {len(names_a)} x {len(names_b)} names")
    rows = [plotly_text(n) for n in names_a]
    cols = [plotly_text(n) for n in names_b]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=cols,
            y=rows,
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            colorbar={"title": {"text": "CKA"}},
            text=[[f"{v:.2f}" for v in row] for row in z],
            texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}: CKA %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(**base_layout(title, height=max(260, 70 * len(rows) + 120)))
    fig.update_xaxes(title_text=plotly_text(label_b), side="bottom")
    fig.update_yaxes(title_text=plotly_text(label_a), autorange="reversed")
    return fig


def _table(header, columns, title, height=None) -> go.Figure:
    fig = go.Figure(
        go.Table(
            header={"values": [f"<b>{plotly_text(h)}</b>" for h in header], "align": "left"},
            cells={"values": columns, "align": "left"},
        )
    )
    n = len(columns[0]) if columns else 0
    fig.update_layout(**base_layout(title, height=height or min(700, 110 + 30 * (n + 1))))
    return fig


def unit_match_table(matches, label_a="A", label_b="B", top: int = 20, title=None) -> go.Figure:
    """The best-matched units of A and their counterparts in B.

    Parameters
    ----------
    matches : pandas.DataFrame
        ``unit, match, r`` sorted by ``|r|`` (:func:`~workbench.compare.match_units`).
    top : int
        Rows shown (at most :data:`MAX_ROWS`).
    """
    part = matches.head(max(1, min(int(top), MAX_ROWS)))
    return _table(
        [f"{label_a} unit", f"best {label_b} unit", "r"],
        [part["unit"].tolist(), part["match"].tolist(), [f"{v:.3f}" for v in part["r"]]],
        title,
    )


def cell_counterparts_table(cells, label_a="A", label_b="B", title=None) -> go.Figure:
    """Per meta track: A's best cell, B's best cell, and the B unit matched to A's cell.

    Parameters
    ----------
    cells : pandas.DataFrame
        :func:`workbench.compare._units.counterparts`'s table.
    """
    part = cells.head(MAX_ROWS)
    return _table(
        [
            "track",
            f"{label_a} best cell (r)",
            f"{label_b} best cell (r)",
            f"{label_a} cell's match in {label_b} (r)",
            "same",
        ],
        [
            [plotly_text(t) for t in part["track"]],
            [f"{u} ({s:+.2f})" for u, s in zip(part["unit_a"], part["score_a"], strict=True)],
            [f"{u} ({s:+.2f})" for u, s in zip(part["unit_b"], part["score_b"], strict=True)],
            [f"{u} ({s:+.2f})" for u, s in zip(part["match_of_a"], part["r_match"], strict=True)],
            ["yes" if s else "no" for s in part["same"]],
        ],
        title,
    )


def saturation_side_by_side(
    frames, labels, low: float = 0.1, high: float = 0.9, title=None
) -> go.Figure:
    """Gate saturation of several models, one panel each (Karpathy et al. 2015, fig. 4).

    Parameters
    ----------
    frames : sequence of pandas.DataFrame
        ``name, unit, left, right`` per model (``StateStore.saturation``'s table); an empty
        one (a tanh RNN has no gates) gets a note in its panel.
    labels : sequence of str
        The models' names.
    """
    frames, labels = list(frames), [str(x) for x in labels]
    fig = make_subplots(
        rows=1,
        cols=len(frames),
        subplot_titles=[plotly_text(x) for x in labels],
        shared_yaxes=True,
        horizontal_spacing=0.06,
    )
    colour = 0
    for k, frame in enumerate(frames, start=1):
        if frame is None or len(frame) == 0:
            fig.add_annotation(
                text="no gates", showarrow=False, row=1, col=k, x=0.5, y=0.5, font={"size": 14}
            )
        else:
            for name, part in frame.groupby("name", sort=False):
                label = display_token(name)
                fig.add_trace(
                    go.Scattergl(
                        x=part["left"],
                        y=part["right"],
                        mode="markers",
                        name=f"{plotly_text(labels[k - 1])} {label}",
                        marker={
                            "size": 5,
                            "opacity": 0.7,
                            "color": SELECTED_COLOURS[colour % len(SELECTED_COLOURS)],
                        },
                        customdata=part["unit"],
                        hovertemplate=f"{label} unit %{{customdata}}<br>&lt;{low}: %{{x:.2f}}"
                        f"<br>&gt;{high}: %{{y:.2f}}<extra></extra>",
                    ),
                    row=1,
                    col=k,
                )
                colour += 1
        fig.update_xaxes(range=[-0.02, 1.02], title_text=f"< {low}", row=1, col=k)
    fig.update_yaxes(range=[-0.02, 1.02], title_text=f"> {high}", row=1, col=1)
    fig.update_layout(**base_layout(title, height=380))
    return fig
