"""Warm-up after start: precompute what the first pages need, never in a user's way.

Two parts, neither holding anything a callback waits on:

- the numba kernels of UMAP and of the match search compile in a separate process at low
  CPU priority (``nice`` 10) into numba's disk cache, from which every worker loads them;
  compiling in the serving process would hold numba's compiler lock, which a callback's
  first match waits on while it holds the worker's callback lock;
- the derived tables (gate saturation, best cells) fill in a thread of the first worker
  under :meth:`AppContext.warming`: a request for one of them before it is ready computes it
  itself instead of waiting. The thread keeps the normal priority: a descheduled
  low-priority thread holding the GIL would stall the worker's requests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading


def compile_kernels_process() -> subprocess.Popen:
    """Start the low-priority process that compiles the numba kernels into the disk cache."""
    return subprocess.Popen([sys.executable, "-m", "workbench.app._warm"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def warm_tables(ctx) -> None:
    """Fill ``ctx``'s cached tables now (call in a thread; see :func:`warm_in_background`)."""
    from workbench.app.pages import gates

    with ctx.warming():
        gates.warm(ctx)


def warm_in_background(ctx, compile_kernels: bool = True, tables: bool = True):
    """Start the warm-up; returns ``(thread or None, process or None)``.

    Parameters
    ----------
    ctx : AppContext
    compile_kernels : bool
        Also start :func:`compile_kernels_process` (once per server, not per worker).
    tables : bool
        Fill the derived tables in a thread (one worker does; the others compute them on
        the first request that needs them).
    """
    thread = None
    if tables:
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
