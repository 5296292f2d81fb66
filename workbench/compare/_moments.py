"""Joint first and second moments of several state matrices, summed block by block.

Every similarity of :mod:`workbench.compare` (linear CKA, SVCCA, unit correlations) is a
function of the centred cross-products ``Xc^T Yc`` of the matrices compared. They are summed
here over blocks of steps in float64, so a store of millions of steps is never loaded whole.
Each block is shifted by the first block's mean before its products are summed (the shifted-
data algorithm): the centred sums then lose no digits to large means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 1 << 15  # steps per block: 32k x 1,024 features of float64 is 256 MB


@dataclass
class Moments:
    """Centred cross-products of named matrices over the same steps.

    Attributes
    ----------
    n : int
        Steps summed.
    mean : np.ndarray
        ``[feature]`` means of the concatenated features.
    cross : np.ndarray
        ``[feature, feature]`` centred cross-products ``sum_t (x_t - mean)(x_t - mean)^T``
        (float64), features of all matrices concatenated in ``names`` order.
    slices : dict of str to slice
        Where each named matrix's units lie in ``feature``.
    """

    n: int
    mean: np.ndarray
    cross: np.ndarray
    slices: dict[str, slice]

    def block(self, a: str, b: str) -> np.ndarray:
        """``[units_a, units_b]`` centred cross-products ``Xc_a^T Xc_b``."""
        return self.cross[self.slices[a], self.slices[b]]

    def variance(self, a: str) -> np.ndarray:
        """``[units_a]`` centred sums of squares (the diagonal of ``Xc_a^T Xc_a``)."""
        return np.diag(self.block(a, a)).copy()


def joint_moments(arrays: dict, steps: int | None = None, block: int = BLOCK) -> Moments:
    """Sum the centred cross-products of ``arrays`` over their first ``steps`` steps.

    Parameters
    ----------
    arrays : dict of str to array-like
        Name -> ``[time, units]`` (numpy, memmap, store views); all with at least ``steps``
        steps, aligned step by step.
    steps : int, optional
        Steps used (default: the shortest array's length).
    block : int
        Steps read at a time.

    Returns
    -------
    Moments
    """
    if not arrays:
        raise ValueError("nothing to compare: give at least one state matrix")
    lengths = {k: int(v.shape[0]) for k, v in arrays.items()}
    n = min(lengths.values()) if steps is None else int(steps)
    if n < 2 or n > min(lengths.values()):
        raise ValueError(
            f"need 2 to {min(lengths.values())} common steps to compare, asked for {n}"
        )
    slices, at = {}, 0
    for k, v in arrays.items():
        width = int(v.shape[1])
        slices[k] = slice(at, at + width)
        at += width
    shift = None
    total = np.zeros(at)
    cross = np.zeros((at, at))
    block = max(1, int(block))
    for a in range(0, n, block):
        b = min(a + block, n)
        x = np.empty((b - a, at))
        for k, v in arrays.items():
            x[:, slices[k]] = np.asarray(v[a:b], dtype=np.float64)
        if shift is None:
            shift = x.mean(axis=0)
        x -= shift
        total += x.sum(axis=0)
        cross += x.T @ x
    mean_shifted = total / n
    cross -= n * np.outer(mean_shifted, mean_shifted)
    return Moments(n=n, mean=mean_shifted + shift, cross=cross, slices=slices)
