"""Time series shipped with statsmodels: yearly sunspots and weekly Mauna Loa CO2."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.data._document import DataError

SEASON = {"sunspots": 11, "co2": 52}


@dataclass
class Series:
    """A univariate series split in time, scaled with statistics of the training part only.

    Attributes
    ----------
    name : str
        Corpus name.
    values : np.ndarray
        ``[time]`` raw values.
    mean, std : float
        Training-part statistics used for scaling.
    cuts : tuple of int
        End of train and of valid (indices into ``values``).
    """

    name: str
    values: np.ndarray
    mean: float
    std: float
    cuts: tuple[int, int]

    def scaled(self) -> np.ndarray:
        return (self.values - self.mean) / self.std

    def windows(self, split: str, window: int, horizon: int = 1, relative: bool = False):
        """Sliding windows whose targets fall inside ``split``.

        With ``relative`` each window and its targets are shifted by the window's last value
        (the model forecasts the change), which lets trending series such as CO2 leave the
        training range.

        Returns
        -------
        x : np.ndarray
            ``[batch, time, feature]`` scaled inputs (feature = 1).
        y : np.ndarray
            ``[batch, horizon]`` scaled targets.
        """
        z = self.scaled().astype(np.float32)
        lo, hi = {"train": (0, self.cuts[0]), "valid": self.cuts, "test": (self.cuts[1], len(z))}[
            split
        ]
        xs, ys = [], []
        for end in range(max(window, lo), hi - horizon + 1):
            xs.append(z[end - window : end])
            ys.append(z[end : end + horizon])
        if not xs:
            raise DataError(f"{self.name}: no {split} window of {window}+{horizon} steps")
        x, y = np.stack(xs), np.stack(ys)
        if relative:
            x, y = x - x[:, -1:], y - x[:, -1:]
        return x[:, :, None], y


def _finish(name: str, values: np.ndarray, train: float = 0.7, valid: float = 0.15) -> Series:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 30:
        raise DataError(f"{name}: need a 1-d series of at least 30 values, got {values.shape}")
    if not np.all(np.isfinite(values)):
        bad = int((~np.isfinite(values)).sum())
        raise DataError(f"{name}: {bad} NaN/inf values; fill or drop them first (e.g. interpolate)")
    a, b = int(len(values) * train), int(len(values) * (train + valid))
    return Series(name, values, float(values[:a].mean()), float(values[:a].std() + 1e-8), (a, b))


def sunspots() -> Series:
    """Yearly mean sunspot numbers 1700-2008 (statsmodels.datasets.sunspots)."""
    from statsmodels.datasets import sunspots as ds

    return _finish("sunspots", ds.load_pandas().data["SUNACTIVITY"].to_numpy())


def co2() -> Series:
    """Weekly Mauna Loa CO2 1958-2001 (statsmodels.datasets.co2); gaps linearly interpolated."""
    from statsmodels.datasets import co2 as ds

    data = ds.load_pandas().data["co2"].interpolate(limit_direction="both")
    return _finish("co2", data.to_numpy())


def from_file(path: str | Path, column: str | None = None) -> Series:
    """A user's series from a CSV (one numeric column, or ``column``) or a ``.npy`` file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no series file at {path}")
    if path.suffix == ".npy":
        values = np.load(path, allow_pickle=False)
    else:
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except Exception as exc:
            raise DataError(f"{path} is not a readable CSV ({exc})") from None
        numeric = frame.select_dtypes("number")
        if column is not None:
            if column not in frame:
                raise DataError(f"{path} has no column {column!r}; columns: {list(frame)}")
            values = frame[column].to_numpy(dtype=float)
        elif numeric.shape[1] == 1:
            values = numeric.iloc[:, 0].to_numpy()
        else:
            raise DataError(f"{path}: name the value column with column=..., got {list(frame)}")
    return _finish(path.stem, np.asarray(values, dtype=float).ravel())
