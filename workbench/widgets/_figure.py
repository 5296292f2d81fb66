"""A plotly figure as an anywidget: the figure spec is synced state, plotly.js ships locally."""

from __future__ import annotations

import json
from typing import Any

import anywidget
import traitlets

from workbench.widgets._assets import plotly_js, static


def figure_state(fig: Any) -> dict:
    """``{"data", "layout"}`` of a plotly figure as plain JSON (what the widget syncs)."""
    if isinstance(fig, dict):
        import plotly.graph_objects as go

        fig = go.Figure(fig)
    if not hasattr(fig, "to_json"):
        raise TypeError(
            "FigureWidget needs a plotly Figure (e.g. from workbench.viz), got "
            f"{type(fig).__name__}"
        )
    spec = json.loads(fig.to_json())
    return {"data": spec.get("data", []), "layout": spec.get("layout", {})}


class FigureWidget(anywidget.AnyWidget):
    """Any :mod:`workbench.viz` figure in a notebook (JupyterLab, Notebook 7, VS Code, Colab).

    plotly.js is not fetched from a CDN: the front end asks the kernel once per page and gets
    the copy inside the installed ``plotly`` package.

    Parameters
    ----------
    figure : plotly.graph_objects.Figure or dict
        The figure to show.

    Attributes
    ----------
    figure : dict
        Synced ``{"data", "layout"}`` JSON of the figure; :meth:`update` shows another.
    last_click : dict
        Synced: the last clicked point ``{"trace", "x", "y", "index"}`` (empty before).
    """

    _esm = static("figure.js")
    figure = traitlets.Dict().tag(sync=True)
    last_click = traitlets.Dict().tag(sync=True)

    def __init__(self, figure: Any, **kwargs: Any) -> None:
        super().__init__(figure=figure_state(figure), **kwargs)
        self.on_msg(self._on_custom)

    @traitlets.validate("figure")
    def _check_figure(self, proposal: dict) -> dict:
        value = proposal["value"]
        if not {"data", "layout"} >= set(value):
            raise traitlets.TraitError(
                "figure must be {'data', 'layout'} JSON; use widget.update(fig) for a Figure"
            )
        return value

    def update(self, figure: Any) -> None:
        """Show another figure (a plotly Figure or its dict)."""
        self.figure = figure_state(figure)

    def to_figure(self):
        """The synced state as a :class:`plotly.graph_objects.Figure`."""
        import plotly.graph_objects as go

        return go.Figure(self.figure)

    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "wb-plotly-request":
            self.send({"type": "wb-plotly"}, buffers=[plotly_js()])
