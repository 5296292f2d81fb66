"""Figure builders shared by the app, the notebook widgets and the HTML reports.

Every function takes plain data (arrays, tensors, :class:`~workbench.Explanation`) and
returns a :class:`plotly.graph_objects.Figure`. Tokens are user data: they are escaped
before they reach any figure text.
"""

from workbench.viz._app_figures import (
    aligned_heatmap,
    length_histogram,
    projection_scatter,
    saturation_points,
    selection_counts,
    track_strip,
    trajectory_selection,
    trajectory_slots,
    unit_track,
)
from workbench.viz._common import DIVERGING, display_token
from workbench.viz._compare import (
    bpc_bars,
    cell_counterparts_table,
    cka_heatmap,
    saturation_side_by_side,
    unit_match_table,
)
from workbench.viz._explain import (
    agreement_heatmap,
    attention_heatmap,
    attribution_heatmap,
    deletion_curve,
)
from workbench.viz._memory import memory_curves, time_scale_histogram, time_scale_ranking
from workbench.viz._perturb import difference_heatmap, output_change
from workbench.viz._select import select_cells
from workbench.viz._seq2seq import beam_tree, seq2seq_attention, seq2seq_relevance
from workbench.viz._states import gate_heatmap, saturation, saturation_scatter, trajectories

__all__ = [
    "memory_curves",
    "time_scale_histogram",
    "time_scale_ranking",
    "DIVERGING",
    "aligned_heatmap",
    "length_histogram",
    "projection_scatter",
    "saturation_points",
    "selection_counts",
    "track_strip",
    "trajectory_selection",
    "trajectory_slots",
    "unit_track",
    "agreement_heatmap",
    "attention_heatmap",
    "attribution_heatmap",
    "beam_tree",
    "seq2seq_attention",
    "seq2seq_relevance",
    "deletion_curve",
    "bpc_bars",
    "cell_counterparts_table",
    "cka_heatmap",
    "saturation_side_by_side",
    "unit_match_table",
    "difference_heatmap",
    "display_token",
    "gate_heatmap",
    "output_change",
    "saturation",
    "saturation_scatter",
    "select_cells",
    "trajectories",
]
