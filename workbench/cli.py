"""The ``workbench`` command line.

Each command lives beside the code it drives; this module only lists them. A command's module
is imported (a plain import, its package and all) only when that command runs or shows its own
help, so ``workbench --help`` imports typer and nothing heavy: the listing reads the one-line
help from :data:`COMMANDS` (a test keeps it equal to each command's docstring).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click
import typer
from typer.core import TyperGroup


class Command(NamedTuple):
    """One command: where it lives and its one-line help (its docstring's first line)."""

    group: str
    name: str
    module: str
    function: str
    help: str


#: Every command, one line each; ``group`` is ``app`` (top level) or ``bench``.
COMMANDS: tuple[Command, ...] = tuple(
    Command(*row)
    for row in [
        ("app", "demo", "workbench.recorder._cli", "demo",
         "Quickstart: record the shipped Python-source language model on real code."),
        ("app", "train", "workbench.models._cli", "train",
         "Train a demo model on its shipped corpus and report metrics next to baselines."),
        ("app", "explain", "workbench.explainers._cli", "explain_command",
         "Explain MODEL's prediction on INPUT with each of METHODS; print the top tokens."),
        ("app", "record", "workbench.store._cli", "record",
         "Record a whole corpus into a state store (zarr), resumable."),
        ("app", "export", "workbench.store._cli", "export",
         "Export a store (LSTMVis project: HDF5 states, word ids, .dict, lstm.yml)."),
        ("app", "import", "workbench.store._cli", "import_",
         "Import an LSTMVis project into a state store."),
        ("app", "report", "workbench.reports._cli", "report_command",
         "Record MODEL on INPUT, explain it with METHODS, and write one HTML report."),
        ("app", "convert", "workbench.models._convert", "convert",
         "Convert a torch.save state_dict or a Keras model into a safetensors + JSON "
         "checkpoint."),
        ("app", "serve", "workbench.app._cli", "serve",
         "Start the web app (States, Explain, Perturb, Projection, Gates, Model) on :8050."),
        ("bench", "record", "workbench.recorder._cli", "bench_record",
         "Recording cost as a ratio to the plain forward of the same model and input."),
        ("bench", "explain", "workbench.explainers._cli", "bench_explain",
         "Time every method on the sentiment model (one input), as ratios to one forward."),
        ("bench", "store", "workbench.store._cli", "bench_store",
         "Store speed: match 1M / 10M x 650, build vs plain forward, UMAP 100k cold / warm."),
        ("bench", "compare", "workbench.bench.compare", "bench_compare",
         "Linear CKA of two 1M-step x 256-unit stores (target 30 s), SVCCA from its sums."),
        ("bench", "memory", "workbench.bench.memory", "bench_memory",
         "Connectivity over lag: 1,000 windows x 256 steps of the Python char LM (target 2 min)."),
        ("bench", "app", "workbench.app._bench", "bench_app",
         "App latency: server-side callbacks on a 1M-token store, or in the browser (--browser)."),
    ]
)  # fmt: skip


def _user_errors(func):
    """Print a user mistake (a ValueError, a missing file or extra, an OSError) as one line.

    It exits 1. Set ``WORKBENCH_DEBUG=1`` to see the traceback instead.
    """
    import functools

    from workbench._extras import MissingExtraError
    from workbench.config import settings

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (
            ValueError,
            FileNotFoundError,
            NotADirectoryError,
            IsADirectoryError,
            MissingExtraError,
        ) as exc:
            if settings().debug:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # the disk, the file system or permissions refused
            if settings().debug:
                raise
            from workbench._os_errors import os_error_line

            typer.echo(f"error: {os_error_line(exc)}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def load_command(command: Command) -> click.Command:
    """The click command of ``command``, importing its module (plainly) now.

    Raises
    ------
    MissingExtraError
        If its package needs an extra that is not installed.
    """
    func = getattr(importlib.import_module(command.module), command.function)
    one = typer.Typer(pretty_exceptions_show_locals=False)
    one.command(command.name)(_user_errors(func))
    return typer.main.get_command(one)


class _LazyGroup(TyperGroup):
    """A group whose commands load when run; its listing uses :data:`COMMANDS` alone."""

    group = "app"

    def _lazy(self) -> dict[str, Command]:
        return {c.name: c for c in COMMANDS if c.group == self.group}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self._lazy(), *(n for n in super().list_commands(ctx) if n not in self._lazy())]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = self._lazy().get(name)
        if command is None:
            return super().get_command(ctx, name)
        return click.Command(name, help=command.help, short_help=command.help)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        command = self._lazy().get(args[0]) if args else None
        if command is None:
            return super().resolve_command(ctx, args)
        from workbench._extras import MissingExtraError

        try:
            return command.name, load_command(command), args[1:]
        except MissingExtraError as exc:
            typer.echo(f"error: {exc}", err=True)
            ctx.exit(1)


class _LazyBenchGroup(_LazyGroup):
    group = "bench"


app = typer.Typer(
    cls=_LazyGroup,
    name="workbench",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
bench_app = typer.Typer(cls=_LazyBenchGroup, no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@app.callback()
def _root() -> None:
    """See inside LSTMs and GRUs: record, explain, search and show."""


@bench_app.callback()
def _bench() -> None:
    """Benchmarks: ratios against a baseline run in the same process."""


def main() -> None:
    """Run the CLI (console-script entry point)."""
    app()
