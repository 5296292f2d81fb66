"""Ready-made edits for :func:`workbench.intervene`.

An edit is ``fn(value[batch, units], step) -> value``; these build the common ones for a set
of units over a range of steps ``[start, stop)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _steps(step: int, start: int, stop: int | None) -> bool:
    return step >= start and (stop is None or step < stop)


def _index(units: Sequence[int] | int) -> list[int]:
    return [int(units)] if isinstance(units, int) else [int(u) for u in units]


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

    def edit(v: torch.Tensor, step: int) -> torch.Tensor:
        if not _steps(step, start, stop):
            return v
        v = v.clone()
        v[:, idx] = torch.as_tensor(value, dtype=v.dtype, device=v.device)
        return v

    return edit


def clamp(
    units: Sequence[int] | int,
    low: float | None = None,
    high: float | None = None,
    start: int = 0,
    stop: int | None = None,
):
    """Clamp ``units`` into ``[low, high]``."""
    idx = _index(units)

    def edit(v: torch.Tensor, step: int) -> torch.Tensor:
        if not _steps(step, start, stop):
            return v
        v = v.clone()
        v[:, idx] = v[:, idx].clamp(low, high)
        return v

    return edit


def scale(units: Sequence[int] | int, factor: float, start: int = 0, stop: int | None = None):
    """Multiply ``units`` by ``factor``."""
    idx = _index(units)

    def edit(v: torch.Tensor, step: int) -> torch.Tensor:
        if not _steps(step, start, stop):
            return v
        v = v.clone()
        v[:, idx] = v[:, idx] * factor
        return v

    return edit
