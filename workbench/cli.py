"""The ``workbench`` command line.

Each command lives beside the code it drives; this module only assembles them. Command
modules must import nothing heavy at module level (torch loads inside the command body).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import typer

app = typer.Typer(
    name="workbench",
    help="See inside LSTMs and GRUs: record, explain, search and show.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
bench_app = typer.Typer(help="Benchmarks: ratios against a baseline run in the same process.")
app.add_typer(bench_app, name="bench")

# (module, function, command name, typer app) -- one line per command.
_COMMANDS: list[tuple[str, str, str, str]] = [
    ("workbench.recorder._cli", "demo", "demo", "app"),
    ("workbench.recorder._cli", "bench_record", "record", "bench"),
    ("workbench.models._cli", "train", "train", "app"),
    ("workbench.explain._cli", "bench_explain", "explain", "bench"),
    ("workbench.explain._cli", "explain_command", "explain", "app"),
    ("workbench.store._cli", "record", "record", "app"),
    ("workbench.store._cli", "export", "export", "app"),
    ("workbench.store._cli", "import_", "import", "app"),
    ("workbench.store._cli", "bench_store", "store", "bench"),
    ("workbench.report._cli", "report_command", "report", "app"),
    ("workbench.models._convert", "convert", "convert", "app"),
    ("workbench.app._cli", "serve", "serve", "app"),
    ("workbench.app._bench", "bench_app", "app", "bench"),
]


def _user_errors(func):
    """Print a user mistake (a ValueError, a missing file, an OSError) as one line, exit 1.

    Set ``WORKBENCH_DEBUG=1`` to see the traceback instead.
    """
    import functools

    from workbench.config import settings

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
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


def _command_module(name: str):
    """The command module ``name``, without running its package's ``__init__``.

    The packages (``workbench.explain``, ``workbench.app`` ...) import torch, dash and friends
    when they load; the command modules import only typer at module level (their bodies
    import the rest), so ``workbench --help`` starts in a fraction of a second. Once a command
    runs, its package loads normally.
    """
    if name in sys.modules:
        return sys.modules[name]
    parent, _, leaf = name.rpartition(".")
    if parent in sys.modules:
        return importlib.import_module(name)
    import workbench

    path = Path(workbench.__file__).parent.joinpath(*parent.split(".")[1:], f"{leaf}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _register() -> None:
    apps = {"app": app, "bench": bench_app}
    for module_name, func_name, command, app_name in _COMMANDS:
        func = getattr(_command_module(module_name), func_name)
        apps[app_name].command(command)(_user_errors(func))


_register()


def main() -> None:
    """Run the CLI (console-script entry point)."""
    app()
