"""Explain page logic against independent computations, on the shipped models."""

import json

import numpy as np
import plotly
import pytest
import torch
from scipy.stats import spearmanr

import workbench
from workbench.app import AppContext
from workbench.app import _explain_logic as logic
from workbench.app.pages import explain as page
from workbench.data import corpus
from workbench.data import series as series_mod
from workbench.explainers import METHODS, Target, explain
from workbench.explainers._base import Method
from workbench.explainers.metrics import perturbation_curve
from workbench.models.checkpoint import shipped
from workbench.store import StateStore

SENTENCE = "the food was great but the service was slow and rude"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return AppContext(
        corpus_tokens={"python": 2000, "sentiment": 2000, "parens": 2000},
        cache=tmp_path_factory.mktemp("cache"),
    )


@pytest.fixture(scope="module")
def sentiment():
    return workbench.load(shipped("sentiment"))


class Broken(Method):
    """A registered method that fails for real inside ``explain``."""

    name = "broken"

    def _attribute(self, problem, scorer):
        raise RuntimeError("broken on purpose")


# ---------------------------------------------------------------------------- inputs
def test_prepare_text_matches_bundle_encode(sentiment):
    p = logic.prepare(sentiment, SENTENCE)
    ids, lengths = sentiment.encode([SENTENCE])
    assert torch.equal(p.inputs, ids) and torch.equal(p.kwargs["lengths"], lengths)
    assert p.tokens == sentiment.tokenize(SENTENCE)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "empty"), ("   ", "empty"), ("zzqx qqzzv", "vocabulary"), ("good " * 400, "limit")],
)
def test_prepare_rejects_user_mistakes(sentiment, text, fragment):
    with pytest.raises(logic.InputError, match=fragment):
        logic.prepare(sentiment, text)


@pytest.mark.parametrize("text", ["1, 2, abc", "", "1, nan", "1, inf"])
def test_series_rejects_bad_values(text):
    bundle = workbench.load(shipped("sunspots"))
    with pytest.raises(logic.InputError):
        logic.prepare(bundle, text)


@pytest.mark.parametrize("name", ["sunspots", "co2"])
def test_series_scaling_matches_training_windows(name):
    """Raw values typed in the page become exactly the model's training inputs."""
    bundle = workbench.load(shipped(name))
    sc = bundle.config["scaling"]
    s = getattr(series_mod, name)()
    x, _ = s.windows("test", sc["window"], relative=sc.get("relative", False))
    lo = max(sc["window"], s.cuts[1])
    raw = s.values[lo - sc["window"] : lo]
    p = logic.prepare(bundle, ", ".join(repr(float(v)) for v in raw))
    np.testing.assert_allclose(p.inputs[0, :, 0].numpy(), x[0, :, 0], atol=1e-5)
    with torch.no_grad():
        scaled = float(bundle.model(torch.from_numpy(x[:1]))[0, 0])
    shift = (raw[-1] - s.mean) / s.std if sc.get("relative") else 0.0
    pred = logic.predict(bundle, p)
    assert pred["forecast"] == pytest.approx((scaled + shift) * s.std + s.mean, rel=1e-4)


def test_classifier_prediction_is_softmax(sentiment):
    p = logic.prepare(sentiment, SENTENCE)
    with torch.no_grad():
        probs = torch.softmax(sentiment.model(*p.args, **p.kwargs).double(), -1)[0]
    pred = logic.predict(sentiment, p)
    np.testing.assert_allclose(pred["probs"], probs.numpy(), rtol=1e-6)
    assert pred["labels"][pred["predicted"]] in pred["summary"]


@pytest.mark.parametrize("name", ["python", "sentiment", "sunspots", "co2", "parens"])
def test_examples_are_real_and_valid(ctx, name):
    bundle = ctx.bundle(name)
    found = logic.examples_for(bundle, ctx.corpus_name(name))
    assert len(found) >= 2
    for text in found:
        assert len(logic.prepare(bundle, text)) <= logic.MAX_STEPS


# --------------------------------------------------------------------------- methods
def test_panel_numbers_equal_workbench_explain(sentiment):
    result = logic.explain_all(sentiment, SENTENCE, ["integrated_gradients", "lrp", "occlusion"])
    p = result["prepared"]
    for m, r in result["results"].items():
        assert r.ok, r.error
        direct = explain(sentiment.model, p.inputs, None, m, **logic.APP_SETTINGS.get(m, {}),
                         **p.kwargs)  # fmt: skip
        torch.testing.assert_close(r.explanation.attributions, direct.attributions)
        curve = perturbation_curve(sentiment.model, p.inputs, direct, points=11, **p.kwargs)
        # float32 scores, from explanations equal to float32 rounding: float32 tolerance
        assert float(r.curve["aopc"][0]) == pytest.approx(float(curve["aopc"][0]), abs=1e-5)
    ig = result["results"]["integrated_gradients"]
    c = ig.checks  # completeness: sum - (F(x) - F(baseline))
    assert c["delta"] == pytest.approx(c["sum"] - (c["output"] - c["baseline_output"]), abs=1e-4)
    lrp = result["results"]["lrp"].checks  # conservation
    assert lrp["output"] == pytest.approx(
        lrp["sum"] + lrp["initial_state_relevance"] + lrp["delta"], abs=1e-5
    )


