"""Compare two models or layers: linear CKA, SVCCA, unit matching, side-by-side statistics.

All similarities are computed from centred cross-products summed block by block in float64
(:func:`joint_moments`: float32 products of each float16/float32 block), so stores of
millions of steps are compared without loading them.
"""

from __future__ import annotations

import importlib

__all__ = [
    "Comparison",
    "Moments",
    "SVCCAResult",
    "aligned_steps",
    "compare_stores",
    "joint_moments",
    "linear_cka",
    "match_units",
    "state_names",
    "svcca",
    "unit_correlations",
]

_WHERE = {
    "Comparison": "_stores",
    "compare_stores": "_stores",
    "aligned_steps": "_stores",
    "state_names": "_stores",
    "Moments": "_moments",
    "joint_moments": "_moments",
    "linear_cka": "_cka",
    "SVCCAResult": "_svcca",
    "svcca": "_svcca",
    "match_units": "_units",
    "unit_correlations": "_units",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"workbench.compare.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'workbench.compare' has no attribute {name!r}")
