"""Nested recorders: every recorder active on a thread records the module's real call.

Each active :class:`~workbench.recorder.Recorder` installs a ``TorchFunctionMode``; the one
entered last sees a fused kernel call first. It answers the call and then lets every other
recorder of the same thread that waits on the same module record that same call, with the
same arguments. While a recorder computes its answer (its unroll, the sample check on one
row, the fused layers above the kept ones) the other recorders let its kernel calls pass:
they are the recorder's own work, not the model's.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from workbench.recorder._names import RecordingError

_INTERNAL: contextvars.ContextVar = contextvars.ContextVar("workbench_internal", default=False)
_LOCAL = threading.local()


def internal() -> bool:
    """Whether a recorder is computing right now (its own kernel calls pass through)."""
    return _INTERNAL.get()


def _active() -> list:
    if not hasattr(_LOCAL, "recorders"):
        _LOCAL.recorders = []
    return _LOCAL.recorders


def activate(recorder) -> None:
    """Register ``recorder`` as active on this thread (from its ``__enter__``)."""
    _active().append(recorder)


def deactivate(recorder) -> None:
    """Forget ``recorder`` (from its ``__exit__``)."""
    active = _active()
    if recorder in active:
        active.remove(recorder)


def _waiting(recorder, module) -> list:
    """``(recorder, frame)`` of the other active recorders waiting on ``module``'s kernel."""
    out = []
    for other in _active():
        if other is recorder or not other._stack:
            continue
        frame = other._stack[-1]
        if frame.site.module is module and not frame.handled:
            out.append((other, frame))
    return out


def run_shared(recorder, frame, func, args: tuple, kwargs: dict) -> Any:
    """Answer one fused kernel call for ``recorder`` and every other one waiting on it.

    Returns ``recorder``'s answer (what the model receives).

    Raises
    ------
    RecordingError
        If several recorders share the call and one of them edits the module: an edited
        run cannot also be recorded unedited.
    """
    others = _waiting(recorder, frame.site.module)
    if others and any(r._wanted(f.site)[1] for r, f in [(recorder, frame), *others]):
        raise RecordingError(
            f"nested Recorders on {frame.site.name} with edits: an edited run cannot also be "
            "recorded unedited; record what you need in the edited run itself "
            "(intervene(..., names=...)) instead of nesting"
        )
    token = _INTERNAL.set(True)
    try:
        frame.handled = True
        result = recorder._run_kernel(frame, func, args, kwargs)
        for other, other_frame in others:
            other_frame.handled = True
            other._run_kernel(other_frame, func, args, kwargs)
    finally:
        _INTERNAL.reset(token)
    return result
