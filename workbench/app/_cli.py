"""``workbench serve``: start the Dash app on the demo models or on one store."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def build_context(store: Path | None, model: str | None, rebuild: bool, build: bool):
    """The :class:`~workbench.app.AppContext` for the command line's arguments."""
    import shutil

    from workbench.app import AppContext

    if store is not None:
        return AppContext.from_store(store, model)
    if model is not None:
        from workbench.models.checkpoint import shipped

        path = Path(model) if Path(model).exists() else shipped(model)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint folder or shipped model named {model!r}")
        ctx = AppContext(models={Path(model).name: path})
    else:
        ctx = AppContext()
    if rebuild:
        for name in ctx.model_names():
            target = ctx.store_path(name)
            if target.exists() and ctx.cache in target.parents:
                shutil.rmtree(target)
    if build:
        t0 = time.perf_counter()
        missing = [n for n in ctx.model_names() if ctx.store(n) is None]
        if missing:
            typer.echo(
                f"first run: building demo stores for {', '.join(missing)} into {ctx.cache} "
                "(cached for later starts)"
            )
        ctx.prepare(progress=True)
        if missing:
            typer.echo(f"stores built in {time.perf_counter() - t0:.1f} s")
    return ctx


def serve(
    store: Path = typer.Argument(None, help="A state store folder (default: the demo models)."),
    model: str = typer.Option(
        None, help="Checkpoint folder (or shipped name) of the store's model."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(8050, help="Port."),
    build: bool = typer.Option(True, "--build/--no-build", help="Build missing demo stores."),
    rebuild: bool = typer.Option(False, help="Delete and rebuild the cached demo stores."),
    debug: bool = typer.Option(False, help="Dash debug mode (reloader and error overlay)."),
) -> None:
    """Start the web app (States, Explain, Perturb, Projection, Gates, Model) on :8050."""
    from workbench.app import serve as run_app

    t0 = time.perf_counter()
    ctx = build_context(store, model, rebuild, build)
    from workbench.app import create_app

    app = create_app(ctx)
    for name in ctx.model_names():
        ctx.store(name)  # open the stores now, so the first page is quick
    if not debug:  # the reloader would compile twice
        import importlib.util
        import threading

        from workbench.store.projection import warm_up

        if importlib.util.find_spec("umap") is not None:  # the [umap] extra
            warm_up(background=True)  # UMAP's kernels compile while the first pages are read

        from workbench.app.pages import gates

        threading.Thread(target=gates.warm, args=(ctx,), daemon=True, name="wb-warm").start()
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    typer.echo(f"ready in {time.perf_counter() - t0:.1f} s: open http://{shown}:{port}/")
    run_app(ctx, host=host, port=port, debug=debug, app=app)
