"""``workbench bench memory``: connectivity over lag of the shipped Python char LM.

Windows of ``steps`` characters are drawn from the Python-source test split; each batch of
windows is one forward and one backward pass (a batched vector-Jacobian product: the
gradient of the batch's summed last-step log-probability with respect to every input
embedding at once). The issue's target: 1,000 windows x 256 steps within 2 minutes on the
2-core machine.
"""

from __future__ import annotations

import time

import typer


def run(windows: int = 1000, steps: int = 256, batch: int = 250, threads: int | None = None):
    """Time :func:`workbench.memory.connectivity`; returns ``(seconds, curve, windows/s)``."""
    import torch

    from workbench import data, memory
    from workbench.models.checkpoint import load

    if threads:
        torch.set_num_threads(threads)
    bundle = load("python")
    docs = data.corpus("python", "test", max_tokens=max(400_000, 2 * steps * 50))
    w = memory.from_corpus(bundle, docs, windows, steps)
    memory.connectivity(bundle, w[: min(8, windows)], batch=8)  # warm-up: kernels, allocator
    t0 = time.perf_counter()
    curve = memory.connectivity(bundle, w, batch=batch)["gradient"]
    seconds = time.perf_counter() - t0
    return seconds, curve, windows / seconds


def bench_memory(
    windows: int = typer.Option(1000, help="Windows drawn from the Python test split."),
    steps: int = typer.Option(256, help="Steps per window."),
    batch: int = typer.Option(250, help="Windows per backward pass."),
    threads: int = typer.Option(0, help="torch threads (0: torch's default)."),
) -> None:
    """Connectivity over lag: 1,000 windows x 256 steps of the Python char LM (target 2 min)."""
    import torch

    seconds, curve, rate = run(windows, steps, batch, threads or None)
    print(
        f"connectivity, {windows} windows x {steps} steps, batch {batch}, "
        f"{torch.get_num_threads()} threads: {seconds:.1f} s ({rate:.1f} windows/s); "
        f"target 120 s; horizon (10 % of peak) {curve.horizon(0.1)} steps"
    )
