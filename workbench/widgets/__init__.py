"""Jupyter widgets (anywidget): trajectories with LSTMVis selection, figures, matches.

They work in JupyterLab 4, Notebook 7, VS Code and Colab without a labextension build, and
load nothing from a CDN: the ESM ships in this package and plotly.js comes from the installed
``plotly`` package through the kernel.
"""

from workbench._extras import require

require("widgets")

from workbench.widgets._figure import FigureWidget, figure_state  # noqa: E402
from workbench.widgets._matches import MatchesWidget, match_rows  # noqa: E402
from workbench.widgets._show import show  # noqa: E402
from workbench.widgets._trajectory import TrajectoryWidget  # noqa: E402

__all__ = [
    "FigureWidget",
    "MatchesWidget",
    "TrajectoryWidget",
    "figure_state",
    "match_rows",
    "show",
]
