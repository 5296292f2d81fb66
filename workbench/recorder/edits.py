"""Ready-made edits for :func:`workbench.intervene`.

An edit is ``fn(value[batch, units], step) -> value``; these build the common ones for a set
of units over a range of steps ``[start, stop)``, counted from 0 (the first step). Units
and steps must be integers (``3.7`` is refused, not truncated); ``start`` must be >= 0, and
:func:`workbench.intervene` refuses an edit that starts after the last step that ran.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch

from workbench.recorder._names import RecordingError


def _steps(step: int, start: int, stop: int | None) -> bool:
    return step >= start and (stop is None or step < stop)


def _integer(value, what: str) -> int:
    """``value`` as an int; refuses bools, fractions and non-numbers (no silent truncation)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RecordingError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if not float(value).is_integer():
        raise RecordingError(f"{what} must be an integer, got {value!r} (not truncated)")
    return int(value)


def _index(units: Sequence[int] | int) -> list[int]:
    if isinstance(units, torch.Tensor):
        units = units.tolist()
    if isinstance(units, numbers.Real):
        return [_integer(units, "a unit")]
    if isinstance(units, (str, bytes)) or not hasattr(units, "__iter__"):
        raise RecordingError(f"units must be an int or a list of ints, got {units!r}")
    idx = [_integer(u, "a unit") for u in units]
    if not idx:
        raise RecordingError("units is empty: name at least one unit to edit")
    return idx


def _range(start, stop) -> tuple[int, int | None]:
    """Validated ``[start, stop)``: steps count from 0, the first step."""
    start = _integer(start, "start")
    if start < 0:
        raise RecordingError(
            f"start must be >= 0 (steps count from 0, the first step), got {start}"
        )
    if stop is not None:
        stop = _integer(stop, "stop")
        if stop <= start:
            raise RecordingError(f"stop must be > start ({start}), got {stop}")
    return start, stop


def _edit(idx: list[int], start: int, stop: int | None, change: Callable) -> Callable:
    """The edit ``fn(value, step)``: ``change(v[:, idx]) -> new values`` within the steps.

    The returned function carries ``steps = (start, stop)``, which :func:`workbench.intervene`
    checks against the steps that ran (an edit starting past the end is an error).
    """

    def edit(v: torch.Tensor, step: int) -> torch.Tensor:
        if not _steps(step, start, stop):
            return v
        units = v.shape[1]
        bad = [u for u in idx if not -units <= u < units]
        if bad:
            raise RecordingError(
                f"unit {bad[0]} is out of range for a value of {units} units (0..{units - 1})"
            )
        v = v.clone()
        v[:, idx] = change(v[:, idx])
        return v

    edit.steps = (start, stop)
    return edit


def zero(units: Sequence[int] | int, start: int = 0, stop: int | None = None):
    """Set ``units`` to zero at steps ``[start, stop)`` (ablation)."""
    return set_to(units, 0.0, start, stop)


def set_to(
    units: Sequence[int] | int,
    value: float | Sequence[float] | torch.Tensor,
    start: int = 0,
    stop: int | None = None,
):
    """Set ``units`` to ``value`` (a scalar or one value per unit, e.g. their corpus mean)."""
    idx = _index(units)
    start, stop = _range(start, stop)
    return _edit(idx, start, stop, lambda v: torch.as_tensor(value, dtype=v.dtype, device=v.device))


def clamp(
    units: Sequence[int] | int,
    low: float | None = None,
    high: float | None = None,
    start: int = 0,
    stop: int | None = None,
):
    """Clamp ``units`` into ``[low, high]``."""
    idx = _index(units)
    start, stop = _range(start, stop)
    return _edit(idx, start, stop, lambda v: v.clamp(low, high))


def scale(units: Sequence[int] | int, factor: float, start: int = 0, stop: int | None = None):
    """Multiply ``units`` by ``factor``."""
    idx = _index(units)
    start, stop = _range(start, stop)
    return _edit(idx, start, stop, lambda v: v * factor)
