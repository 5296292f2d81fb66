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
        epochs=30,
        patience=6,
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
    "g2p": dict(
        hidden=64,
        layers=1,
        embed=48,
        lr=2e-3,
        batch=64,
        epochs=30,
        patience=3,
        dropout=0.1,
        max_minutes=27,
    ),
}
# your own data (--data): a folder of text files, a CSV with text/label, a CSV/.npy series
_DEFAULTS["classifier"] = _DEFAULTS["sentiment"]
_DEFAULTS["forecaster"] = dict(_DEFAULTS["sunspots"], batch=32, epochs=100, patience=10)
_NEEDS_DATA = ("classifier", "forecaster")


def train(
    task: str = typer.Argument(
        ...,
        help="charlm, sentiment, sunspots, co2, parens, g2p; with --data: charlm, classifier, "
        "forecaster.",
    ),
    data: Path = typer.Option(
        None,
        help="Your own data: a folder of .txt files (charlm), a CSV with text and label "
        "columns (classifier), a CSV or .npy series (forecaster).",
    ),
    text_column: str = typer.Option("text", help="Classifier CSV: the text column."),
    label_column: str = typer.Option("label", help="Classifier CSV: the label column."),
    column: str = typer.Option(None, help="Forecaster CSV: the value column."),
    window: int = typer.Option(None, help="Forecaster: input window (steps)."),
    season: int = typer.Option(None, help="Forecaster: season length for the naive baseline."),
    out: Path = typer.Option(
        None, help="Checkpoint folder (default: the shipped one, workbench/models/shipped/...)."
    ),
    arch: str = typer.Option(
        "lstm", help="lstm, gru, rnn (tanh) or peephole (peephole: not sentiment)."
    ),
    hidden: int = typer.Option(None, help="Hidden units."),
    layers: int = typer.Option(None, help="Stacked layers."),
    embed: int = typer.Option(None, help="Embedding size (token models)."),
    dropout: float = typer.Option(None, help="Dropout probability."),
    residual: bool = typer.Option(False, help="Char LM: residual connections between layers."),
    epochs: int = typer.Option(None, help="Maximum epochs (early stopping may end sooner)."),
    lr: float = typer.Option(None, help="Learning rate (halved on validation plateaus)."),
    batch: int = typer.Option(None, help="Batch size (rows of the stream for the char LM)."),
    bptt: int = typer.Option(None, help="Truncated-BPTT window of the char LM."),
    patience: int = typer.Option(None, help="Early stopping: epochs without improvement."),
    max_minutes: float = typer.Option(None, help="Wall-clock budget."),
    max_train_tokens: int = typer.Option(None, help="Cap the training tokens (char LMs)."),
    seed: int = typer.Option(0, help="Random seed."),
    init: Path = typer.Option(None, help="Continue from this checkpoint (same task)."),
) -> None:
    """Train a demo model on its shipped corpus and report metrics next to baselines."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from workbench.data import DataError
    from workbench.models import train as tr
    from workbench.models.checkpoint import CheckpointError

    if task not in _DEFAULTS:
        raise typer.BadParameter(f"unknown task {task!r}; choose from {', '.join(_DEFAULTS)}")
    if arch not in ("lstm", "gru", "rnn", "peephole"):
        raise typer.BadParameter("arch must be lstm, gru, rnn or peephole")
    if task in ("sentiment", "classifier") and arch == "peephole":
        raise typer.BadParameter("the sentiment classifier takes --arch lstm, gru or rnn")
    if task in _NEEDS_DATA and data is None:
        raise typer.BadParameter(f"{task} trains on your own data: give --data PATH")
    if data is not None and task not in ("charlm", "sentiment", *_NEEDS_DATA):
        raise typer.BadParameter("--data goes with charlm, classifier or forecaster")
    torch.manual_seed(seed)
    settings = tr.TrainSettings(arch=arch, seed=seed, residual=residual, **_DEFAULTS[task])
    for key, value in dict(
        hidden=hidden,
        layers=layers,
        embed=embed,
        dropout=dropout,
        epochs=epochs,
        lr=lr,
        batch=batch,
        bptt=bptt,
        patience=patience,
        max_minutes=max_minutes,
        max_train_tokens=max_train_tokens,
        init=str(init) if init else None,
    ).items():
        if value is not None:
            setattr(settings, key, value)
    if data is not None and out is None:
        raise typer.BadParameter("with --data, name the checkpoint folder: --out DIR")
    corpus = {"charlm": "python"}.get(task, task)
    if out is None:
        from workbench.models.checkpoint import SHIPPED_DIR

        out = SHIPPED_DIR / corpus
    src = str(data) if data is not None else None
    console = Console()
    try:
        if task == "g2p":
            from workbench.models.g2p_train import train_g2p

            metrics = train_g2p(settings, out, console)
        elif task in ("charlm", "parens"):
            metrics = tr.train_lm(task, settings, out, console, data=src)
        elif task in ("sentiment", "classifier"):
            metrics = tr.train_sentiment(
                settings, out, console, data=src, text=text_column, label=label_column
            )
        else:
            metrics = tr.train_forecaster(
                task, settings, out, console, window, data=src, column=column, season=season
            )
    except (DataError, CheckpointError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"{task}: held-out test metrics ({out})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
