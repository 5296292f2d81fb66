"""Recording every gate, cell, hidden state and attention map of an unmodified model.

The names load on first use, so ``workbench --help`` and the CLI's other commands do not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "HookPoint": "_hookpoint",
    "GRU_QUANTITIES": "_names",
    "LSTM_QUANTITIES": "_names",
    "RecordingError": "_names",
    "Recorder": "_recorder",
    "intervene": "_recorder",
    "record": "_recorder",
    "release_gpu_caches": "_recorder",
    "SiteKind": "sites",
    "register_site": "sites",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'workbench.recorder' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"workbench.recorder.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
