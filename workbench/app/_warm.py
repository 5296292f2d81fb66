"""Warm-up after start: precompute what the first pages need, never in a user's way.

Two parts, neither holding anything a callback waits on:

- the numba kernels of UMAP and of the match search compile in a separate process at low
  CPU priority (``nice`` 10) into numba's disk cache, from which every worker loads them;
  compiling in the serving process would hold numba's compiler lock, which a callback's
  first match waits on while it holds the worker's callback lock;
- a single-process server fills its derived tables (gate saturation, best cells) in a
  thread under :meth:`AppContext.warming`: a request for one of them before it is ready
  computes it itself instead of waiting. The thread keeps the normal priority: a descheduled
  low-priority thread holding the GIL would stall the process's requests. Worker processes
  of a multi-process server skip this (each would redo it, at the cost of the users' CPU).
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


#: Pages whose layout :func:`warm_process` renders once (imports, first figures).
WARM_PAGES = ("states", "explain", "perturb")


def warm_process(ctx, text: str = "the cat sat on the mat") -> None:
    """Pay a process's first-call costs before it takes requests (called before "ready").

    A fresh worker's first explain took 9-10 s and its first match 6-11 s (2-core machine
    under load): module imports, the match kernels loaded from numba's disk cache, the first
    autograd and LRP runs. Here they run once (one match, one explanation and one perturbation
    on a short text; every model loaded) before the worker accepts a request, so no user pays
    them and no request waits on numba's compiler lock. Failures are ignored (the pages
    report their own errors).
    """
    import importlib
    import json

    import plotly

    from workbench.app import _states_logic as slogic
    from workbench.store import search

    pages = {p: importlib.import_module(f"workbench.app.pages.{p}") for p in WARM_PAGES}
    steps = [search.warm_up]
    # first-call costs are per process (imports, kernels, plotly's validators), not per
    # model: the first model with a store matches, the first model explains and perturbs
    stored = [n for n in ctx.model_names() if ctx.store(n) is not None][:1]
    for name in stored:
        store = ctx.store(name)
        for quantity in slogic.default_names(store.names)[:1]:
            sel = {"model": name, "name": quantity, "cells": [0, 1], "threshold": 0.3,
                   "pad": [1, 0]}  # fmt: skip
            steps.append(lambda s=sel: pages["states"].match_view(ctx, s, None))
    for name in ctx.model_names():
        steps.append(lambda n=name: ctx.bundle(n))
    for name in ctx.model_names()[:1]:
        steps.append(lambda n=name: pages["explain"].run(ctx, n, text, ["saliency", "lrp"],
                                                         "prediction", None))  # fmt: skip

        def perturb(n=name):
            quantity = pages["perturb"].recorded_names(ctx, n)[0]
            yield pages["perturb"].compare(ctx, n, text, text + " x", quantity)
            yield pages["perturb"].intervene(ctx, n, text, quantity, "0, 1", "zero")

        steps.append(lambda p=perturb: list(p()))
    steps += [lambda m=m: m.layout(ctx) for m in pages.values()]
    for step in steps:
        try:  # the answer made into JSON too, as the callback's would be
            json.dumps(step(), cls=plotly.utils.PlotlyJSONEncoder)
        except Exception:  # noqa: BLE001, S112 - a model that cannot take text, say
            continue


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
    import importlib.util

    if importlib.util.find_spec("umap") is not None:  # the [umap] extra
        warm_up(background=False)


if __name__ == "__main__":
    _compile()
