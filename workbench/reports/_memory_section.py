"""Report section for memory over time: connectivity curves, horizons, unit time scales."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workbench import viz
from workbench.reports._sections import Section, _fmt


def memory_section(
    curves: Mapping[str, Any],
    scales: Sequence[Any] = (),
    *,
    share: float = 0.1,
    top: int = 10,
    title: str = "Memory over time",
) -> Section:
    """A report section of :mod:`workbench.memory` results.

    Parameters
    ----------
    curves : mapping of str to Curve
        Label -> connectivity (or state-gradient) curve, e.g. one per model or layer.
    scales : sequence of TimeScales, optional
        Per-layer unit time constants (:func:`workbench.memory.time_scales`).
    share : float
        Share of the peak that defines the memory horizon.
    top : int
        Units listed per layer, longest memory first.

    Returns
    -------
    Section
        Text, a horizon / longest-unit table and the figures of :mod:`workbench.viz`
        (:func:`~workbench.viz.memory_curves`, :func:`~workbench.viz.time_scale_histogram`,
        :func:`~workbench.viz.time_scale_ranking`).

    Examples
    --------
    >>> workbench.report([memory_section({"python": c}, scales)], "memory.html")  # doctest: +SKIP
    """
    rows = []
    for label, c in curves.items():
        h = c.horizon(share)
        rows.append([
            str(label), c.name, str(c.windows), f"{len(c.lags) - 1}",
            "> window" if h is None else str(h), _fmt(c.rate()),
        ])  # fmt: skip
    figures = [viz.memory_curves(curves, share=share, title="Connectivity over lag")]
    text = [
        f"Mean over windows with its band ({next(iter(curves.values())).band}); the horizon "
        f"is the first lag after the peak below {share:.0%} of it; the rate is the factor "
        "per step of a log-linear fit (below 1: the dependence decays)."
    ] if curves else []  # fmt: skip
    if scales:
        figures.append(viz.time_scale_histogram(scales, title="Unit time scales"))
        for s in scales:
            figures.append(viz.time_scale_ranking(s, top=top))
        longest = ", ".join(
            f"{s.name}: units {', '.join(str(u) for u in s.ranked(3))} "
            f"(tau {', '.join(_fmt(float(np.minimum(s.tau[u], 1e6))) for u in s.ranked(3))})"
            for s in scales
        )
        text.append("tau = -1 / log(mean forget / update gate) per unit. Longest: " + longest)
    return Section(
        title,
        text=text,
        table={
            "columns": ["curve", "measure", "windows", "lags", "horizon", "rate per step"],
            "rows": rows,
        },
        figures=figures,
    )
