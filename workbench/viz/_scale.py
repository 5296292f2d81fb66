"""Value scales of a trajectory plot: linear, symmetric log, LSTMVis's tanh view, clipped.

Cell states of an LSTM are unbounded (the demo Python model's reach +-400): on a linear axis
the other units and the threshold line go flat. A scale maps the values (and the threshold
line) before they are drawn; selection and match always use the raw values.
"""

from __future__ import annotations

import numpy as np

#: Scales offered; ``auto`` is linear for values within [-AUTO_LIMIT, AUTO_LIMIT], else symlog.
SCALES = ("auto", "linear", "symlog", "tanh", "clip")
AUTO_LIMIT = 5.0
#: ``clip`` shows +-this quantile of the window's absolute values.
CLIP_QUANTILE = 0.99


def resolve(scale: str, values: np.ndarray) -> str:
    """The concrete scale for ``values`` (``auto`` decided on their largest magnitude).

    Raises
    ------
    ValueError
        For a name outside :data:`SCALES`.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    if scale != "auto":
        return scale
    v = np.asarray(values, dtype=np.float64)
    big = float(np.nanmax(np.abs(v))) if v.size and np.isfinite(v).any() else 0.0
    return "linear" if big <= AUTO_LIMIT else "symlog"


def transform(values, scale: str) -> np.ndarray:
    """``values`` (any shape) mapped by a concrete scale (``clip`` and ``linear`` keep them).

    ``symlog`` is ``sign(x) * log10(1 + |x|)``; ``tanh`` is ``tanh(x)``.
    """
    v = np.asarray(values, dtype=np.float64)
    if scale == "symlog":
        return np.sign(v) * np.log10(1.0 + np.abs(v))
    if scale == "tanh":
        return np.tanh(v)
    return v


def axis(scale: str, values: np.ndarray, threshold: float | None = None) -> dict:
    """Plotly y-axis settings showing raw values on a concrete scale.

    Parameters
    ----------
    scale : str
        ``linear symlog tanh clip``.
    values : numpy.ndarray
        ``[time, units]`` raw values of the window (for the clip range and the symlog ticks).
    threshold : float, optional
        Kept inside the clipped range.
    """
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    big = float(np.abs(finite).max()) if finite.size else 1.0
    if scale == "symlog":
        top = int(np.ceil(np.log10(1.0 + max(big, 1.0))))
        first = 1 if top >= 3 else 0  # +-1 crowds 0 once the axis reaches +-100
        raw = [0.0] + [s * 10.0**k for k in range(first, top) for s in (1, -1)]
        raw = sorted(raw)
        return {"title_text": "activation (symmetric log)", "tickmode": "array",
                "tickvals": transform(raw, "symlog").tolist(),
                "ticktext": [f"{r:g}" for r in raw], "autorange": True}  # fmt: skip
    if scale == "tanh":
        return {"title_text": "tanh(activation)", "range": [-1.05, 1.05], "tickmode": "auto"}
    if scale == "clip":
        q = float(np.quantile(np.abs(finite), CLIP_QUANTILE)) if finite.size else 1.0
        q = max(q, abs(float(threshold)) if threshold is not None else 0.0, 1e-6) * 1.1
        return {"title_text": f"activation (clipped at the {CLIP_QUANTILE:.0%} quantile)",
                "range": [-q, q], "tickmode": "auto"}  # fmt: skip
    return {"title_text": "activation", "autorange": True, "tickmode": "auto"}
