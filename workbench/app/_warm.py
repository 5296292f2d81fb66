"""Warm-up after start: precompute what the first pages need, never in a user's way.

Three parts, none holding a callback up for long:

- :func:`warm_after_ready` pays a serving process's first-call costs (imports, the match
  kernels, the first explanation) in a thread after the app says ready; steps touching
  torch state take the callback lock one at a time, so the first requests are correct,
  at worst slower by one step;

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


#: What :func:`warm_after_ready` warms, for the ready line.
WARMING = "the match search, Explain and Perturb"


def _steps(ctx, text: str) -> list[tuple[bool, object]]:
    """``(needs the callback lock, step)`` pairs of :func:`warm_process`.

    Steps that touch torch state shared by callbacks (models loaded into the context, LRP's
    default dtype, forward hooks) take the callback lock; the match kernels, imports and
    layouts do not.
    """
    import importlib

    from workbench.app import _states_logic as slogic
    from workbench.store import search

    pages = {p: importlib.import_module(f"workbench.app.pages.{p}") for p in WARM_PAGES}
    steps = [(False, search.warm_up)]
    # first-call costs are per process (imports, kernels, plotly's validators), not per
    # model: the first model with a store matches, the first model explains and perturbs
    stored = [n for n in ctx.model_names() if ctx.store(n) is not None][:1]
    for name in stored:
        store = ctx.store(name)
        for quantity in slogic.default_names(store.names)[:1]:
            sel = {"model": name, "name": quantity, "cells": [0, 1], "threshold": 0.3,
                   "pad": [1, 0]}  # fmt: skip
            steps.append((False, lambda s=sel: pages["states"].match_view(ctx, s, None)))
    for name in ctx.model_names():
        steps.append((True, lambda n=name: ctx.bundle(n)))
    for name in ctx.model_names()[:1]:
        steps.append((True, lambda n=name: pages["explain"].run(
            ctx, n, text, ["saliency", "lrp"], "prediction", None)))  # fmt: skip

        def perturb(n=name):
            quantity = pages["perturb"].recorded_names(ctx, n)[0]
            yield pages["perturb"].compare(ctx, n, text, text + " x", quantity)
            yield pages["perturb"].intervene(ctx, n, text, quantity, "0, 1", "zero")

        steps.append((True, lambda p=perturb: list(p())))
    steps += [(True, lambda m=m: m.layout(ctx)) for m in pages.values()]
    return steps


def warm_process(ctx, text: str = "the cat sat on the mat", lock=None) -> None:
    """Pay a process's first-call costs: one match, one explanation, one perturbation.

    A fresh worker's first explain took 9-10 s and its first match 6-11 s (2-core machine
    under load): module imports, the match kernels loaded from numba's disk cache, the first
    autograd and LRP runs. Here they run once on a short text (every model loaded). With
    ``lock`` (the app's callback lock, :func:`warm_after_ready`) the steps that touch torch
    state run one at a time between the users' callbacks, so a request waits at most for
    one step and its answer is never changed by the warm-up. Failures are ignored (the
    pages report their own errors).
    """
    import contextlib
    import json

    import plotly

    for locked, step in _steps(ctx, text):
        guard = lock if (locked and lock is not None) else contextlib.nullcontext()
        try:  # the answer made into JSON too, as the callback's would be
            with guard:
                json.dumps(step(), cls=plotly.utils.PlotlyJSONEncoder)
        except Exception:  # noqa: BLE001, S112 - a model that cannot take text, say
            continue


def warm_after_ready(ctx, lock) -> threading.Thread:
    """Run :func:`warm_process` in a thread of a serving process (after "ready").

    Parameters
    ----------
    ctx : AppContext
    lock : threading.Lock
        The app's callback lock (``app.server.workbench_callback_lock``).
    """
    thread = threading.Thread(target=warm_process, args=(ctx,), kwargs={"lock": lock},
                              daemon=True, name="wb-warm-process")  # fmt: skip
    thread.start()
    return thread


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
