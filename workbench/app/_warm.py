"""Warm-up after start: precompute what the first pages need, never in a user's way.

Two parts, neither holding anything a callback waits on:

- the numba kernels of UMAP and of the match search compile in a separate process at low
  CPU priority (``nice`` 10) into numba's disk cache, from which every worker loads them;
  compiling in the serving process would hold numba's compiler lock, which a callback's
  first match waits on while it holds the worker's callback lock;
- each worker's derived tables (gate saturation, best cells) fill in a low-priority thread
  under :meth:`AppContext.warming`: a request for one of them before it is ready computes it
  itself instead of waiting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading


def _lower_priority(increment: int = 10) -> None:
    """Lower the calling thread's CPU priority (Linux: per thread; elsewhere: no-op)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), increment)
    except (AttributeError, OSError):
        pass


def compile_kernels_process() -> subprocess.Popen:
    """Start the low-priority process that compiles the numba kernels into the disk cache."""
    return subprocess.Popen([sys.executable, "-m", "workbench.app._warm"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def warm_tables(ctx) -> None:
    """Fill ``ctx``'s cached tables now (call in a thread; see :func:`warm_in_background`)."""
    from workbench.app.pages import gates

    _lower_priority()
    with ctx.warming():
        gates.warm(ctx)


def warm_in_background(ctx, compile_kernels: bool = True):
    """Start the warm-up; returns ``(thread, process or None)``.

    Parameters
    ----------
    ctx : AppContext
    compile_kernels : bool
        Also start :func:`compile_kernels_process` (once per machine start, not per worker).
    """
    thread = threading.Thread(target=warm_tables, args=(ctx,), daemon=True, name="wb-warm")
    thread.start()
    return thread, compile_kernels_process() if compile_kernels else None


def _compile() -> None:
    from workbench.app._serving import exit_with_parent

    exit_with_parent()
    os.nice(10)
    from workbench.store import search
    from workbench.store.projection import warm_up

    search.warm_up()
    warm_up(background=False)


if __name__ == "__main__":
    _compile()
