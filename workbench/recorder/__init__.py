"""Recording every gate, cell, hidden state and attention map of an unmodified model.

The names load on first use, so ``workbench --help`` and the CLI's other commands do not
import torch.
"""

from __future__ import annotations

from workbench import _lazy

_WHERE = {
    "HookPoint": "workbench.recorder._hookpoint",
    "GRU_QUANTITIES": "workbench.recorder._names",
    "LSTM_QUANTITIES": "workbench.recorder._names",
    "RecordingError": "workbench.recorder._names",
    "Recorder": "workbench.recorder._recorder",
    "intervene": "workbench.recorder._recorder",
    "record": "workbench.recorder._recorder",
    "release_gpu_caches": "workbench.recorder._recorder",
    "SiteKind": "workbench.recorder.sites",
    "register_site": "workbench.recorder.sites",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = _lazy.exports(__name__, _WHERE, globals())
