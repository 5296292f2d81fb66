"""LSTMVis trajectories as an anywidget: threshold + brush selection synced with Python."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anywidget
import numpy as np
import traitlets

from workbench.viz import select_cells
from workbench.widgets._assets import static

#: Largest ``time * units`` a widget sends (float32: 4 bytes each, so 64 MB).
MAX_VALUES = 16_000_000


class TrajectoryWidget(anywidget.AnyWidget):
    """Hidden-unit trajectories with the LSTMVis threshold and brush, readable from Python.

    Drag across the tokens to brush ``[start, end)``: a unit is selected iff it is
    ``>= threshold`` at every brushed step and ``< threshold`` on the ``pad[0]`` steps before
    and the ``pad[1]`` steps after (:func:`workbench.viz.select_cells`, the app's and the
    report's rule). The selection is the synced trait ``selected_cells``; setting
    ``threshold``, ``pad`` or ``brush`` from Python recomputes it and redraws.

    Parameters
    ----------
    values : array-like
        ``[time, units]`` states of one sequence (sent as float32; the selection is computed
        on those float32 values, in Python and in the browser alike).
    tokens : sequence of str, optional
        ``[time]`` tokens (default: the step numbers).
    name : str
        Quantity name shown above the plot.
    threshold : float
        Initial threshold (LSTMVis default 0.3).
    pad : (int, int)
        Off steps required before / after the brush.
    brush : (int, int), optional
        Initial brush ``[start, end)``.
    window : int
        Steps shown at once (scroll with the position slider).

    Attributes
    ----------
    selected_cells : list of int
        Synced: the selected units, sorted (empty without a brush).
    threshold : float
    pad : list of int
        ``[before, after]``.
    brush : list of int
        ``[start, end]`` or ``[]`` (no brush).
    """

    _esm = static("trajectory.js")
    _css = static("widgets.css")

    name = traitlets.Unicode("").tag(sync=True)
    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    values = traitlets.Bytes().tag(sync=True)
    time = traitlets.Int(0).tag(sync=True)
    units = traitlets.Int(0).tag(sync=True)
    threshold = traitlets.Float(0.3).tag(sync=True)
    pad = traitlets.List(traitlets.Int(), default_value=[1, 0], minlen=2, maxlen=2).tag(sync=True)
    brush = traitlets.List(traitlets.Int(), default_value=[], maxlen=2).tag(sync=True)
    selected_cells = traitlets.List(traitlets.Int()).tag(sync=True)
    window = traitlets.Int(120).tag(sync=True)

    def __init__(
        self,
        values: Any,
        tokens: Sequence[Any] | None = None,
        *,
        name: str = "states",
        threshold: float = 0.3,
        pad: tuple[int, int] = (1, 0),
        brush: tuple[int, int] | None = None,
        window: int = 120,
    ) -> None:
        arr = _as_states(values)
        time, units = arr.shape
        toks = [str(i) for i in range(time)] if tokens is None else [str(t) for t in tokens]
        if len(toks) < time:
            raise ValueError(f"{len(toks)} tokens for {time} steps: pass one token per step")
        self._states = arr
        super().__init__(
            name=str(name), tokens=toks[:time], values=arr.tobytes(), time=time, units=units,
            threshold=float(threshold), pad=[int(p) for p in pad],
            brush=list(brush) if brush is not None else [], window=max(1, min(int(window), time)),
        )  # fmt: skip
        self._update_selection()

    @property
    def states(self) -> np.ndarray:
        """``[time, units]`` float32 states the widget shows (read-only copy)."""
        return self._states.copy()

    @traitlets.validate("pad")
    def _check_pad(self, proposal: dict) -> list[int]:
        pad = [int(p) for p in proposal["value"]]
        if min(pad) < 0:
            raise traitlets.TraitError(f"pad must be two step counts >= 0, got {pad}")
        return pad

    @traitlets.validate("brush")
    def _check_brush(self, proposal: dict) -> list[int]:
        brush = [int(b) for b in proposal["value"]]
        if not brush:
            return brush
        if len(brush) != 2 or not 0 <= brush[0] < brush[1] <= self.time:
            raise traitlets.TraitError(
                f"brush must be [start, end] with 0 <= start < end <= {self.time}, or [] for "
                f"none; got {brush}"
            )
        return brush

    @traitlets.validate("threshold")
    def _check_threshold(self, proposal: dict) -> float:
        t = float(proposal["value"])
        if not np.isfinite(t):
            raise traitlets.TraitError(f"threshold must be a finite number, got {t}")
        return t

    @traitlets.observe("threshold", "pad", "brush")
    def _on_selection_input(self, _change: dict) -> None:
        self._update_selection()

    def _update_selection(self) -> None:
        if not hasattr(self, "_states"):
            return
        cells = self.compute_selection()
        if cells != list(self.selected_cells):
            self.selected_cells = cells

    def compute_selection(self, brush: Sequence[int] | None = None) -> list[int]:
        """The selection rule applied in Python (``brush`` defaults to the current one)."""
        brush = list(self.brush if brush is None else brush)
        if not brush:
            return []
        cells = select_cells(self._states, brush[0], brush[1], threshold=self.threshold,
                             pad=(self.pad[0], self.pad[1]))  # fmt: skip
        return [int(c) for c in cells]

    def select(self, start: int, end: int, threshold: float | None = None) -> list[int]:
        """Brush ``[start, end)`` (and optionally set the threshold); returns the selection."""
        with self.hold_sync():
            if threshold is not None:
                self.threshold = float(threshold)
            self.brush = [int(start), int(end)]
        return list(self.selected_cells)


def _as_states(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().float().numpy()
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise ValueError(
            f"states must be [time, units], got shape {arr.shape}; pick one sequence, e.g. "
            "trace[name][0]"
        )
    if arr.size > MAX_VALUES:
        raise ValueError(
            f"{arr.shape[0]} steps x {arr.shape[1]} units is too much for one widget (at most "
            f"{MAX_VALUES:,} values); show a slice, e.g. store.slice(start, start + 2000)"
        )
    if arr.shape[0] == 0:
        raise ValueError("no steps to show")
    return np.ascontiguousarray(arr, dtype="<f4")
