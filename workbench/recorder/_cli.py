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
    repeats: int = typer.Option(7, help="Interleaved pairs per case (median reported)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    quick: bool = typer.Option(False, help="Tiny sizes, for a smoke test."),
    contention: int = typer.Option(
        0, help="Also time recording and a store build with this many busy processes."
    ),
    only_contention: bool = typer.Option(False, help="Skip the ratio table (with --contention)."),
    store_tokens: int = typer.Option(20_000, help="Tokens of the contention's store build."),
) -> None:
    """Recording cost as a ratio to the plain forward of the same model and input."""
    import os

    from rich.console import Console
    from rich.table import Table

    from workbench._native.load import cores
    from workbench.bench.recorder import cpu_model, run_benchmarks, run_contention

    console = Console()
    if not 0 <= contention <= 64:
        raise typer.BadParameter("--contention takes 0 to 64 busy processes")
    if not 100 <= store_tokens <= 10_000_000:
        raise typer.BadParameter("--store-tokens takes 100 to 10,000,000 tokens")
    if device == "cpu":
        from workbench._native.calibrate import chosen

        paths = chosen()  # measured first (once per machine), outside the timings
        console.print(f"CPU: {cpu_model()}; paths: {paths.describe()}")

    def load() -> str:
        return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())

    if not (only_contention and contention):
        console.print(f"before: {load()}")
        rows = run_benchmarks(units, layers, batch, steps, repeats, device, quick)
        pairs = 2 if quick else max(repeats, 31) if device != "cpu" else repeats
        title = f"workbench bench record ({device}, median of {pairs} interleaved pairs)"
        table = Table(title=title)
        cols = ("case", "plain forward", "recording", "ratio", "pairs IQR", "max abs error")
        for col in cols:
            table.add_column(col, justify="left" if col == "case" else "right")
        for r in rows:
            err = "-" if r.max_abs_error is None else f"{r.max_abs_error:.1e}"
            iqr = "-" if r.ratio_iqr is None else f"{r.ratio_iqr[0]:.2f}-{r.ratio_iqr[1]:.2f}x"
            table.add_row(
                r.case,
                f"{r.plain_s * 1e3:.0f} ms",
                f"{r.record_s * 1e3:.0f} ms",
                f"{r.ratio:.2f}x",
                iqr,
                err,
            )
        console.print(table)
        console.print(f"after: {load()}")
        from workbench._native import pages

        if device == "cpu" and pages.backed_off():
            console.print(
                "huge pages were turned off during the run: a touch of fresh huge pages was "
                f"slower than {pages.SLOW_S_PER_MB * 1e3:.1f} ms per MB (cold host memory)"
            )
        if device == "cpu" and os.getloadavg()[0] > 0.5 * cores():
            console.print(
                "the machine was busy: PyTorch's plain forward keeps its whole thread team "
                "and slows most under load (a recording sizes its own), so these ratios are "
                "not the quiet ones; measure on a quiet machine"
            )
    if contention and device == "cpu":
        console.print(f"before: {load()}")
        crows = run_contention(contention, max(1, min(repeats, 5)), units, layers, batch,
                               steps, quick, store_tokens)  # fmt: skip
        table = Table(title=f"with {contention} busy processes (median of pairs, bound 2.5x)")
        for col in ("case", "quiet", "contended", "ratio", "pairs IQR", "bound"):
            table.add_column(col, justify="left" if col == "case" else "right")
        for r in crows:
            table.add_row(
                r.case,
                f"{r.quiet_s * 1e3:.0f} ms",
                f"{r.contended_s * 1e3:.0f} ms",
                f"{r.ratio:.2f}x",
                f"{r.ratio_iqr[0]:.2f}-{r.ratio_iqr[1]:.2f}x",
                "met" if r.ratio <= r.bound else "MISSED",
            )
        console.print(table)
        console.print(f"after: {load()}")
