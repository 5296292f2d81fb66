"""Shared helpers of the figure builders: array coercion, token display, colour scales."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Diverging scale for signed relevance (blue negative, white zero, red positive).
DIVERGING = [[0.0, "#2166ac"], [0.5, "#f7f7f7"], [1.0, "#b2182b"]]
#: Sequential scale for gates and attention in [0, 1].
SEQUENTIAL = "Viridis"
#: Colour of the selected units (cycled) and of the faded rest.
SELECTED_COLOURS = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
    "#17becf", "#e377c2", "#8c564b", "#bcbd22", "#7f7f7f",
]  # fmt: skip
FADED = "rgba(150,150,150,0.25)"

_VISIBLE = {" ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d", "": "\u2205"}


def as_array(x: Any, ndim: int, what: str) -> np.ndarray:
    """``x`` (tensor, array or nested lists) as a float64 numpy array with ``ndim`` dims."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


def display_token(tok: Any) -> str:
    """A token as plotly text: whitespace made visible, ``& < >`` escaped once.

    Plotly draws its labels (ticks, hover, heatmap cells, legend) from a small HTML subset:
    ``<b>`` or ``<br>`` in a token would become markup, so ``& < >`` are written as the
    entities plotly decodes back to the literal characters. Quotes are left as they are:
    plotly opens no attribute from label text, and it does not decode ``&quot;`` (a token
    ``"`` escaped with ``quote=True`` showed as the literal text ``&quot;``). For text that
    goes into HTML made here, escape the raw token with :func:`html.escape` instead; Dash
    components escape their children themselves and get the raw token.
    """
    return plotly_text(visible_token(tok))


def visible_token(tok: Any) -> str:
    """A token with whitespace made visible (``␣ ⏎ ⇥``), not escaped (for Dash children)."""
    s = str(tok)
    return _VISIBLE.get(s, s)


def plotly_text(text: Any) -> str:
    """Any text (a title, a legend name, a hover line) escaped once for plotly's labels."""
    return html.escape(str(text), quote=False)


def token_labels(tokens: Sequence[Any] | None, n: int) -> list[str]:
    """``n`` escaped display labels, the tokens when given, else the positions."""
    if tokens is None:
        return [str(i) for i in range(n)]
    if len(tokens) < n:
        raise ValueError(f"{len(tokens)} tokens for {n} steps: pass one token per step")
    return [display_token(t) for t in list(tokens)[:n]]


def token_axis(labels: Sequence[str], max_ticks: int = 100) -> dict:
    """A numeric x-axis labelled with tokens (repeated tokens stay separate columns).

    Every token is labelled up to ``max_ticks`` steps (the States view's default window of
    100 shows each character of source code); longer axes label every k-th step. Labels of
    one character (a character LM's tokens, whitespace glyphs) stay upright in a monospace
    font; longer ones (words) are turned vertical past 30 steps so that they never overlap.
    """
    n = len(labels)
    stride = max(1, int(np.ceil(n / max_ticks)))
    ticks = list(range(0, n, stride))
    chars = all(len(html.unescape(labels[i])) <= 1 for i in ticks)
    axis = {
        "tickmode": "array",
        "tickvals": ticks,
        "ticktext": [labels[i] for i in ticks],
        "tickangle": 0 if chars or n <= 30 else -90,
    }
    if chars:
        axis["tickfont"] = {"family": "DejaVu Sans Mono, Menlo, Consolas, monospace", "size": 12}
    return axis


def base_layout(title: str | None, height: int = 320) -> dict:
    """The common layout: white template, small margins, deterministic (no uirevision)."""
    return {
        "title": {"text": plotly_text(title) if title else None},
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 40 if title else 10, "b": 60},
    }
