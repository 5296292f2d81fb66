"""Notebook widgets: synced state holds the figures / data; the selection is the LSTMVis rule.

No Jupyter server is needed: a widget's state is what the front end receives
(``get_state``), and a front-end update arrives through ``set_state`` as in a kernel.
"""

import base64
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import traitlets
from report_fixtures import TOKENS, explanations, small_trace

import workbench
from workbench import viz
from workbench.store import search
from workbench.widgets import FigureWidget, MatchesWidget, TrajectoryWidget, figure_state, show


def _wire_state(widget) -> dict:
    """The state as sent over the comm (buffers split off), proving it is JSON."""
    from ipywidgets.widgets.widget import _remove_buffers

    state, paths, buffers = _remove_buffers(widget.get_state())
    json.dumps(state)
    return {"state": state, "paths": paths, "buffers": buffers}


def _decode(v) -> np.ndarray:
    """A plotly JSON array (plain list or ``{"dtype", "bdata", "shape"}``) as numpy."""
    if isinstance(v, dict):
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        shape = [int(x) for x in str(v.get("shape", len(arr))).split(",")]
        return arr.reshape(shape)
    return np.asarray(v)


def _figures() -> dict:
    rng = np.random.default_rng(0)
    v = rng.uniform(-1, 1, (30, 12))
    toks = [f"t{i}" for i in range(30)]
    slots = viz.trajectory_slots(v, toks, threshold=0.2)
    upd = viz.trajectory_selection(v, toks, [1, 2], brush=(3, 6), threshold=0.2)
    frame = pd.DataFrame({"name": ["g"] * 12, "unit": range(12), "left": rng.uniform(size=12),
                          "right": rng.uniform(size=12)})  # fmt: skip
    exps = explanations()
    return {
        "trajectories": viz.trajectories(v, toks, selected=[1, 4], brush=(2, 5)),
        "trajectory_slots": slots,
        "trajectory_selection": viz._app_figures.apply_selection(slots, upd),
        "gate_heatmap": viz.gate_heatmap(rng.uniform(size=(30, 12)), toks),
        "saturation_scatter": viz.saturation_scatter({"g": rng.uniform(size=(30, 12))}),
        "saturation_points": viz.saturation_points(frame),
        "attribution_heatmap": viz.attribution_heatmap(exps),
        "agreement_heatmap": viz.agreement_heatmap(np.eye(3), ["a", "b", "c"]),
        "deletion_curve": viz.deletion_curve({"lrp": [1.0, 0.6, 0.2]}),
        "attention_heatmap": viz.attention_heatmap(rng.uniform(size=(5, 5)), toks[:5]),
        "difference_heatmap": viz.difference_heatmap(rng.normal(size=(30, 12)), toks),
        "output_change": viz.output_change(["neg", "pos"], [0.3, 0.7], [0.6, 0.4]),
        "selection_counts": viz.selection_counts(rng.integers(0, 4, (2, 30)), ["l0", "l1"]),
        "track_strip": viz.track_strip(v[:, 0] > 0, toks, name="<b>in_literal</b>"),
        "aligned_heatmap": viz.aligned_heatmap(
            rng.uniform(size=(3, 4)),
            [["a", "b", "c", "d"]] * 3,
            ["#1", "#2", "#3"],
            name="strength",
        ),  # fmt: skip
        "length_histogram": viz.length_histogram([0, 0, 3, 1], [0, 0, 1, 1]),
        "projection_scatter": viz.projection_scatter(
            rng.normal(size=(20, 2)),
            rng.uniform(size=20),
            [f"p{i}" for i in range(20)],
            list(range(20)),
            colour_name="x",
        ),  # fmt: skip
        "unit_track": viz.unit_track(
            v[:, 0], v[:, 1] > 0, toks, unit_name="u0", track_name="on"
        ),  # fmt: skip
        "beam_tree": viz.beam_tree(
            [
                {"step": 0, "token": 1, "logprob": -0.1, "parent": -1, "finished": False},
                {"step": 1, "token": 2, "logprob": -0.3, "parent": 0, "finished": True},
            ],
            ["<s>", "a", "b"],
        ),  # fmt: skip
        "seq2seq_attention": viz.seq2seq_attention(
            rng.dirichlet(np.ones(3), 3), ["K", "AE", "</s>"], list("cat"), forced=1
        ),
        "seq2seq_relevance": viz.seq2seq_relevance(
            rng.normal(size=(2, 3)), ["lrp", "occlusion"], ["c", "<a>", '"']
        ),
        **_memory_figures(rng),
        **_compare_figures(rng, frame),
    }


