"""The LSTMVis cell-selection rule (Strobelt et al. 2018, ``LSTMController.cellSelection``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.viz._common import as_array


def select_cells(
    values: Any,
    start: int,
    end: int,
    *,
    threshold: float = 0.3,
    pad: tuple[int, int] = (1, 0),
) -> np.ndarray:
    """Units that are on over ``[start, end)`` and off just around it.

    A unit is selected iff its value is ``>= threshold`` at every step of the range and
    ``< threshold`` on the ``pad[0]`` steps before and the ``pad[1]`` steps after it
    (steps outside the sequence count as off). The JavaScript of the report applies the
    same rule.

    Parameters
    ----------
    values : array-like
        ``[time, units]`` activations.
    start, end : int
        The brushed range ``[start, end)``.
    threshold : float
        The on/off threshold.
    pad : (int, int)
        Steps that must be off on the left and on the right.

    Returns
    -------
    numpy.ndarray
        Sorted indices of the selected units (int64).
    """
    v = as_array(values, 2, "values")
    time = v.shape[0]
    if not 0 <= start < end <= time:
        raise ValueError(f"the brush [{start}, {end}) must lie inside [0, {time}) with start < end")
    left, right = (int(p) for p in pad)
    if left < 0 or right < 0:
        raise ValueError(f"pad must be two non-negative step counts, got {pad}")
    on = v >= threshold
    keep = on[start:end].all(0)
    keep &= ~on[max(0, start - left) : start].any(0)
    keep &= ~on[end : min(time, end + right)].any(0)
    return np.flatnonzero(keep).astype(np.int64)