def test_agreement_is_spearman_of_attributions(sentiment):
    result = logic.explain_all(sentiment, SENTENCE, ["saliency", "lrp", "occlusion"], curves=False)
    names, matrix = result["agreement"]
    rows = {m: result["results"][m].explanation.attributions[0].numpy() for m in names}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            want = 1.0 if i == j else spearmanr(rows[a], rows[b]).statistic
            assert matrix[i, j] == pytest.approx(want, abs=1e-9)


def test_failing_method_keeps_the_others(sentiment, monkeypatch):
    monkeypatch.setitem(METHODS, "broken", Broken)
    result = logic.explain_all(sentiment, SENTENCE, ["saliency", "broken", "lrp"])
    r = result["results"]
    assert not r["broken"].ok and "broken on purpose" in r["broken"].error
    assert r["saliency"].ok and r["lrp"].ok and r["lrp"].curve is not None
    assert result["agreement"][0] == ["saliency", "lrp"]
    # and through the page: an error panel beside the working heatmap
    children = page.render(result)
    text = json.dumps([c.to_plotly_json() for c in children], cls=plotly.utils.PlotlyJSONEncoder)
    assert "explain-panel-broken" in text and "broken on purpose" in text
    assert "explain-heatmap" in text and "explain-panel-lrp" in text


def test_bad_settings_fail_in_their_panel(sentiment):
    p = logic.prepare(sentiment, SENTENCE)
    r = logic.run_methods(sentiment, p, ["occlusion", "saliency"], None,
                          {"occlusion": {"no_such_setting": 3, "window": 0}})  # fmt: skip
    assert not r["occlusion"].ok and r["saliency"].ok


def test_cells_target_explains_the_recorded_units(sentiment):
    sel = {"name": "rnn.0.fwd.cell", "cells": [3, 7], "step": 4}
    target = logic.target_from("cells", sel)
    assert target == Target("rnn.0.fwd.cell", (3, 7), 4)
    result = logic.explain_all(sentiment, SENTENCE, ["integrated_gradients"], "cells", sel)
    e = result["results"]["integrated_gradients"].explanation
    p = result["prepared"]
    trace = workbench.record(sentiment.model, *p.args, **p.kwargs)
    want = float(trace["rnn.0.fwd.cell"][0, 4, [3, 7]].sum())
    assert float(e.output[0]) == pytest.approx(want, abs=1e-5)
    assert e.attributions[0, 5:].abs().max() == 0  # steps after 4 cannot matter (forward)
    with pytest.raises(logic.InputError, match="no cells"):
        logic.target_from("cells", None)
    assert logic.target_from("class:2") == 2 and logic.target_from("prediction") is None


def test_selection_window_stays_in_its_document(tmp_path):
    bundle = workbench.load(shipped("parens"))
    docs = corpus("parens", "test")[:4]
    store = StateStore.build(bundle, docs, tmp_path / "store", progress=False)
    bounds = store.boundaries
    start = int(bounds[1]) + 2  # just inside document 1
    tokens, step = logic.selection_input(store, {"start": start, "end": start + 5})
    assert tokens == store.tokens(int(bounds[1]), start + 5)
    assert step == len(tokens) - 1
    with pytest.raises(logic.InputError):
        logic.selection_input(store, {"start": 5, "end": 10**9})


# ---------------------------------------------------------------------------- layout
@pytest.mark.parametrize("name", ["python", "sentiment", "sunspots", "co2", "parens"])
def test_layout_renders_for_every_shipped_model(ctx, name):
    lay = page.layout(ctx, model=name)
    text = json.dumps(lay.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder)
    assert "explain-run" in text and "explain-methods" in text
    assert f"up to {logic.MAX_STEPS}" in text


def test_layout_ignores_malformed_query(ctx):
    lay = page.layout(ctx, model="nope", methods="x,,lrp", cells="a,b", step="zz", extra="1")
    text = json.dumps(lay.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder)
    assert '"value": ["lrp"]' in text
    lay = page.layout(ctx, model="sentiment", name="rnn.0.fwd.cell", cells="3,7", step="zz")
    text = json.dumps(lay.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder)
    assert '"cells": [3, 7]' in text and '"value": "cells"' in text


def test_page_run_shows_user_errors_as_messages(ctx):
    out = page.run(ctx, "sunspots", "1, 2, banana", ["lrp"], "prediction", None)
    assert out[0].className == "wb-error" and "not a number" in out[0].children
    out = page.run(ctx, "sentiment", SENTENCE, [], "prediction", None)
    assert "at least one method" in out[0].children
    out = page.run(ctx, "sentiment", SENTENCE, ["lrp"], "cells", None)
    assert "no cells" in out[0].children