def _compare_figures(rng, frame):
    matches = pd.DataFrame({"unit": [0, 1], "match": [3, 2], "r": [0.9, -0.5]})
    cells = pd.DataFrame({"track": ["in_string"], "method": ["corr"], "unit_a": [1],
                          "score_a": [0.5], "unit_b": [2], "score_b": [-0.4],
                          "match_of_a": [2], "r_match": [0.6], "same": [True]})  # fmt: skip
    return {
        "bpc_bars": viz.bpc_bars([("<b>lstm</b>", 1.6), ("gru", 2.4)]),
        "cka_heatmap": viz.cka_heatmap(rng.uniform(size=(2, 3)), ["a", "b"], ["x", "y", "z"]),
        "unit_match_table": viz.unit_match_table(matches),
        "cell_counterparts_table": viz.cell_counterparts_table(cells),
        "saturation_side_by_side": viz.saturation_side_by_side([frame, frame.iloc[:0]], ["a", "b"]),
    }


def _memory_figures(rng):
    from workbench import memory
    from workbench.memory._time_scales import TimeScales, tau_of

    curve = memory.summarize("input gradient norm", rng.uniform(0.1, 1.0, (8, 12)))
    gate = rng.uniform(0.5, 0.99, (4, 6))
    ts = TimeScales("rnn.0.fwd.forget_gate", tau_of(gate.mean(0)), tau_of(gate), gate.mean(0),
                    400, 100)  # fmt: skip
    return {
        "memory_curves": viz.memory_curves({"<b>model</b>": curve}),
        "time_scale_histogram": viz.time_scale_histogram([ts]),
        "time_scale_ranking": viz.time_scale_ranking(ts, top=3, efold=np.arange(6.0)),
    }


def test_memory_curves_show_as_a_figure_widget():
    from workbench import memory

    curve = memory.summarize("x", np.random.default_rng(0).uniform(size=(5, 7)))
    w = show({"m": curve})
    assert isinstance(w, FigureWidget)
    assert w.figure == figure_state(viz.memory_curves({"m": curve}))


def test_every_viz_figure_renders_through_the_widget_path():
    figures = _figures()
    public = {n for n in viz.__all__ if callable(getattr(viz, n))}
    not_figures = {"display_token", "select_cells", "saturation"}
    assert public - not_figures - set(figures) == set(), "a viz figure has no widget test"
    for name, fig in figures.items():
        w = show(fig)
        assert isinstance(w, FigureWidget), name
        assert w.figure == figure_state(fig), name
        wire = _wire_state(w)["state"]
        assert wire["figure"]["data"] == json.loads(fig.to_json())["data"], name
        # the synced state rebuilds the same figure
        assert w.to_figure().to_json() == go.Figure(json.loads(fig.to_json())).to_json(), name


def test_figure_widget_serves_plotly_from_the_installed_package(monkeypatch):
    from plotly.offline import get_plotlyjs

    w = FigureWidget(viz.output_change(["a"], [0.1], [0.2]))
    sent = []
    monkeypatch.setattr(w, "send", lambda content, buffers=None: sent.append((content, buffers)))
    w._handle_custom_msg({"type": "something else"}, [])
    assert sent == []
    w._handle_custom_msg({"type": "wb-plotly-request"}, [])
    ((content, buffers),) = sent
    assert content == {"type": "wb-plotly"}
    assert bytes(buffers[0]).decode("utf-8") == get_plotlyjs()
    esm = w.get_state()["_esm"]
    assert "http://" not in esm and "https://" not in esm and "import " not in esm


def test_figure_widget_update_and_validation():
    w = FigureWidget(viz.output_change(["a"], [0.1], [0.2]))
    w.update(viz.deletion_curve({"m": [1.0, 0.5]}))
    assert w.figure["data"][0]["name"].startswith("m (AOPC")
    with pytest.raises(traitlets.TraitError, match="update"):
        w.figure = {"nope": 1}
    with pytest.raises(TypeError, match="plotly Figure"):
        FigureWidget(np.zeros(3))


