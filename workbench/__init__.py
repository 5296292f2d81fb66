"""Workbench: see inside LSTMs and GRUs.

The public surface is small and imported lazily so that ``import workbench`` stays fast
(torch and the other heavy dependencies load on first use).

``workbench.explain`` and ``workbench.report`` are plain functions; the packages behind them are
``workbench.explainers`` (methods, metrics, checks) and ``workbench.reports`` (sections).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from workbench import _lazy, _moved

__version__ = "0.1.0"

# before torch loads its OpenMP runtime: short barrier spins (see workbench._native.load)
importlib.import_module("workbench._native.spin").bound_spinning()

# public name -> "module:attribute"
_LAZY: dict[str, str] = {
    "record": "workbench.recorder:record",
    "Recorder": "workbench.recorder:Recorder",
    "HookPoint": "workbench.recorder:HookPoint",
    "intervene": "workbench.recorder:intervene",
    "Trace": "workbench.trace:Trace",
    "load": "workbench.models.checkpoint:load",
    "explain": "workbench.explainers:explain",
    "Explanation": "workbench.explainers:Explanation",
    "Target": "workbench.explainers:Target",
    "OutputStep": "workbench.explainers:OutputStep",
    "StateStore": "workbench.store:StateStore",
    "report": "workbench.reports:report",
    "serve": "workbench.app:serve",
    "show": "workbench.widgets:show",
}

__all__ = sorted([*_LAZY, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from workbench.app import serve  # noqa: F401
    from workbench.explainers import Explanation, OutputStep, Target, explain  # noqa: F401
    from workbench.models.checkpoint import load  # noqa: F401
    from workbench.recorder import HookPoint, Recorder, intervene, record  # noqa: F401
    from workbench.reports import report  # noqa: F401
    from workbench.store import StateStore  # noqa: F401
    from workbench.trace import Trace  # noqa: F401
    from workbench.widgets import show  # noqa: F401

_moved.install()


__getattr__, __dir__ = _lazy.exports(__name__, _LAZY, globals(), __all__)
