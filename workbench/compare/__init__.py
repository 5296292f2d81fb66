"""Compare two models or layers: linear CKA, SVCCA, unit matching, side-by-side statistics.

All similarities are computed from centred cross-products summed block by block in float64
(:func:`joint_moments`: float32 products of each float16/float32 block), so stores of
millions of steps are compared without loading them.
"""

from __future__ import annotations

from workbench import _lazy

_WHERE = {
    "Comparison": "workbench.compare._stores",
    "compare_stores": "workbench.compare._stores",
    "aligned_steps": "workbench.compare._stores",
    "state_names": "workbench.compare._stores",
    "Moments": "workbench.compare._moments",
    "joint_moments": "workbench.compare._moments",
    "linear_cka": "workbench.compare._cka",
    "SVCCAResult": "workbench.compare._svcca",
    "svcca": "workbench.compare._svcca",
    "match_units": "workbench.compare._units",
    "unit_correlations": "workbench.compare._units",
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = _lazy.exports(__name__, _WHERE, globals())
