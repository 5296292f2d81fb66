"""The local Dash web app: States, Explain, Perturb, Projection, Gates, Model.

``workbench serve`` (and ``make demo``) starts it on http://127.0.0.1:8050. Each page is one
module of :mod:`workbench.app.pages` (layout plus callbacks); figures come from
:mod:`workbench.viz`, shared with the widgets and the reports.
"""

from __future__ import annotations

from workbench._extras import require

require("app")

from workbench.app._context import AppContext  # noqa: E402
from workbench.app._factory import create_app, serve  # noqa: E402

__all__ = ["AppContext", "create_app", "serve"]
