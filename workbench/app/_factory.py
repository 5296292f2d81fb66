"""Build the Dash app from the page modules and serve it."""

from __future__ import annotations

import importlib
import logging
import warnings
from pathlib import Path

from workbench.app import _limits
from workbench.app.pages import PAGES

_log = logging.getLogger("workbench.app")

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


def _guard_callbacks(server) -> None:
    """Check every callback request against :mod:`workbench.app._limits`, one at a time.

    A body Dash could not have sent, or values whose types the callback cannot take, are
    HTTP 400 with one line (the traceback goes to the server's log), never 500. Callbacks
    run one at a time per process: torch state they touch (the default dtype LRP sets to
    float64, forward hooks on the shared models) is process-wide, and waitress runs requests
    in parallel threads; :func:`serve` runs several processes for parallel users.
    """
    import threading

    from dash.exceptions import CallbackException
    from flask import request

    lock = threading.Lock()
    for endpoint, view in list(server.view_functions.items()):
        if endpoint.endswith("_dash-update-component"):

            def guarded(*args, _view=view, **kwargs):
                try:
                    _limits.check_callback_body(request.get_json(silent=True))
                except _limits.BadRequestError as exc:
                    return _bad_request(str(exc))
                with lock:
                    try:
                        return _view(*args, **kwargs)
                    except _CALLER_ERRORS as exc:
                        _log.warning("callback request refused (HTTP 400)", exc_info=True)
                        why = f"{type(exc).__name__}: {_one_line(exc)}"
                        return _bad_request(f"the callback cannot take these values ({why})")
                    except CallbackException as exc:  # its subclasses are Dash's own answers
                        if type(exc) is not CallbackException:  # (PreventUpdate: 204) or bugs
                            raise
                        return _bad_request(_one_line(exc))  # "Inputs do not match ..."

            server.view_functions[endpoint] = guarded
    server.workbench_callback_lock = lock  # the warm-up after ready takes it between calls


#: Exceptions a callback raises on values of the wrong type or shape (a malformed request).
_CALLER_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _bad_request(message: str):
    from flask import Response

    return Response(f"bad request: {message}\n", status=400, mimetype="text/plain")


def _tag_worker(response):
    """Say which process answered (``serve(workers=N)`` runs several)."""
    import os

    response.headers["X-Workbench-Worker"] = str(os.getpid())
    return response


def _too_large(_exc):
    from flask import Response

    return Response(
        f"request body too large: the limit is {_limits.MAX_BODY:,} bytes\n",
        status=413, mimetype="text/plain",
    )  # fmt: skip


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
        query = _limits.query(search)
        try:
            return page.layout(ctx, **query)
        except _CALLER_ERRORS as exc:  # a value the page did not bound: show it plainly
            _log.warning("URL query refused: %s", search, exc_info=True)
            note = html.P(f"ignored the URL query ({_one_line(exc)}); showing the defaults",
                          className="wb-error")  # fmt: skip
            return html.Div([note, page.layout(ctx)])

    # a component-suite path Dash did not register (e.g. "../" traversal) is a 404, not a 500
    app.server.register_error_handler(
        dash.exceptions.DependencyException, lambda exc: ("not found", 404)
    )
    app.server.before_request(_refuse_file_paths)
    app.server.config["MAX_CONTENT_LENGTH"] = _limits.MAX_BODY
    app.server.register_error_handler(413, _too_large)
    app.server.after_request(_tag_worker)
    for page in pages:
        page.register(app, ctx)
    _guard_callbacks(app.server)
    app.workbench_context = ctx
    return app


def serve(
    ctx=None,
    host: str = "127.0.0.1",
    port: int = 8050,
    debug: bool = False,
    app=None,
    workers: int = 1,
    on_ready=None,
    on_all_ready=None,
    **kwargs,
):
    """Start the app (blocking). Binds to loopback unless ``host`` says otherwise.

    Parameters
    ----------
    ctx : AppContext, optional
    host : str
        Interface to bind; anything but loopback warns that the app has no authentication.
    port : int
        1-65535; a busy port raises :class:`~workbench.app._serving.PortError` before
        anything is loaded.
    debug : bool
    app : dash.Dash, optional
        An app already made by :func:`create_app` (default: made here from ``ctx``); served
        by this process alone.
    workers : int
        Processes serving requests in parallel (each loads its own models; the stores are
        memory-mapped and shared). Callbacks run one at a time within a process.
    on_ready : callable, optional
        Called once the app accepts requests (its first worker).
    on_all_ready : callable, optional
        Called once every worker accepts requests.
    **kwargs
        Passed to :meth:`dash.Dash.run` (e.g. ``jupyter_mode="inline"``).

    Notes
    -----
    Without ``debug`` or Dash keywords the app is served by waitress (a production WSGI
    server) with request bodies capped at :data:`workbench.app._limits.MAX_BODY` bytes;
    ``debug=True`` keeps Dash's server for its reloader and error overlay.
    """
    from workbench.app import _serving

    if host not in LOOPBACK:
        warnings.warn(
            f"binding to {host}: the workbench app has no authentication and anyone who can "
            "reach this address can use it; keep the default 127.0.0.1 unless you mean it",
            stacklevel=2,
        )
    port = _serving.check_port(port)
    if debug or kwargs:
        app = app if app is not None else create_app(ctx)
        app.run(host=host, port=port, debug=debug, **kwargs)
        return app
    sock = _serving.bind(host, port, listen=not (workers > 1 and app is None))
    if workers > 1 and app is None:
        from workbench.app._context import AppContext

        ctx = ctx if ctx is not None else AppContext()
        _serving.run_workers(ctx.spec(), sock, workers, on_ready, on_all_ready)
        return None
    app = app if app is not None else create_app(ctx)
    for done in (on_ready, on_all_ready):
        if done is not None:
            done()
    _serving.serve_socket(app, sock)
    return app
