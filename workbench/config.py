"""Every ``WORKBENCH_*`` switch in one place, and a context manager to change them.

Backends (compiled kernels, oneDNN products, cuDNN paths, direct I/O ...) are on by default
where they apply; each can be turned off with its environment variable or, within a block,
with :func:`configure`::

    from workbench.config import configure, settings

    with configure(ckernel=False, onednn=False):    # PyTorch ops only
        trace = workbench.record(model, ids)
    settings().ckernel                              # True again

The environment is read on every :func:`settings` call (a handful of dictionary lookups), so
a variable set at run time is seen; :func:`configure` wins over it. Changes are process-wide
(every thread sees them), as the variables are.

=================  ==========================  =============================================
switch             variable                    what it turns on
=================  ==========================  =============================================
``ckernel``        ``WORKBENCH_CKERNEL``       compiled C kernels (CPU unroll, store copies)
``onednn``         ``WORKBENCH_ONEDNN``        oneDNN products in the CPU unroll and recover
``hugepages``      ``WORKBENCH_HUGEPAGES``     transparent huge pages for large buffers
``cudnn_reserve``  ``WORKBENCH_CUDNN_RESERVE`` LSTM gates read from cuDNN's reserve space
``cuda_graphs``    ``WORKBENCH_CUDA_GRAPHS``   CUDA graphs of repeated GPU recordings
``cudnn_weights``  (none)                      per-layer cuDNN weight copies kept (GPU)
``wavefront``      (none)                      multi-layer wavefront schedule (GPU)
``wavefront_cpu``  (none, off)                 the wavefront schedule on the CPU (tests)
``half_states``    (none)                      float16 states straight from the kernel
``direct_io``      ``WORKBENCH_DIRECT_IO``     O_DIRECT writes of store chunks
=================  ==========================  =============================================

Paths and the CLI's debug switch: ``cache`` (``WORKBENCH_CACHE``, default
``~/.cache/workbench``), ``models`` (``WORKBENCH_MODELS``: shipped checkpoints) and
``debug`` (``WORKBENCH_DEBUG``: tracebacks instead of one-line errors).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path

#: switch -> (environment variable or None, default)
SWITCHES: dict[str, tuple[str | None, bool]] = {
    "ckernel": ("WORKBENCH_CKERNEL", True),
    "onednn": ("WORKBENCH_ONEDNN", True),
    "hugepages": ("WORKBENCH_HUGEPAGES", True),
    "cudnn_reserve": ("WORKBENCH_CUDNN_RESERVE", True),
    "cuda_graphs": ("WORKBENCH_CUDA_GRAPHS", True),
    "cudnn_weights": (None, True),
    "wavefront": (None, True),
    "wavefront_cpu": (None, False),
    "half_states": (None, True),
    "direct_io": ("WORKBENCH_DIRECT_IO", True),
}
_PATHS = {"cache": "WORKBENCH_CACHE", "models": "WORKBENCH_MODELS"}
_VARIABLES = tuple(v for v, _ in SWITCHES.values() if v) + (*_PATHS.values(), "WORKBENCH_DEBUG")


@dataclass(frozen=True)
class Settings:
    """A snapshot of every switch (booleans) and path setting.

    Attributes
    ----------
    cache : Path
        Where compiled kernels and demo stores are kept.
    models : Path or None
        A folder of shipped checkpoints (``WORKBENCH_MODELS``), if set.
    debug : bool
        The CLI shows tracebacks.
    """

    ckernel: bool = True
    onednn: bool = True
    hugepages: bool = True
    cudnn_reserve: bool = True
    cuda_graphs: bool = True
    cudnn_weights: bool = True
    wavefront: bool = True
    wavefront_cpu: bool = False
    half_states: bool = True
    direct_io: bool = True
    cache: Path = Path.home() / ".cache" / "workbench"
    models: Path | None = None
    debug: bool = False


_LOCK = threading.Lock()
_OVERRIDES: list[dict] = []
_MEMO: dict = {}


def _from_env(env: tuple) -> Settings:
    values = dict(zip(_VARIABLES, env, strict=True))
    kw: dict = {}
    for name, (var, default) in SWITCHES.items():
        raw = values.get(var) if var else None
        kw[name] = default if raw is None else raw != "0"
    kw["cache"] = Path(values["WORKBENCH_CACHE"] or Path.home() / ".cache" / "workbench")
    kw["models"] = Path(values["WORKBENCH_MODELS"]) if values["WORKBENCH_MODELS"] else None
    kw["debug"] = bool(values["WORKBENCH_DEBUG"])
    return Settings(**kw)


def settings() -> Settings:
    """The switches in force now: the environment, then any :func:`configure` blocks."""
    env = tuple(os.environ.get(v) for v in _VARIABLES)
    overrides = _OVERRIDES[-1] if _OVERRIDES else None
    key = (env, id(overrides))
    hit = _MEMO.get(key)
    if hit is None:
        hit = _from_env(env)
        if overrides:
            hit = replace(hit, **overrides)
        if len(_MEMO) > 64:
            _MEMO.clear()
        _MEMO[key] = hit
    return hit


@contextlib.contextmanager
def configure(**changes):
    """Within the block, the given switches take these values (process-wide).

    Parameters
    ----------
    **changes
        Switch or path names of :class:`Settings` (``ckernel=False``, ``cache=tmp``).

    Raises
    ------
    TypeError
        For a name that is no setting (the message lists them).
    """
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    if "cache" in changes:
        changes["cache"] = Path(changes["cache"])
    with _LOCK:
        merged = {**(_OVERRIDES[-1] if _OVERRIDES else {}), **changes}
        _OVERRIDES.append(merged)
        _MEMO.clear()
    try:
        yield settings()
    finally:
        with _LOCK:
            index = next(i for i, o in enumerate(_OVERRIDES) if o is merged)
            del _OVERRIDES[index]
            _MEMO.clear()


def backends_off() -> list[dict]:
    """One ``configure(**changes)`` per switchable backend, each turning that one off.

    The recorder's and store's tests run once under each (the exactness they check must not
    depend on which backend computed it).
    """
    return [{name: False} for name, (_, default) in SWITCHES.items() if default]
