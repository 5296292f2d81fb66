"""The one timing rule of the benchmarks: the median of ``repeats`` wall-clock runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 0) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones.

    Parameters
    ----------
    fn : callable
        Called with no arguments; its result is dropped.
    repeats : int
        Timed calls (at least 1).
    warmup : int
        Untimed calls first (kernel compilation, caches).

    Returns
    -------
    float
        The median, in seconds.
    """
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)
