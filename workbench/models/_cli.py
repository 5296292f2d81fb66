"""``workbench train``: train a demo model and write a safetensors + JSON checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

_DEFAULTS = {
    "charlm": dict(hidden=256, layers=2, embed=32, lr=3e-3, batch=64, epochs=3, max_minutes=12),
    "parens": dict(
        hidden=32,
        layers=1,
        embed=8,
        lr=1e-2,
        batch=32,
        epochs=12,
        bptt=60,
        max_minutes=3,
        dropout=0.0,
    ),
    "sentiment": dict(
        hidden=64, layers=1, embed=64, lr=2e-3, batch=64, epochs=8, dropout=0.3, max_minutes=8
    ),
    "sunspots": dict(
        hidden=32, layers=1, lr=5e-3, batch=16, epochs=200, patience=15, dropout=0.0, max_minutes=3
    ),
    "co2": dict(
        hidden=32, layers=1, lr=5e-3, batch=64, epochs=60, patience=8, dropout=0.0, max_minutes=4
    ),
}


def train(
    task: str = typer.Argument(..., help="charlm, sentiment, sunspots, co2 or parens."),
    out: Path = typer.Option(None, help="Checkpoint folder (default assets/models/<corpus>)."),
    arch: str = typer.Option("lstm", help="lstm, gru or peephole (peephole: charlm/forecasters)."),
    hidden: int = typer.Option(None, help="Hidden units."),
    layers: int = typer.Option(None, help="Stacked layers."),
    epochs: int = typer.Option(None, help="Maximum epochs (early stopping may end sooner)."),
    lr: float = typer.Option(None, help="Learning rate (halved on plateaus)."),
    max_minutes: float = typer.Option(None, help="Wall-clock budget."),
    max_train_tokens: int = typer.Option(None, help="Cap the training tokens (char LM)."),
    seed: int = typer.Option(0, help="Random seed."),
    init: Path = typer.Option(None, help="Continue from this checkpoint (char LM)."),
) -> None:
    """Train a demo model on its shipped corpus and report metrics next to baselines."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from workbench.models import train as tr

    if task not in _DEFAULTS:
        raise typer.BadParameter(f"unknown task {task!r}; choose from {', '.join(_DEFAULTS)}")
    if arch not in ("lstm", "gru", "peephole"):
        raise typer.BadParameter("arch must be lstm, gru or peephole")
    torch.manual_seed(seed)
    settings = tr.TrainSettings(arch=arch, seed=seed, **_DEFAULTS[task])
    for key, value in dict(
        hidden=hidden,
        layers=layers,
        epochs=epochs,
        lr=lr,
        max_minutes=max_minutes,
        max_train_tokens=max_train_tokens,
        init=str(init) if init else None,
    ).items():
        if value is not None:
            setattr(settings, key, value)
    corpus = {"charlm": "python"}.get(task, task)
    out = out or Path("assets/models") / corpus
    console = Console()
    if task in ("charlm", "parens"):
        metrics = tr.train_lm(task, settings, out, console)
    elif task == "sentiment":
        metrics = tr.train_sentiment(settings, out, console)
    else:
        metrics = tr.train_forecaster(task, settings, out, console)
    table = Table(title=f"{task}: held-out test metrics ({out})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
