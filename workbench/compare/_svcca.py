"""SVCCA (Raghu, Gilmer, Yosinski and Sohl-Dickstein 2017).

Each centred representation is first reduced to its top singular directions, enough of them
to keep ``keep`` (99 %) of its variance; canonical correlation analysis between the two
reduced representations then gives canonical correlations ``rho_1 >= rho_2 >= ...``, and the
SVCCA similarity is their mean. Everything follows from the centred cross-products: the
singular directions of ``Xc`` are the eigenvectors of ``Xc^T Xc``, in which the reduced
representation is already uncorrelated, so CCA is one SVD of the whitened cross-product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.compare._moments import BLOCK, Moments, joint_moments


@dataclass
class SVCCAResult:
    """SVCCA between two representations.

    Attributes
    ----------
    similarity : float
        Mean canonical correlation.
    correlations : np.ndarray
        ``[min(dims_x, dims_y)]`` canonical correlations, largest first.
    dims_x, dims_y : int
        Singular directions kept of each side.
    """

    similarity: float
    correlations: np.ndarray
    dims_x: int
    dims_y: int


def _top_directions(cxx: np.ndarray, keep: float) -> tuple[np.ndarray, np.ndarray]:
    vals, vecs = np.linalg.eigh(cxx)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    vals = np.clip(vals, 0.0, None)
    total = vals.sum()
    if total <= 0:
        raise ValueError("a constant representation has no directions to compare")
    k = int(np.searchsorted(np.cumsum(vals) / total, keep - 1e-12) + 1)
    k = min(k, int((vals > vals[0] * 1e-12).sum()))
    return vals[:k], vecs[:, :k]


def svcca_from_moments(m: Moments, a: str, b: str, keep: float = 0.99) -> SVCCAResult:
    """SVCCA between the matrices ``a`` and ``b`` of a :class:`Moments`."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep is a share of variance in (0, 1], got {keep}")
    va, ua = _top_directions(m.block(a, a), keep)
    vb, ub = _top_directions(m.block(b, b), keep)
    # reduced X' = Xc ua has cross-product diag(va); whitened: Xc ua / sqrt(va)
    whitened = (ua / np.sqrt(va)).T @ m.block(a, b) @ (ub / np.sqrt(vb))
    rho = np.clip(np.linalg.svd(whitened, compute_uv=False), 0.0, 1.0)
    return SVCCAResult(float(rho.mean()), rho, len(va), len(vb))


def svcca(x, y, keep: float = 0.99, steps: int | None = None, block: int = BLOCK) -> SVCCAResult:
    """SVCCA between two state matrices over the same steps.

    Parameters
    ----------
    x, y : array-like
        ``[time, units_x]`` and ``[time, units_y]``, aligned step by step.
    keep : float
        Share of each side's variance its kept singular directions explain.
    steps : int, optional
        Leading steps used (default: all common ones).
    block : int
        Steps read at a time.

    Returns
    -------
    SVCCAResult
    """
    m = joint_moments({"x": x, "y": y}, steps, block)
    return svcca_from_moments(m, "x", "y", keep)
