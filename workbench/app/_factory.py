"""Build the Dash app from the page modules and serve it."""

from __future__ import annotations

import importlib
import warnings
from urllib.parse import parse_qsl

from workbench.app.pages import PAGES

LOOPBACK = ("127.0.0.1", "localhost", "::1")


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


def create_app(ctx=None):
    """The Dash app for an :class:`~workbench.app.AppContext` (default: the demo models).

    Returns
    -------
    dash.Dash
    """
    import dash
    from dash import Input, Output, dcc, html

    from workbench.app._context import AppContext

    ctx = ctx if ctx is not None else AppContext()
    pages = _pages()
    app = dash.Dash(
        __name__,
        title="workbench",
        suppress_callback_exceptions=True,
        serve_locally=True,
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
            nav,
            html.Main(id="wb-page", className="wb-page"),
        ],
        className="wb-root",
    )
    by_path = {p.PATH: p for p in pages}

    @app.callback(
        Output("wb-page", "children"), Input("wb-url", "pathname"), Input("wb-url", "search")
    )
    def route(pathname, search):
        page = by_path.get(pathname or "/") or (pages[0] if pathname in (None, "", "/") else None)
        if page is None:
            return html.Div(
                [html.H2("Page not found"), html.P(f"No page at {pathname}; pick one above.")],
                className="wb-error",
            )
        query = dict(parse_qsl((search or "").lstrip("?")))
        return page.layout(ctx, **query)

    for page in pages:
        page.register(app, ctx)
    app.workbench_context = ctx
    return app


def serve(ctx=None, host: str = "127.0.0.1", port: int = 8050, debug: bool = False, **kwargs):
    """Start the app (blocking). Binds to loopback unless ``host`` says otherwise.

    Parameters
    ----------
    ctx : AppContext, optional
    host : str
        Interface to bind; anything but loopback warns that the app has no authentication.
    port : int
    debug : bool
    **kwargs
        Passed to :meth:`dash.Dash.run` (e.g. ``jupyter_mode="inline"``).
    """
    if host not in LOOPBACK:
        warnings.warn(
            f"binding to {host}: the workbench app has no authentication and anyone who can "
            "reach this address can use it; keep the default 127.0.0.1 unless you mean it",
            stacklevel=2,
        )
    app = create_app(ctx)
    app.run(host=host, port=port, debug=debug, **kwargs)
    return app
