"""App pages, one module each.

Every page module defines:

``PATH`` : str
    URL path, e.g. ``"/explain"``.
``TITLE`` : str
    Name in the navigation bar.
``layout(ctx, **query) -> dash component``
    The page for an :class:`~workbench.app.AppContext` and the URL query parameters
    (strings; unknown or malformed ones are ignored, never raised).
``register(app, ctx) -> None``
    Registers the page's callbacks. Component ids start with the page name
    (``"explain-..."``) so pages never collide.

``ALIASES`` : tuple of str, optional
    More paths served by the page (States is also ``"/"``).

Cross-page state: the root layout holds ``dcc.Store(id="wb-selection")`` with
``{"model": str, "name": str, "cells": [int], "threshold": float, "pad": [int, int],
"start": int, "end": int}`` (the States page writes it, ``start``/``end`` being the brushed
global corpus steps ``[start, end)``; Explain and Perturb read it), and
``dcc.Location(id="wb-url")``.

URL: a page is rendered again from ``layout(ctx, **query)`` whenever the path or the query
changes (links, back / forward), except when the page itself wrote the query: a page that
keeps its view state in the URL writes the same string to ``wb-url.search`` and to
``dcc.Store(id="wb-url-written")`` in one callback, and the router leaves it alone.
"""

from __future__ import annotations

# Order of the navigation bar.
PAGES: tuple[str, ...] = (
    "states",
    "explain",
    "perturb",
    "projection",
    "gates",
    "attention",
    "memory",
    "model",
    "compare",
)
