"""Workbench: see inside LSTMs and GRUs.

The public surface is small and imported lazily so that ``import workbench`` stays fast
(torch and the other heavy dependencies load on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_LAZY: dict[str, str] = {
    "record": "workbench.recorder:record",
    "Recorder": "workbench.recorder:Recorder",
    "HookPoint": "workbench.recorder:HookPoint",
    "intervene": "workbench.recorder:intervene",
    "Trace": "workbench.trace:Trace",
    "load": "workbench.models.checkpoint:load",
    "explain": "workbench.explain:explain",
    "Explanation": "workbench.explain:Explanation",
    "Target": "workbench.explain:Target",
    "OutputStep": "workbench.explain:OutputStep",
    "StateStore": "workbench.store:StateStore",
    "report": "workbench.report:report",
    "serve": "workbench.app:serve",
    "show": "workbench.widgets:show",
}

__all__ = sorted([*_LAZY, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from workbench.recorder import HookPoint, Recorder, intervene, record  # noqa: F401
    from workbench.trace import Trace  # noqa: F401


def __getattr__(name: str) -> Any:
    try:
        target = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}") from None
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
