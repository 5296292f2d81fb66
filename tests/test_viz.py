"""The figure builders of workbench.viz: traces, escaping, the LSTMVis selection rule."""

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from workbench import viz
from workbench.explainers._explanation import Explanation

EVIL = ["<script>alert(1)</script>", "\"'</textarea>", " ", "\n", "x"]


@pytest.fixture
def values():
    return np.random.default_rng(0).random((5, 6))


def _texts(fig) -> str:
    return fig.to_json()


def test_trajectories_one_faded_trace_plus_one_per_selected(values):
    fig = viz.trajectories(values, EVIL, selected=[2, 4], threshold=0.3, brush=(1, 3))
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["other units", "unit 2", "unit 4"]
    faded = fig.data[0]
    assert np.isnan(faded.x).sum() == 4  # four unselected units, NaN-separated
    assert len(fig.layout.shapes) == 2  # threshold line + brush
    assert fig.layout.shapes[0].y0 == 0.3
    assert "<script>" not in _texts(fig) and "&lt;script&gt;" in _texts(fig)


def test_trajectories_rejects_bad_units(values):
    with pytest.raises(ValueError, match="out of range"):
        viz.trajectories(values, selected=[6])
    with pytest.raises(ValueError, match="one token per step"):
        viz.trajectories(values, ["a"])


def test_gate_heatmap_is_units_by_time(values):
    fig = viz.gate_heatmap(values, EVIL, gate="forget_gate", units=[0, 3])
    (hm,) = fig.data
    assert hm.type == "heatmap" and np.asarray(hm.z).shape == (2, 5)
    assert (hm.zmin, hm.zmax) == (0.0, 1.0)
    assert "<script>" not in _texts(fig)


def test_attribution_heatmap_from_explanations_and_dict():
    rng = torch.Generator().manual_seed(0)
    es = [
        Explanation(m, torch.randn(2, 5, generator=rng), None, torch.tensor([0, 1]),
                    torch.zeros(2), tokens=[EVIL, EVIL], lengths=torch.tensor([5, 3]))
        for m in ("ig", "lrp", "shap")
    ]  # fmt: skip
    fig = viz.attribution_heatmap(es, index=1)
    (hm,) = fig.data
    assert list(hm.y) == ["ig", "lrp", "shap"]
    assert np.asarray(hm.z).shape == (3, 3)  # sequence 1 has 3 real steps
    assert hm.zmid == 0 and hm.zmin == -hm.zmax
    raw = np.asarray(hm.customdata)[..., 1].astype(float)
    np.testing.assert_allclose(raw[0], es[0].attributions[1, :3].numpy())
    assert "relevance" in hm.hovertemplate and "<script>" not in _texts(fig)
    fig2 = viz.attribution_heatmap({"a": [1.0, -2.0], "b": [0.0, 0.0]}, normalise=True)
    z = np.asarray(fig2.data[0].z)
    np.testing.assert_allclose(z, [[0.5, -1.0], [0.0, 0.0]])


def test_saturation_scatter_fractions():
    gate = np.array([[0.05, 0.95], [0.05, 0.5], [0.5, 0.95], [0.5, 0.95]])
    left, right = viz.saturation(gate)
    np.testing.assert_allclose(left, [0.5, 0.0])
    np.testing.assert_allclose(right, [0.0, 0.75])
    fig = viz.saturation_scatter({"forget_gate": gate, "input_gate": gate})
    assert [t.name for t in fig.data] == ["forget_gate", "input_gate", "x + y = 1"]
    np.testing.assert_allclose(fig.data[0].y, [0.0, 0.75])
    with pytest.raises(ValueError):
        viz.saturation_scatter({})


def test_deletion_curve_from_metric_dicts_and_arrays():
    curve = {"fractions": torch.linspace(0, 1, 3), "scores": torch.tensor([[0.9, 0.5, 0.1]]),
             "aopc": torch.tensor([0.4])}  # fmt: skip
    fig = viz.deletion_curve({"ig": curve, "<b>": [1.0, 0.5, 0.0]})
    assert [t.name for t in fig.data] == ["ig (AOPC 0.400)", "&lt;b&gt; (AOPC 0.500)"]
    np.testing.assert_allclose(fig.data[0].x, [0, 0.5, 1])


def test_attention_and_agreement_heatmaps():
    w = np.full((4, 4), 0.25)
    fig = viz.attention_heatmap(w, EVIL[:4])
    assert fig.data[0].type == "heatmap" and np.asarray(fig.data[0].z).shape == (4, 4)
    assert "<script>" not in _texts(fig)
    fig = viz.agreement_heatmap(np.eye(2), ["ig", "lrp"])
    assert list(fig.data[0].x) == ["ig", "lrp"]
    with pytest.raises(ValueError):
        viz.agreement_heatmap(np.eye(3), ["ig", "lrp"])


def test_seq2seq_relevance_rows_are_methods_scaled_per_row():
    r = np.array([[2.0, -4.0, 0.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]])
    fig = viz.seq2seq_relevance(r, ["ig", "<b>lrp</b>"], EVIL)
    heat = fig.data[0]
    np.testing.assert_allclose(heat.z, [[0.5, -1.0, 0.0, 0.25, 0.125], [0, 0, 0, 0, 0]])
    np.testing.assert_allclose(heat.customdata, r)  # raw values in the hover
    assert list(fig.layout.yaxis.ticktext) == ["ig", "&lt;b&gt;lrp&lt;/b&gt;"]
    assert "<script>" not in _texts(fig)


def test_select_cells_lstmvis_rule():
    thr = 0.3
    #          t: 0    1    2    3    4
    v = np.array(
        [
            [0.0, 0.5, 0.5, 0.0, 0.0],  # on in [1,3), off before: selected
            [0.5, 0.5, 0.5, 0.0, 0.0],  # on before the range: rejected by pad left 1
            [0.0, 0.5, 0.1, 0.0, 0.0],  # off inside: rejected
            [0.0, 0.5, 0.5, 0.5, 0.0],  # on after: fine with pad right 0, rejected with 1
        ]
    ).T
    assert viz.select_cells(v, 1, 3, threshold=thr).tolist() == [0, 3]
    assert viz.select_cells(v, 1, 3, threshold=thr, pad=(1, 1)).tolist() == [0]
    assert viz.select_cells(v, 1, 3, threshold=thr, pad=(0, 0)).tolist() == [0, 1, 3]
    assert viz.select_cells(v, 0, 2, threshold=thr).tolist() == [1]  # before start: off
    with pytest.raises(ValueError, match="brush"):
        viz.select_cells(v, 3, 3)


def test_display_token_escapes_and_shows_whitespace():
    # escaped once for plotly, which decodes only the entities of & < > (never &quot;)
    assert viz.display_token("<a href='x'>") == "&lt;a href='x'&gt;"
    assert viz.display_token('"&') == '"&amp;'
    assert viz.display_token(" ") == "\u2423" and viz.display_token("\n") == "\u23ce"