def test_explain_these_cells_uses_the_brushed_window(tmp_path):
    bundle = workbench.load(shipped("parens"))
    path = tmp_path / "store"
    store = StateStore.build(bundle, corpus("parens", "test")[:3], path, progress=False)
    ctx = AppContext(models={"parens": shipped("parens")}, stores={"parens": path}, cache=tmp_path)
    sel = {"model": "parens", "name": "rnn.0.fwd.cell", "cells": [2, 5], "threshold": 0.3,
           "start": 70, "end": 80}  # fmt: skip
    cells, model, text, target, info = page.use_selection(ctx, sel, "ignored")
    lo = max(int(store.boundaries[1]), 70 - 40)
    assert model == "parens" and target == "cells" and "rnn.0.fwd.cell" in info
    assert text == "".join(store.tokens(lo, 80)) and cells["step"] == 80 - 1 - lo
    result = logic.explain_all(bundle, text, ["lrp", "occlusion"], target, cells, curves=False)
    trace = workbench.record(bundle.model, *result["prepared"].args)
    want = float(trace["rnn.0.fwd.cell"][0, cells["step"], [2, 5]].sum())
    for method in ("lrp", "occlusion"):  # LRP explains cell units too (float64 vs float32)
        e = result["results"][method].explanation
        assert float(e.output[0]) == pytest.approx(want, abs=1e-5)
    # the typed window reproduces the store's own states (same document start, no carry)
    np.testing.assert_allclose(
        trace["rnn.0.fwd.cell"][0].numpy(),
        store.states("rnn.0.fwd.cell").rows(lo, 80),
        rtol=2e-3,
        atol=2e-3,
    )
    nothing = page.use_selection(ctx, None, "x")
    assert "No cells" in nothing[-1]


# ------------------------------------------------------------ targets methods cannot explain
def test_gate_targets_skip_lrp_with_the_reason(ctx, sentiment):
    gate = {"name": "rnn.0.fwd.forget_gate", "cells": [1, 2], "step": -1}
    skip = logic.unsupported(sentiment, "cells", gate)
    assert list(skip) == ["lrp"] and "gates" in skip["lrp"]
    assert logic.unsupported(sentiment, "cells", {**gate, "name": "rnn.0.fwd.hidden"}) == {}
    assert logic.unsupported(sentiment, "prediction", gate) == {}
    result = logic.explain_all(sentiment, SENTENCE, ["lrp", "saliency"], "cells", gate,
                               curves=False)  # fmt: skip
    assert result["results"]["lrp"].skipped == skip["lrp"] and not result["results"]["lrp"].ok
    assert result["results"]["saliency"].ok
    text = json.dumps(page.render(result), cls=plotly.utils.PlotlyJSONEncoder)
    assert "not run: LRP gives gates no relevance" in text and "explain-heatmap" in text
    lay = page.layout(ctx, model="sentiment", name="rnn.0.fwd.forget_gate", cells="1,2")
    opts = next(o for o in _find(lay, "explain-methods").options if o["value"] == "lrp")
    assert opts["disabled"] and "lrp" not in _find(lay, "explain-methods").value


def _find(component, cid):
    if getattr(component, "id", None) == cid:
        return component
    kids = getattr(component, "children", None)
    for kid in kids if isinstance(kids, list) else [kids]:
        if kid is not None and not isinstance(kid, (str, int, float)):
            found = _find(kid, cid)
            if found is not None:
                return found
    return None


# ------------------------------------------------------------ integrated gradients' delta
def test_large_ig_delta_warns_and_offers_more_steps():
    parens = workbench.load(shipped("parens"))
    text = "((2((4)))1)000000(1)((22(()3()3))())0((())1(22(()3())2222(33"
    settings = {"integrated_gradients": {"n_steps": 32}}
    result = logic.explain_all(parens, text, ["integrated_gradients"], curves=False,
                               settings=settings)  # fmt: skip
    r = result["results"]["integrated_gradients"]
    e = r.explanation
    rel = abs(float(e.delta[0])) / abs(float(e.output[0]) - r.checks["baseline_output"])
    assert rel > logic.IG_DELTA_WARN and r.checks["relative_delta"] == pytest.approx(rel)
    warning = page._ig_warning(r)
    assert warning is not None and warning.id == "explain-ig-warning"
    assert f"{rel:.0%}" in warning.children[0].children
    assert warning.children[1].children == "Rerun with 128 steps"
    assert logic.more_steps(128) == 512 and logic.more_steps(512) == 512
    quiet = logic.explain_all(parens, "(())", ["integrated_gradients"], curves=False)
    q = quiet["results"]["integrated_gradients"]
    assert q.checks["relative_delta"] <= logic.IG_DELTA_WARN and page._ig_warning(q) is None


@pytest.mark.parametrize("bad", ["0", "3", "513", "12.5", "many", float("nan")])
def test_ig_steps_are_bounded(bad):
    with pytest.raises(logic.InputError, match="IG steps must be a whole number from 4 to 512"):
        logic.ig_steps(bad)
    assert logic.ig_steps("64") == 64 and logic.ig_steps(None) == 32
