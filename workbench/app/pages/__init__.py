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

Cross-page state: the root layout holds ``dcc.Store(id="wb-selection")`` with
``{"model": str, "name": str, "cells": [int], "threshold": float, "start": int, "end": int}``
(the States page writes it; Explain and Perturb read it), and ``dcc.Location(id="wb-url")``.
"""

from __future__ import annotations

# Order of the navigation bar.
PAGES: tuple[str, ...] = ("states", "explain", "perturb", "projection", "gates", "model")
