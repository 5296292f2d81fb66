"""CLI commands of the recorder: ``workbench demo`` and ``workbench bench record``."""

from __future__ import annotations

import typer


def demo(
    model: str = typer.Option("python", help="Shipped model name or checkpoint folder."),
    chars: int = typer.Option(400, help="Characters of real source code to record."),
) -> None:
    """Quickstart: record the shipped Python-source language model on real code."""
    from workbench.recorder._demo import run_demo

    run_demo(model, chars)


def bench_record(
    units: int = typer.Option(650, help="Hidden units per layer."),
    layers: int = typer.Option(2, help="Stacked layers."),
    batch: int = typer.Option(64, help="Batch size."),
    steps: int = typer.Option(100, help="Time steps."),
    repeats: int = typer.Option(7, help="Timed repeats per case (median reported)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    quick: bool = typer.Option(False, help="Tiny sizes, for a smoke test."),
) -> None:
    """Recording cost as a ratio to the plain forward of the same model and input."""
    from rich.console import Console
    from rich.table import Table

    from workbench.bench.recorder import run_benchmarks

    rows = run_benchmarks(units, layers, batch, steps, repeats, device, quick)
    table = Table(title=f"workbench bench record ({device}, median of {repeats})")
    for col in ("case", "plain forward", "recording", "ratio", "max abs error"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for r in rows:
        err = "-" if r.max_abs_error is None else f"{r.max_abs_error:.1e}"
        table.add_row(
            r.case,
            f"{r.plain_s * 1e3:.0f} ms",
            f"{r.record_s * 1e3:.0f} ms",
            f"{r.ratio:.2f}x",
            err,
        )
    Console().print(table)
