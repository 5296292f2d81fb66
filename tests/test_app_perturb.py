"""Perturb page logic against independent recordings and interventions."""

import json

import numpy as np
import plotly
import pytest
import torch

import workbench
from workbench import viz
from workbench.app import AppContext
from workbench.app import _perturb_logic as logic
from workbench.app._explain_logic import InputError, prepare
from workbench.app.pages import perturb as page
from workbench.data import corpus
from workbench.models.checkpoint import shipped
from workbench.recorder.edits import zero
from workbench.store import StateStore

SENTENCE = "i love this movie so much"


@pytest.fixture(scope="module")
def sentiment():
    return workbench.load(shipped("sentiment"))


@pytest.fixture(scope="module")
def parens():
    return workbench.load(shipped("parens"))


def _states(bundle, text, name):
    p = prepare(bundle, text)
    with torch.no_grad():
        return workbench.record(bundle.model, *p.args, **p.kwargs)[name][0].double().numpy()


def test_edit_in_place_diff_equals_two_recordings(sentiment):
    c = logic.compare(sentiment, SENTENCE, "i hate this movie so much", "rnn.0.bwd.hidden")
    want = _states(sentiment, "i hate this movie so much", "rnn.0.bwd.hidden") - _states(
        sentiment, SENTENCE, "rnn.0.bwd.hidden"
    )
    assert c.alignment == "position"
    np.testing.assert_allclose(c.diff, want, atol=1e-6)
    # the forward direction cannot change before the edited token
    fwd = logic.compare(sentiment, SENTENCE, "i hate this movie so much", "rnn.0.fwd.cell")
    assert np.abs(fwd.diff[0]).max() == 0 and np.abs(fwd.diff[1]).max() > 0
    assert fwd.prediction["summary"] != fwd.perturbed_prediction["summary"]
    np.testing.assert_allclose(
        fwd.output_change,
        np.array(fwd.perturbed_prediction["probs"]) - fwd.prediction["probs"],
        atol=1e-12,
    )


def test_insertion_aligns_matched_tokens(sentiment):
    edited = "i love this great movie so much"
    c = logic.compare(sentiment, SENTENCE, edited, "rnn.0.fwd.cell")
    assert c.alignment == "matched tokens"
    assert c.pairs == [(0, 0), (1, 1), (2, 2), (3, 4), (4, 5), (5, 6)]
    v0 = _states(sentiment, SENTENCE, "rnn.0.fwd.cell")
    v1 = _states(sentiment, edited, "rnn.0.fwd.cell")
    np.testing.assert_allclose(c.diff[3], v1[4] - v0[3], atol=1e-6)  # "movie" vs "movie"
    assert c.perturbed_states.shape[0] == 7 and c.states.shape[0] == 6


def test_deletion_leaves_unpaired_steps_blank(parens):
    c = logic.compare(parens, "((12))", "((2))", "rnn.0.fwd.hidden")
    assert c.alignment == "matched tokens"
    unpaired = sorted(set(range(6)) - {i for i, _ in c.pairs})
    assert unpaired == [2] and np.isnan(c.diff[2]).all()
    assert np.isfinite(np.delete(c.diff, 2, axis=0)).all()


def test_moved_units_ranks_by_peak_change():
    diff = np.zeros((4, 5))
    diff[1, 3], diff[2, 0], diff[0, 4] = -2.0, 1.5, np.nan
    assert logic.moved_units(diff, 2) == [(3, 2.0, 1), (0, 1.5, 2)]


@pytest.mark.parametrize(
    ("name", "text", "args", "want"),
    [
        ("sentiment", "i love it", (1, "replace", "hate"), "i hate it"),
        ("sentiment", "i love it", (-1, "delete"), "i love"),
        ("parens", "(1)", (1, "insert", "2"), "(21)"),
        ("sunspots", "1, 2.5, 3", (1, "replace", "7"), "1, 7, 3"),
    ],
)
def test_edit_tokens(name, text, args, want):
    assert logic.edit_tokens(workbench.load(shipped(name)), text, *args) == want


def test_edit_tokens_errors(sentiment):
    for args in [(9, "delete"), (0, "replace", ""), ("x", "delete"), (0, "swap", "a")]:
        with pytest.raises(InputError):
            logic.edit_tokens(sentiment, "i love it", *args)