def test_trace_widget_holds_the_recorded_states_and_tokens():
    trace = small_trace()
    w = show(trace)
    assert isinstance(w, TrajectoryWidget)
    assert w.name == "rnn.1.fwd.hidden"
    wire = _wire_state(w)
    assert wire["paths"] == [["values"]]  # the states travel as one binary buffer
    sent = np.frombuffer(bytes(wire["buffers"][0]), dtype="<f4").reshape(w.time, w.units)
    np.testing.assert_array_equal(sent, trace["rnn.1.fwd.hidden"][0].numpy().astype(np.float32))
    assert w.tokens == [str(t) for t in TOKENS]
    assert wire["state"]["tokens"][0] == "<script>alert(1)</script>"  # text, escaped by the DOM
    assert show(trace, name="rnn.0.fwd.cell").name == "rnn.0.fwd.cell"
    with pytest.raises(ValueError, match="pick one of"):
        show(trace, name="nope")


@pytest.mark.parametrize("seed", range(6))
def test_selection_equals_select_cells(seed):
    rng = np.random.default_rng(seed)
    time, units = 60, 40
    v = rng.uniform(-1, 1, (time, units)).astype(np.float32)
    # some units really on over a range and off around it
    a = int(rng.integers(5, 40))
    v[a : a + 6, :5] = 0.9
    v[a - 3 : a, :5] = -0.5
    v[a + 6 : a + 9, :5] = -0.5
    w = TrajectoryWidget(v)
    assert w.selected_cells == []
    for _ in range(40):
        start = int(rng.integers(0, time - 1))
        end = int(rng.integers(start + 1, min(time, start + 10) + 1))
        thr = float(rng.choice([0.3, 0.0, -0.2, 0.5, float(v[start, 0])]))
        pad = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
        w.pad = list(pad)
        w.threshold = thr
        w.brush = [start, end]
        expected = viz.select_cells(v, start, end, threshold=thr, pad=pad).tolist()
        assert w.selected_cells == expected
        assert expected == search.select_cells(v, start, end, thr, pad).tolist()
    w.pad, w.threshold = [1, 1], 0.3
    assert w.select(a, a + 6) == list(range(5))
    w.brush = []
    assert w.selected_cells == []


def test_traits_from_python_update_the_selection():
    v = np.full((10, 3), -1.0, dtype=np.float32)
    v[4:6, 0] = 0.5  # unit 0 on over [4, 6)
    v[4:6, 1] = 0.2  # unit 1 only above a lower threshold
    v[3:6, 2] = 0.5  # unit 2 on already at step 3
    w = TrajectoryWidget(v, brush=(4, 6))
    assert w.selected_cells == [0]
    w.threshold = 0.1
    assert w.selected_cells == [0, 1]
    w.pad = [0, 0]
    assert w.selected_cells == [0, 1, 2]
    w.brush = [3, 6]
    assert w.selected_cells == [2]
    for bad in ([5, 5], [0, 11], [-1, 2]):
        with pytest.raises(traitlets.TraitError, match="brush"):
            w.brush = bad
    with pytest.raises(traitlets.TraitError, match="pad"):
        w.pad = [-1, 0]
    with pytest.raises(traitlets.TraitError, match="finite"):
        w.threshold = float("nan")


def test_front_end_updates_arrive_like_in_a_kernel():
    v = np.random.default_rng(1).uniform(-1, 1, (50, 30)).astype(np.float32)
    w = TrajectoryWidget(v)
    # what the comm handler does with an "update" message from the browser
    w.set_state({"brush": [10, 14], "threshold": 0.05, "pad": [2, 0], "selected_cells": []})
    assert w.selected_cells == viz.select_cells(v, 10, 14, threshold=0.05, pad=(2, 0)).tolist()
    assert w.brush == [10, 14] and w.threshold == 0.05 and w.pad == [2, 0]


def test_widget_input_errors_name_the_fix():
    with pytest.raises(ValueError, match="time, units"):
        TrajectoryWidget(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="one token per step"):
        TrajectoryWidget(np.zeros((5, 2)), ["a"])
    with pytest.raises(TypeError, match="cannot show"):
        show(object())


