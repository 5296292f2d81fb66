"""Means with confidence bands over windows, and the rates and horizons read from them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Curve:
    """A measure per lag, averaged over windows, with a 95 % band.

    Attributes
    ----------
    name : str
        What was measured, e.g. ``"input gradient norm"`` or ``"rnn.1.fwd.cell"``.
    lags : np.ndarray
        ``[lag]`` 0, 1, ... (lag k: the input or state ``k`` steps before the scored output).
    mean, low, high : np.ndarray
        ``[lag]`` mean over windows and the band's edges.
    windows : int
        How many windows were averaged.
    band : str
        How the band was made (``"mean +- 1.96 se"`` or ``"bootstrap 95 %"``).
    meta : dict
        JSON-able facts (model, steps, score, ...).
    """

    name: str
    lags: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    windows: int
    band: str
    meta: dict = field(default_factory=dict)

    def horizon(self, share: float = 0.1) -> int | None:
        """The memory horizon; see :func:`horizon`."""
        return horizon(self.mean, share)

    def rate(self, skip: int = 1) -> float:
        """Growth (> 1) or decay (< 1) factor per step; see :func:`rate`."""
        return rate(self.mean, skip)

    def to_json(self) -> dict:
        """Plain lists, for the app's stores and the report."""
        return {
            "name": self.name,
            "lags": self.lags.tolist(),
            "mean": self.mean.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "windows": self.windows,
            "band": self.band,
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, d: dict) -> Curve:
        arr = {k: np.asarray(d[k], dtype=np.float64) for k in ("lags", "mean", "low", "high")}
        return cls(d["name"], **arr, windows=int(d["windows"]), band=d["band"], meta=d["meta"])


def summarize(
    name: str, values: np.ndarray, band: str = "se", boot: int = 200, seed: int = 0, **meta
) -> Curve:
    """Average ``values [batch, lag]`` over windows with a 95 % band.

    Parameters
    ----------
    band : {"se", "bootstrap"}
        ``se``: mean +- 1.96 standard errors; ``bootstrap``: 2.5 / 97.5 % quantiles of
        ``boot`` resampled means (windows drawn with replacement).
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    mean = values.mean(0)
    if band == "bootstrap":
        rng = np.random.default_rng(seed)
        means = np.stack([values[rng.integers(0, n, n)].mean(0) for _ in range(boot)])
        low, high = np.quantile(means, [0.025, 0.975], axis=0)
        how = "bootstrap 95 %"
    elif band == "se":
        se = values.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
        low, high, how = mean - 1.96 * se, mean + 1.96 * se, "mean +- 1.96 se"
    else:
        raise ValueError(f"band must be 'se' or 'bootstrap', got {band!r}")
    return Curve(name, np.arange(values.shape[1]), mean, low, high, n, how, dict(meta))


def horizon(mean: np.ndarray, share: float = 0.1) -> int | None:
    """The first lag after the peak at which ``mean`` falls below ``share`` of its peak.

    Parameters
    ----------
    mean : np.ndarray
        ``[lag]`` non-negative connectivity.
    share : float
        In (0, 1).

    Returns
    -------
    int or None
        None when it never falls that low inside the measured lags (the horizon is longer
        than the window).
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    mean = np.asarray(mean, dtype=np.float64)
    peak = int(np.argmax(mean))
    below = np.flatnonzero(mean[peak:] < share * mean[peak])
    return int(peak + below[0]) if below.size else None


def rate(mean: np.ndarray, skip: int = 1) -> float:
    """Factor by which ``mean`` grows (> 1) or decays (< 1) per step of lag.

    ``exp`` of the least-squares slope of ``log(mean)`` over lags ``skip ...`` (the first
    lags, closest to the output, are skipped: they mix the output head's own path in).
    """
    mean = np.asarray(mean, dtype=np.float64)[skip:]
    keep = mean > 0
    if keep.sum() < 2:
        return float("nan")
    lag = np.arange(mean.size)[keep]
    return float(np.exp(np.polyfit(lag, np.log(mean[keep]), 1)[0]))
