"""The LSTMVis cell-selection rule for figures and widgets (``workbench.store.search``'s)."""

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
    (steps outside the sequence count as off). This is :func:`workbench.store.search.
    select_cells`, the one Python implementation of the rule (the store, the app and the
    widgets call it too); the JavaScript of the report applies the same rule.

    Parameters
    ----------
    values : array-like
        ``[time, units]`` activations (numpy array, tensor or nested lists).
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
    from workbench.store.search import select_cells as rule

    v = values if isinstance(values, np.ndarray) else as_array(values, 2, "values")
    if v.ndim != 2:
        raise ValueError(f"values must have 2 dimensions, got shape {v.shape}")
    return rule(v, int(start), int(end), threshold, pad)