def test_explanations_widget_is_the_attribution_heatmap():
    exps = explanations()
    w = show(exps)
    z = _decode(w.figure["data"][0]["z"])
    raw = np.stack([e.attributions[0].numpy() for e in exps])
    np.testing.assert_allclose(z, raw / np.abs(raw).max(1, keepdims=True))
    assert w.figure == figure_state(viz.attribution_heatmap(exps))
    assert show(exps[0]).figure["data"][0]["y"] == ["integrated_gradients"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from workbench.data import corpus
    from workbench.models.checkpoint import shipped

    bundle = workbench.load(shipped("parens"))
    docs = corpus("parens", "test")[:30]
    return workbench.StateStore.build(bundle, docs, tmp_path_factory.mktemp("w") / "s",
                                      progress=False)  # fmt: skip


def test_store_document_and_slice_widgets(store):
    name = "rnn.0.fwd.cell"
    doc = store.document(3)
    w = show(doc, name=name, threshold=0.2)
    np.testing.assert_array_equal(w.states, doc.states(name).astype(np.float32))
    assert w.tokens == doc.tokens and w.threshold == 0.2
    ws = show(store, name=name, start=100, end=180)
    np.testing.assert_array_equal(ws.states, store.states(name).rows(100, 180))
    assert ws.tokens == store.tokens(100, 180)
    assert show(store).name.startswith("rnn.0.fwd.hidden")
    wd = show(store.slice(0, 50), tokens=store.tokens(0, 50), name=name)
    assert wd.states.shape == (50, store.states(name).shape[1])
    with pytest.raises(ValueError, match="token range"):
        show(store, start=10, end=10**9)


def test_brushed_cells_feed_the_match_widget(store):
    name = "rnn.0.fwd.cell"
    doc = store.document(0)
    w = show(doc, name=name)
    for start in range(len(doc) - 3):  # find a brush that selects something
        if w.select(start, start + 2):
            break
    cells = w.selected_cells
    assert cells == store.select_cells(name, 0, *w.brush, 0.3, (1, 0)).tolist()
    m = store.match(name, cells, top_k=8)
    mw = show(m, store=store, context=3)
    assert isinstance(mw, MatchesWidget) and len(mw.rows) == len(m)
    for row, (s, e) in zip(mw.rows, m.spans(), strict=True):
        assert row["span"] == store.tokens(s, e)
        assert row["global_start"] == s and row["length"] == e - s
        d = store.document(row["document"])
        assert d.start + row["start"] == s
        assert row["before"] == store.tokens(max(d.start, s - 3), s)
    mw.selected = 1
    assert mw.selected_span == m.spans()[1]
    assert "cells [" in mw.caption
    json.dumps(_wire_state(mw)["state"])


def test_serve_passes_jupyter_mode_to_dash(monkeypatch):
    import dash

    calls = []
    monkeypatch.setattr(dash.Dash, "run", lambda self, **kw: calls.append(kw))
    app = dash.Dash(__name__)
    app.layout = dash.html.Div("x")
    assert workbench.serve(app=app, jupyter_mode="inline", port=8123) is app
    assert calls == [{"host": "127.0.0.1", "port": 8123, "debug": False, "jupyter_mode": "inline"}]


def test_serve_uses_waitress_unless_debugging(monkeypatch):
    """A real server in a child process: waitress answers on 127.0.0.1 (serve blocks)."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import dash

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import dash, workbench; app = dash.Dash('x'); app.layout = dash.html.Div('x'); "
        f"workbench.serve(app=app, port={port})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        for _ in range(600):  # bounded: at most ~10 minutes of 1 s polls
            if proc.poll() is not None:
                pytest.fail(f"serve exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
                    assert r.status == 200 and r.headers["Server"] == "waitress"
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("serve never answered")
    finally:
        proc.terminate()
        proc.wait(30)
    calls = []
    monkeypatch.setattr(dash.Dash, "run", lambda self, **kw: calls.append(("dash", kw)))
    app = dash.Dash(__name__)
    app.layout = dash.html.Div("x")
    workbench.serve(app=app, port=port, debug=True)
    assert calls == [("dash", {"host": "127.0.0.1", "port": port, "debug": True})]


def test_show_is_public():
    assert workbench.show is show
    assert "show" in workbench.__all__ and "serve" in workbench.__all__