def test_zero_ablation_equals_intervene(parens):
    text, name, cells = "((1(2))0)", "rnn.0.fwd.cell", [1, 4, 9]
    a = logic.ablate(parens, text, name, cells, "zero", start=3)
    p = prepare(parens, text)
    direct = workbench.intervene(parens.model, *p.args, edits={name: zero(cells, 3)})
    torch.testing.assert_close(a.edited_output, direct.output[0])
    assert np.abs(a.edited_states[3:, cells]).max() == 0
    np.testing.assert_allclose(a.edited_states[:3], a.states[:3])
    probs = torch.softmax(direct.output[0][0, -1].double(), -1)
    idx = parens.tokenizer.encode(a.prediction["labels"])
    # the app's softmax runs in float32, this one in float64: float32 tolerance (probabilities
    # <= 1, a few float32 ulps; 5.7e-8 apart on a Sapphire Rapids Xeon)
    np.testing.assert_allclose(
        a.output_change, probs[idx].numpy() - np.array(a.prediction["probs"]), atol=1e-6
    )


def test_clamp_and_scale_bound_the_cells(sentiment):
    a = logic.ablate(sentiment, SENTENCE, "rnn.0.fwd.cell", [0, 5], "clamp", low=-0.1, high=0.1)
    assert a.edited_states[:, [0, 5]].min() >= -0.1 - 1e-7
    assert a.edited_states[:, [0, 5]].max() <= 0.1 + 1e-7
    s = logic.ablate(sentiment, SENTENCE, "rnn.0.fwd.hidden", [2], "scale", factor=0.0)
    assert np.abs(s.edited_states[:, 2]).max() == 0


def test_mean_ablation_uses_the_store_mean(parens, tmp_path):
    store = StateStore.build(parens, corpus("parens", "test")[:6], tmp_path / "s", progress=False)
    name, cells = "rnn.0.fwd.cell", [0, 3]
    whole = np.asarray(store.states(name).rows(0, store.n_tokens), dtype=np.float64)
    a = logic.ablate(parens, "((1)2)", name, cells, "mean", store=store)
    np.testing.assert_allclose(a.values, whole[:, cells].mean(0), rtol=1e-6)
    assert "corpus store" in a.mean_source
    np.testing.assert_allclose(a.edited_states[:, cells], np.tile(a.values, (6, 1)), atol=1e-6)
    b = logic.ablate(parens, "((1)2)", name, cells, "mean", store=None)
    assert "this input" in b.mean_source
    np.testing.assert_allclose(b.values, b.states[:, cells].mean(0), rtol=1e-6)


def test_ablation_errors(sentiment):
    with pytest.raises(InputError, match="no cells"):
        logic.ablate(sentiment, SENTENCE, "rnn.0.fwd.cell", [], "zero")
    with pytest.raises(InputError, match="out of range"):
        logic.ablate(sentiment, SENTENCE, "rnn.0.fwd.cell", [10_000], "zero")
    with pytest.raises(InputError, match="not recorded"):
        logic.ablate(sentiment, SENTENCE, "rnn.9.fwd.cell", [1], "zero")
    with pytest.raises(InputError, match="bound"):
        logic.ablate(sentiment, SENTENCE, "rnn.0.fwd.cell", [1], "clamp")


def test_forecaster_comparison_in_series_units():
    bundle = workbench.load(shipped("sunspots"))
    values = "40, 60, 80, 100, 90, 70, 50, 30, 20, 10"
    c = logic.compare(bundle, values, values.replace("90", "150"))
    assert c.alignment == "position" and c.name == "rnn.0.fwd.cell"
    assert np.abs(c.diff[:4]).max() == 0 and np.abs(c.diff[4]).max() > 0
    assert c.output_change[0] == pytest.approx(
        c.perturbed_prediction["forecast"] - c.prediction["forecast"]
    )
    with pytest.raises(InputError, match="perturbed input"):
        logic.compare(bundle, values, "40, sixty")


