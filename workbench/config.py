"""Every ``WORKBENCH_*`` switch in one place, and a context manager to change them.

Backends (compiled kernels, oneDNN products, cuDNN paths, direct I/O ...) are on by default
where they apply; each can be turned off with its environment variable or, within a block,
with :func:`configure`::

    from workbench.config import configure, settings

    with configure(ckernel=False, onednn=False):    # PyTorch ops only
        trace = workbench.record(model, ids)
    settings().ckernel                              # True again

The switches' environment variables are read once, at first use (:func:`reload` reads them
again); :func:`configure` wins over them. Changes are process-wide (every thread sees them),
as the variables are.

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

The product paths (oneDNN or MKL, the compiled step, huge pages, the thread count) are chosen
by measuring them once per machine (:mod:`workbench._native.calibrate`); a switch set to ``0``
turns its path off, set to ``1`` (or ``configure(onednn=True)``) forces it on whatever the
measurement chose. ``threads`` (``WORKBENCH_THREADS``) forces the OpenMP team of a recorded
call (default 0: the measured best, lowered at each call to the cores other processes leave
free) and ``calibrate`` (``WORKBENCH_CALIBRATE=0``) skips the measurement: every path on, every
core. ``WORKBENCH_SPIN=0`` keeps libgomp's long barrier spins (:mod:`workbench._native.spin`).

Read when asked: ``cache`` (``WORKBENCH_CACHE``, default ``~/.cache/workbench``), ``models``
(``WORKBENCH_MODELS``: shipped checkpoints), ``ckernel_march`` (``WORKBENCH_CKERNEL_MARCH``:
the ``-march`` the C kernels are built for, ``native`` by default; ``x86-64`` runs on any
x86-64 CPU) and ``debug`` (``WORKBENCH_DEBUG``: tracebacks instead of one-line errors).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field, fields, replace
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


@dataclass(frozen=True)
class Settings:
    """A snapshot of every switch (booleans), with the path settings read when asked.

    Attributes
    ----------
    cache : Path
        Where compiled kernels and demo stores are kept.
    models : Path or None
        A folder of shipped checkpoints (``WORKBENCH_MODELS``), if set.
    ckernel_march : str
        The ``-march`` target of the C kernels (``WORKBENCH_CKERNEL_MARCH``, ``native``).
    debug : bool
        The CLI shows tracebacks.
    threads : int
        OpenMP threads of a recorded call (``WORKBENCH_THREADS``; 0: chosen, see above).
    calibrate : bool
        Choose the paths by measuring them (``WORKBENCH_CALIBRATE``, on).
    forced : frozenset
        Switches forced on (variable ``1`` or ``configure(name=True)``), not just allowed.
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
    forced: frozenset = frozenset()
    paths: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def cache(self) -> Path:
        if "cache" in self.paths:
            return Path(self.paths["cache"])
        return Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench")

    @property
    def models(self) -> Path | None:
        if "models" in self.paths:
            return None if self.paths["models"] is None else Path(self.paths["models"])
        value = os.environ.get("WORKBENCH_MODELS")
        return Path(value) if value else None

    @property
    def ckernel_march(self) -> str:
        """The ``-march`` target the C kernels are built for (``WORKBENCH_CKERNEL_MARCH``)."""
        if "ckernel_march" in self.paths:
            return str(self.paths["ckernel_march"])
        return os.environ.get("WORKBENCH_CKERNEL_MARCH") or "native"

    @property
    def debug(self) -> bool:
        if "debug" in self.paths:
            return bool(self.paths["debug"])
        return bool(os.environ.get("WORKBENCH_DEBUG"))

    @property
    def threads(self) -> int:
        raw = (
            self.paths["threads"]
            if "threads" in self.paths
            else os.environ.get("WORKBENCH_THREADS", "0")
        )
        try:
            value = int(raw or 0)
        except ValueError:
            raise ValueError(f"WORKBENCH_THREADS={raw!r} is not a whole number") from None
        if not 0 <= value <= 1024:
            raise ValueError(f"threads must be 0 (chosen) to 1024, got {value}")
        return value

    @property
    def calibrate(self) -> bool:
        if "calibrate" in self.paths:
            return bool(self.paths["calibrate"])
        return os.environ.get("WORKBENCH_CALIBRATE", "1") != "0"


# read when asked, not switches
PATHS = ("cache", "models", "ckernel_march", "debug", "threads", "calibrate")
_LOCK = threading.Lock()
_OVERRIDES: list[dict] = []
_CURRENT: list[Settings] = []  # [the settings in force], rebuilt by configure and reload


def _from_env() -> Settings:
    kw, forced = {}, set()
    for name, (var, default) in SWITCHES.items():
        raw = os.environ.get(var) if var else None
        kw[name] = default if raw is None else raw != "0"
        if raw == "1":
            forced.add(name)
    return Settings(**kw, forced=frozenset(forced))


def _rebuild() -> Settings:
    base = _from_env()
    if _OVERRIDES:
        top = _OVERRIDES[-1]
        paths = {k: v for k, v in top.items() if k in PATHS}
        switches = {k: bool(v) for k, v in top.items() if k not in PATHS}
        forced = {k for k, v in switches.items() if v} | (base.forced - set(switches))
        base = replace(base, paths=paths, forced=frozenset(forced), **switches)
    _CURRENT[:] = [base]
    return base


def settings() -> Settings:
    """The switches in force now: the environment, then any :func:`configure` blocks.

    The switches' variables are read once, at first use (and by :func:`reload`); the path
    settings whenever they are asked for. This is called on the recorder's hot paths, so it
    only returns the snapshot.
    """
    current = _CURRENT
    if current:
        return current[0]
    with _LOCK:
        return _rebuild()


def reload() -> Settings:
    """Read the switches' environment variables again (after changing ``os.environ``)."""
    with _LOCK:
        return _rebuild()


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
    known = ({f.name for f in fields(Settings)} - {"paths", "forced"}) | set(PATHS)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    with _LOCK:
        merged = {**(_OVERRIDES[-1] if _OVERRIDES else {}), **changes}
        _OVERRIDES.append(merged)
        current = _rebuild()
    try:
        yield current
    finally:
        with _LOCK:
            index = next(i for i, o in enumerate(_OVERRIDES) if o is merged)
            del _OVERRIDES[index]
            _rebuild()


def backends_off() -> list[dict]:
    """One ``configure(**changes)`` per switchable backend, each turning that one off.

    The recorder's and store's tests run once under each (the exactness they check must not
    depend on which backend computed it).
    """
    return [{name: False} for name, (_, default) in SWITCHES.items() if default]
