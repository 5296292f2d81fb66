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
    port: int = typer.Option(8050, help="Port (1-65535)."),
    workers: int = typer.Option(
        0, help="Worker processes serving users in parallel (0: one per core, at most 4)."
    ),
    build: bool = typer.Option(True, "--build/--no-build", help="Build missing demo stores."),
    rebuild: bool = typer.Option(False, help="Delete and rebuild the cached demo stores."),
    debug: bool = typer.Option(False, help="Dash debug mode (reloader and error overlay)."),
) -> None:
    """Start the web app (States, Explain, Perturb, Projection, Gates, Model) on :8050."""
    from workbench.app import _serving

    t0 = time.perf_counter()
    port = _serving.check_port(port)
    # a busy port is said before the stores are built or anything is printed as ready
    workers = workers if workers > 0 else _serving.default_workers()
    sock = None if debug else _serving.bind(host, port, listen=workers == 1)
    ctx = build_context(store, model, rebuild, build)
    shown = "localhost" if host in ("127.0.0.1", "::1") else host

    def ready(warming: bool = True):
        from workbench.app._warm import WARMING

        note = f" (warming up {WARMING} in the background: their first use may be slower)"
        typer.echo(f"ready in {time.perf_counter() - t0:.1f} s: open http://{shown}:{port}/"
                   + (note if warming else ""))  # fmt: skip

    if debug:  # Dash's server and reloader (which would compile the kernels twice)
        from workbench.app import serve as run_app

        ready(warming=False)
        run_app(ctx, host=host, port=port, debug=True)
        return
    from workbench.app._warm import compile_kernels_process, warm_after_ready, warm_in_background

    kernels = compile_kernels_process()  # low priority, in its own process
    try:
        if workers > 1:
            _serving.run_workers(ctx.spec(), sock, workers, on_ready=ready)
            return
        from workbench.app import create_app

        app = create_app(ctx)
        for name in ctx.model_names():
            ctx.store(name)  # open the stores now, so the first page is quick
        warm_after_ready(ctx, app.server.workbench_callback_lock)  # first-call costs
        warm_in_background(ctx, compile_kernels=False)
        ready()
        _serving.serve_socket(app, sock)
    finally:
        if kernels.poll() is None:
            kernels.terminate()
