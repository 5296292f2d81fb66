"""Linear CKA (Kornblith, Norouzi, Lee and Hinton 2019).

"Similarity of Neural Network Representations Revisited".
For centred ``X [time, units_x]`` and ``Y [time, units_y]``, linear CKA is

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),

the HSIC of the linear kernels ``XX^T`` and ``YY^T`` normalised by their own HSICs. It is 1 for
an orthogonal transform or an isotropic scaling of the same representation and lies in
[0, 1]. Computed here from the feature-space cross-products, summed block by block.
"""

from __future__ import annotations

import numpy as np

from workbench.compare._moments import BLOCK, Moments, joint_moments


def cka_from_moments(m: Moments, a: str, b: str) -> float:
    """Linear CKA between the matrices ``a`` and ``b`` of a :class:`Moments`."""
    xy = np.sum(m.block(a, b) ** 2)
    xx = np.sqrt(np.sum(m.block(a, a) ** 2))
    yy = np.sqrt(np.sum(m.block(b, b) ** 2))
    if xx == 0 or yy == 0:
        return float("nan")  # a constant representation has no similarity to speak of
    return float(np.clip(xy / (xx * yy), 0.0, 1.0))


def linear_cka(x, y, steps: int | None = None, block: int = BLOCK) -> float:
    """Linear CKA between two state matrices over the same steps.

    Parameters
    ----------
    x, y : array-like
        ``[time, units_x]`` and ``[time, units_y]``, aligned step by step.
    steps : int, optional
        Leading steps used (default: all common ones).
    block : int
        Steps read at a time (the result does not depend on it).

    Returns
    -------
    float
        In [0, 1]; NaN when either matrix is constant.
    """
    m = joint_moments({"x": x, "y": y}, steps, block)
    return cka_from_moments(m, "x", "y")


def cka_matrix_from_moments(m: Moments, names_a, names_b) -> np.ndarray:
    """``[len(names_a), len(names_b)]`` linear CKA of every pair."""
    return np.array([[cka_from_moments(m, a, b) for b in names_b] for a in names_a])
