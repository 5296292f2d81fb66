"""Build the Dash app from the page modules and serve it."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from urllib.parse import parse_qsl

from workbench.app.pages import PAGES

LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: CSS shipped inside the package (served as Dash assets).
STATIC = Path(__file__).with_name("static")


def _pages() -> list:
    found = []
    for name in PAGES:
        module_name = f"workbench.app.pages.{name}"
        try:
            found.append(importlib.import_module(module_name))
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
    return found


_FILE_PREFIXES = ("/assets/", "/static/", "/_dash-component-suites/")


def _refuse_file_paths():
    """404 for traversal-looking paths the page catch-all would answer with the index."""
    from urllib.parse import unquote

    from flask import abort, request

    path = unquote(unquote(request.path)).replace("\\", "/")
    if ".." in path.split("/") or (
        path.startswith(_FILE_PREFIXES) and request.url_rule is not None
        and "<path:path>" in request.url_rule.rule and request.url_rule.rule.startswith("/<")
    ):  # fmt: skip
        abort(404)


def _one_callback_at_a_time(server) -> None:
    """Run callbacks one at a time.

    Torch state they touch (the default dtype LRP sets to float64, forward hooks on the
    shared models) is process-wide, and a threaded server (waitress, Flask's) runs requests
    in parallel threads.
    """
    import threading

    lock = threading.Lock()
    for endpoint, view in list(server.view_functions.items()):
        if endpoint.endswith("_dash-update-component"):

            def locked(*args, _view=view, **kwargs):
                with lock:
                    return _view(*args, **kwargs)

            server.view_functions[endpoint] = locked


def _only_search(callback_context) -> bool:
    props = {t["prop_id"] for t in callback_context.triggered}
    return props == {"wb-url.search"}


def create_app(ctx=None):
    """The Dash app for an :class:`~workbench.app.AppContext` (default: the demo models).

    Returns
    -------
    dash.Dash
    """
    import dash
    from dash import Input, Output, State, dcc, html

    from workbench.app._context import AppContext

    ctx = ctx if ctx is not None else AppContext()
    pages = _pages()
    app = dash.Dash(
        __name__,
        title="workbench",
        suppress_callback_exceptions=True,
        serve_locally=True,
        assets_folder=str(STATIC),
    )
    nav = html.Nav(
        [html.Span("workbench", className="wb-brand")]
        + [
            dcc.Link(
                p.TITLE,
                href=p.PATH,
                className="wb-nav-link",
                id=f"nav-{p.__name__.rsplit('.', 1)[-1]}",
            )
            for p in pages
        ],
        className="wb-nav",
    )
    app.layout = html.Div(
        [
            dcc.Location(id="wb-url", refresh=False),
            dcc.Store(id="wb-selection", storage_type="session"),
            dcc.Store(id="wb-url-written"),
            nav,
            html.Main(id="wb-page", className="wb-page"),
        ],
        className="wb-root",
    )
    by_path = {p.PATH: p for p in pages}
    for p in pages:
        by_path.update({alias: p for alias in getattr(p, "ALIASES", ())})

    @app.callback(
        Output("wb-page", "children"),
        Input("wb-url", "pathname"),
        Input("wb-url", "search"),
        State("wb-url-written", "data"),
    )
    def route(pathname, search, written):
        # a page that wrote its own view state into the URL is not rendered again
        if dash.ctx.triggered_id == "wb-url" and _only_search(dash.ctx) and search == written:
            return dash.no_update
        page = by_path.get(pathname or "/") or (pages[0] if pathname in (None, "", "/") else None)
        if page is None:
            return html.Div(
                [html.H2("Page not found"), html.P(f"No page at {pathname}; pick one above.")],
                className="wb-error",
            )
        query = dict(parse_qsl((search or "").lstrip("?")))
        return page.layout(ctx, **query)

    # a component-suite path Dash did not register (e.g. "../" traversal) is a 404, not a 500
    app.server.register_error_handler(
        dash.exceptions.DependencyException, lambda exc: ("not found", 404)
    )
    app.server.before_request(_refuse_file_paths)
    for page in pages:
        page.register(app, ctx)
    _one_callback_at_a_time(app.server)
    app.workbench_context = ctx
    return app


def serve(
    ctx=None, host: str = "127.0.0.1", port: int = 8050, debug: bool = False, app=None, **kwargs
):
    """Start the app (blocking). Binds to loopback unless ``host`` says otherwise.

    Parameters
    ----------
    ctx : AppContext, optional
    host : str
        Interface to bind; anything but loopback warns that the app has no authentication.
    port : int
    debug : bool
    app : dash.Dash, optional
        An app already made by :func:`create_app` (default: made here from ``ctx``).
    **kwargs
        Passed to :meth:`dash.Dash.run` (e.g. ``jupyter_mode="inline"``).

    Notes
    -----
    Without ``debug`` or Dash keywords the app is served by waitress (a production WSGI
    server, 8 threads) rather than Flask's development server; ``debug=True`` keeps Dash's
    server for its reloader and error overlay.
    """
    if host not in LOOPBACK:
        warnings.warn(
            f"binding to {host}: the workbench app has no authentication and anyone who can "
            "reach this address can use it; keep the default 127.0.0.1 unless you mean it",
            stacklevel=2,
        )
    app = app if app is not None else create_app(ctx)
    if debug or kwargs:
        app.run(host=host, port=port, debug=debug, **kwargs)
        return app
    from waitress import serve as waitress_serve

    waitress_serve(app.server, host=host, port=port, threads=8, _quiet=True)
    return app
