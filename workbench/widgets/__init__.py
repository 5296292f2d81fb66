"""Jupyter widgets (anywidget): trajectories with LSTMVis selection, figures, matches.

They work in JupyterLab 4, Notebook 7, VS Code and Colab without a labextension build, and
load nothing from a CDN: the ESM ships in this package and plotly.js comes from the installed
``plotly`` package through the kernel.
"""

from workbench.widgets._figure import FigureWidget, figure_state
from workbench.widgets._matches import MatchesWidget, match_rows
from workbench.widgets._show import show
from workbench.widgets._trajectory import TrajectoryWidget

__all__ = [
    "FigureWidget",
    "MatchesWidget",
    "TrajectoryWidget",
    "figure_state",
    "match_rows",
    "show",
]