# ------------------------------------------------------------------------------ figures
def test_difference_heatmap_keeps_gaps_and_centres_zero():
    d = np.array([[0.5, -2.0], [np.nan, np.nan], [1.0, 0.0]])
    fig = viz.difference_heatmap(d, ["a", "<b>", "c"], units=[1, 0])
    z = np.array(fig.data[0].z, dtype=float)
    assert z.shape == (2, 3) and np.isnan(z[:, 1]).all()
    assert fig.data[0].zmin == -2.0 and fig.data[0].zmax == 2.0
    assert "&lt;b&gt;" in fig.layout.xaxis.ticktext
    with pytest.raises(ValueError):
        viz.difference_heatmap(d, units=[5])


def test_output_change_figure():
    fig = viz.output_change(["neg", "pos"], [0.2, 0.8], [0.7, 0.3])
    assert [t.name for t in fig.data] == ["original", "perturbed"]
    assert list(fig.data[1].y) == [0.7, 0.3]
    with pytest.raises(ValueError):
        viz.output_change(["a"], [1, 2], [1, 2])


# --------------------------------------------------------------------------------- page
@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return AppContext(corpus_tokens={"python": 2000}, cache=tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("name", ["python", "sentiment", "sunspots", "co2", "parens"])
def test_layout_renders_for_every_shipped_model(ctx, name):
    lay = page.layout(ctx, model=name, cells="1,x", mode="bogus", name="nope")
    text = json.dumps(lay.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder)
    assert "perturb-compare" in text and "perturb-ablate" in text
    assert '"value": "zero"' in text


def test_page_functions_render_or_explain(ctx):
    out = page.compare(ctx, "sentiment", SENTENCE, "i hate this movie so much", None)
    ids = [getattr(c, "id", None) for c in out]
    assert "perturb-diff" in ids and "perturb-moved" in ids
    out = page.compare(ctx, "sunspots", "1, 2", "1, x", None)
    assert out[0].className == "wb-error" and "not a number" in out[0].children
    out = page.intervene(ctx, "sentiment", SENTENCE, "rnn.0.fwd.cell", "3, 4", "zero")
    assert "perturb-ablate-diff" in [getattr(c, "id", None) for c in out]
    out = page.intervene(ctx, "sentiment", SENTENCE, "rnn.0.fwd.cell", "", "zero")
    assert "no cells" in out[0].children


def test_cells_field_keeps_a_readable_width(ctx):
    """In the flex row of intervention controls an unsized text field shrank to ~3 characters."""

    def find(node, wanted):
        if getattr(node, "id", None) == wanted:
            return node
        kids = getattr(node, "children", None)
        for kid in kids if isinstance(kids, (list, tuple)) else [kids]:
            if hasattr(kid, "to_plotly_json") and (hit := find(kid, wanted)) is not None:
                return hit
        return None

    field = find(page.layout(ctx, model="python"), "perturb-cells")
    assert field is not None
    assert (field.style or {}).get("width", "").endswith("em")


def test_states_selection_carries_its_window(tmp_path):
    bundle = workbench.load(shipped("parens"))
    path = tmp_path / "store"
    store = StateStore.build(bundle, corpus("parens", "test")[:3], path, progress=False)
    ctx = AppContext(models={"parens": shipped("parens")}, stores={"parens": path}, cache=tmp_path)
    sel = {"model": "parens", "name": "rnn.0.fwd.cell", "cells": [5, 2], "threshold": 0.3,
           "start": 70, "end": 80}  # fmt: skip
    model, name, cells, info, text, edited = page.use_selection(ctx, sel, "i love it")
    lo = max(int(store.boundaries[1]), 70 - 40)  # the brushed window, as Explain carries it
    assert (model, name, cells) == ("parens", "rnn.0.fwd.cell", "5, 2")
    assert text == edited == "".join(store.tokens(lo, 80)) and "[70, 80)" in info
    # without a window the typed text stays when it suits the model, else its example
    no_window = {k: v for k, v in sel.items() if k not in ("start", "end")}
    assert page.use_selection(ctx, no_window, "(())")[4] is page.no_update
    assert page.use_selection(ctx, no_window, "i love it")[4] != "i love it"
    assert "No cells" in page.use_selection(ctx, None, "x")[3]


def test_stale_results_script_compares_every_input():
    js = page.STALE_JS
    assert "WHAT" in js and "BUTTON" in js and "every" in js
    assert page._ABLATE_INPUTS[:3] == ("model", "text", "name")  # intervene()'s order
