"""The Dash app without a browser: page layouts and callback functions on real small stores.

Stores are built from the shipped models on small slices of their test corpora (seconds);
selections, counts and matches are compared with independent computations on the same
arrays (``workbench.viz.select_cells``, numpy).
"""

import json
from urllib.parse import parse_qsl

import numpy as np
import plotly
import pytest
from app_fixtures import small_context

from workbench.app import AppContext, create_app
from workbench.app import _states_logic as logic
from workbench.app.pages import gates, model, projection, states
from workbench.viz import select_cells
from workbench.viz._app_figures import apply_selection, trajectory_selection, trajectory_slots

DEMO = ("python", "sentiment", "sunspots", "co2", "parens")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return small_context(tmp_path_factory)


@pytest.fixture(scope="module")
def app(ctx):
    return create_app(ctx)


def _json(component) -> str:
    return json.dumps(component.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder)


def _text(component) -> str:
    return _json(component)


def _brush(store, name, threshold=0.3, pad=(1, 0), width=3):
    """A brush inside one document that selects at least one cell (searched, not assumed)."""
    b = store.boundaries
    for d in range(store.n_docs):
        lo, hi = int(b[d]), int(b[d + 1])
        values = store.document(d).states(name)
        for a in range(0, hi - lo - width, 7):
            if select_cells(values, a, a + width, threshold=threshold, pad=pad).size:
                return lo + a, lo + a + width
    pytest.skip(f"no brush selects a cell of {name}")


# ------------------------------------------------------------------------ pages render
@pytest.mark.parametrize("name", DEMO)
def test_every_page_renders_for_every_demo_model(ctx, name):
    assert ctx.store(name) is not None, f"demo store of {name} was not built"
    for page in (states, projection, gates, model):
        out = _text(page.layout(ctx, model=name))
        assert "Traceback" not in out
        assert "unknown model" not in out and "No state store" not in out
    figs, styles, record, info, message = states.render_view(
        ctx, name, None, "fwd", "hidden", 0, 100, 0.3
    )
    assert record["model"] == name and message == ""
    assert len(figs[0]["data"]) == 1 + 10 and len(figs[0]["data"][0]["x"]) > 0
    assert styles[0] == {"display": "block"} and styles[-1] == {"display": "none"}


def test_routing_and_static_css(app):
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    css = client.get("/assets/workbench.css")
    assert css.status_code == 200 and b".wb-nav" in css.data
    names = [p.__name__.rsplit(".", 1)[-1] for p in __import__(
        "workbench.app._factory", fromlist=["_pages"])._pages()]  # fmt: skip
    assert names[:1] == ["states"] and {"projection", "gates", "model"} <= set(names)


@pytest.mark.parametrize(
    "query",
    [
        {"model": "nope"},
        {"start": "abc", "end": "-5", "threshold": "nan"},
        {"threshold": "inf", "pad": "x", "brush": "1,x", "cells": "a,b"},
        {"name": "rnn.9.fwd.hidden,<script>", "pad": "-1,2", "start": "99999999"},
        {"brush": "5,2"},
    ],
)
def test_malformed_query_params_show_messages_never_raise(ctx, query):
    out = _text(states.layout(ctx, **query))
    assert "wb-states" in out
    view = logic.parse_query(ctx, **query)
    assert view.problems or "brush" in query
    assert 0 <= view.start <= ctx.store(view.model).n_tokens
    for page in (projection, gates, model):
        assert "Traceback" not in _text(page.layout(ctx, **query))
    if query.get("brush") == "5,2":  # a reversed brush -> a message, no selection
        rec = {"model": view.model, "names": view.names, "start": 0, "size": 100}
        a, b = (int(x) for x in query["brush"].split(","))
        out = states.update_selection(ctx, rec, 0.3, 1, 0, a, b)
        assert "brush" in out["message"] and out["selection"] is None


def test_url_round_trips_the_view_state(ctx):
    store = ctx.store("python")
    view = logic.ViewState("python", ["rnn.0.fwd.cell", "rnn.1.fwd.hidden"], start=120,
                           size=200, threshold=0.25, pad=(2, 1), brush=(130, 134),
                           cells=[3, 17], scale="tanh", track="depth_paren")  # fmt: skip
    again = logic.parse_query(ctx, **dict(parse_qsl(view.query().lstrip("?"))))
    assert again.problems == []
    for field in ("model", "names", "start", "size", "threshold", "pad", "brush", "cells",
                  "scale", "track"):  # fmt: skip
        assert getattr(again, field) == getattr(view, field), field
    assert store.n_tokens >= view.end
    bad = logic.parse_query(ctx, model="python", scale="log")
    assert bad.scale == "auto" and "scale" in bad.problems[0]
    bad = logic.parse_query(ctx, model="python", name="rnn.0.fwd.cell", track="<b>")
    assert bad.track is None and "track" in bad.problems[0]


def test_the_python_tracks_are_in_every_meta_track_picker_and_the_report(ctx):
    from workbench.data.python_source import TRACKS
    from workbench.reports import matches_section

    store = ctx.store("python")
    assert store.meta_tracks == list(TRACKS)
    name = "rnn.0.fwd.cell"
    pickers = {
        "states": (states.layout(ctx, model="python", name=name), ["states-match-track",
                                                                    "states-track"]),
        "gates": (gates.layout(ctx, model="python"), None),
        "projection": (projection.layout(ctx, model="python"), None),
        "model": (model.layout(ctx, model="python"), None),
    }  # fmt: skip
    for page, (component, ids) in pickers.items():
        text = _text(component)
        for t in ("in_docstring", "in_literal", "in_comment", "is_code", "depth_paren",
                  "depth_square", "depth_curly"):  # fmt: skip
            assert t in text, (page, t)
        for i in ids or []:
            assert f'"id": "{i}"' in text, (page, i)
    m = store.match(name, [164], threshold=0.3, top_k=3)
    assert len(m)
    sec = matches_section(m, store, name=name, threshold=0.3, pad=(1, 0))
    joined = " ".join(sec.text) if isinstance(sec.text, list) else str(sec.text)
    assert all(f"{t} " in joined for t in ("in_literal", "in_docstring", "is_code")), joined


def test_the_python_store_opens_on_its_string_literal_cell(ctx):
    from workbench.store._specialists import literal_window

    store = ctx.store("python")
    view = logic.parse_query(ctx, model="python")
    assert view.names == ["rnn.0.fwd.cell"] and view.cells == [164]
    assert view.track == "in_literal" and view.problems == []
    inside = store.meta("in_literal")[view.start : view.end]
    code = store.meta("is_code")[view.start : view.end]
    assert inside.any() and code.any()
    # the window is the rule's best: the cell separates literal from code steps there
    x = store.states("rnn.0.fwd.cell").rows(view.start, view.end, [164])[:, 0]
    gap = x[code].mean() - x[inside].mean()
    assert gap > 0.3, gap  # the cell is lower inside literals (AUC 0.05)
    n = min(store.n_tokens, logic.LITERAL_SEARCH)
    full = store.states("rnn.0.fwd.cell").rows(0, n, [164])[:, 0]
    assert view.start == literal_window(store.meta("in_literal")[:n],
                                        store.meta("is_code")[:n], full, view.size)  # fmt: skip
    # any position, quantity, brush or cells in the URL is the user's view, not the default
    assert logic.parse_query(ctx, model="python", start="0").cells is None
    assert logic.parse_query(ctx, model="parens").track is None  # no known cell there
    rec = {"model": "python", "names": view.names, "start": view.start, "size": view.size}
    fig, style = states.track_figure(ctx, rec, "in_literal")
    assert style == {"display": "block"}
    assert np.array_equal(np.asarray(fig.data[0].z)[0], inside.astype(float))
    out = states.update_selection(ctx, rec, 0.3, 1, 0, None, None, [164], track="in_literal")
    assert "track=in_literal" in out["query"] and "cells=164" in out["query"]
    layout = _text(states.layout(ctx))
    assert '"value": "in_literal"' in layout


# --------------------------------------------------------------------------- selection
@pytest.mark.parametrize("name", ["python", "parens", "sentiment"])
def test_selection_equals_select_cells_on_the_same_arrays(ctx, name):
    store = ctx.store(name)
    layer = logic.default_names(store.names)[0]
    other = [n for n in store.names if n.endswith(".cell")][0]
    a, b = _brush(store, layer)
    start = max(a - 20, 0)
    rec = {"model": name, "names": [layer, other], "start": start, "size": 100}
    out = states.update_selection(ctx, rec, 0.3, 1, 0, a, b)
    assert out["message"] == ""
    d = logic.document_of(store, a)
    lo = int(store.boundaries[d])
    for n in (layer, other):
        expected = select_cells(store.document(d).states(n), a - lo, b - lo, threshold=0.3,
                                pad=(1, 0))  # fmt: skip
        assert out["cells"][n] == expected.tolist()
        assert store.select_cells(n, d, a - lo, b - lo).tolist() == expected.tolist()
    sel = out["selection"]
    assert sel["cells"] == out["cells"][layer] and (sel["start"], sel["end"]) == (a, b)
    assert sel["model"] == name and sel["name"] == layer
    q = dict(parse_qsl(out["query"].lstrip("?")))
    assert q["brush"] == f"{a},{b}" and q["cells"] == ",".join(map(str, sel["cells"]))
    # counts under each token: selected cells >= threshold, recomputed with numpy
    values = store.states(layer).rows(start, start + 100)
    z = np.asarray(out["counts"].data[0].z)
    expected_counts = (values[:, out["cells"][layer]] >= 0.3).sum(axis=1)
    np.testing.assert_array_equal(z[0], expected_counts)
    # the highlighted traces are exactly the selected units' values
    upd = out["updates"][0]
    shown = [t["name"] for t in upd["traces"] if t["visible"]]
    assert shown[: min(9, len(sel["cells"]))] == [f"unit {u}" for u in sel["cells"][:9]]
    assert upd["brush"] == (a - start - 0.5, b - start - 0.5)


def test_selection_rules_edges(ctx):
    store = ctx.store("sentiment")  # many short documents
    layer = logic.default_names(store.names)[0]
    b = store.boundaries
    rec = {"model": "sentiment", "names": [layer], "start": 0, "size": 100}
    cross = states.update_selection(ctx, rec, 0.3, 1, 0, int(b[1]) - 1, int(b[1]) + 1)
    assert "crosses the end of document" in cross["message"]
    outside = states.update_selection(ctx, rec, 0.3, 1, 0, -3, 2)
    assert "outside" in outside["message"]
    bad = states.update_selection(ctx, rec, "x", None, None, None, None)
    assert "number" in bad["message"] and bad["selection"] is None
    cells = states.update_selection(ctx, rec, 0.3, 1, 0, None, None, url_cells=[1, 2])
    assert cells["selection"]["cells"] == [1, 2]
    big = states.update_selection(ctx, rec, 0.3, 1, 0, None, None, url_cells=[10_000])
    assert "out of range" in big["message"]


def test_match_heatmap_text_is_escaped():
    from workbench.viz._app_figures import aligned_heatmap

    fig = aligned_heatmap([[1.0, 2.0, 3.0]], [["<b>x</b>", '"', " "]], ["#1"], name="n")
    assert list(fig.data[0].text[0]) == ["&lt;b&gt;x&lt;/b&gt;", '"', "\u2423"]


def test_trajectory_patch_matches_a_full_figure(ctx):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(30, 40))
    toks = [f"t{i}" for i in range(30)]
    fig = trajectory_slots(v, toks, threshold=0.1)
    upd = trajectory_selection(v, toks, list(range(12)), brush=(3, 6), threshold=0.5)
    apply_selection(fig, upd)
    assert fig.data[1].name == "unit 0" and list(fig.data[1].y) == pytest.approx(v[:, 0], 1e-3)
    last = fig.data[10]
    assert last.name == "3 more units"
    assert np.isnan(np.asarray(last.y, dtype=float)).sum() == 2
    assert fig.layout.shapes[0].y0 == 0.5 and fig.layout.shapes[1].visible
    assert fig.layout.shapes[1].x0 == 2.5 and fig.layout.shapes[1].x1 == 5.5


# ------------------------------------------------------------------------------- match
def test_match_ranks_spans_where_the_cells_fire(ctx):
    store = ctx.store("parens")
    layer = logic.default_names(store.names)[0]
    a, b = _brush(store, layer)
    rec = {"model": "parens", "names": [layer], "start": max(a - 10, 0), "size": 100}
    sel = states.update_selection(ctx, rec, 0.3, 1, 0, a, b)["selection"]
    res = states.match_view(ctx, sel, "depth")
    direct = store.match(layer, sel["cells"], threshold=0.3, pad=(1, 0), top_k=logic.TOP_MATCHES)
    assert res["starts"] == direct.start.tolist() and res["lengths"] == direct.length.tolist()
    strength = np.asarray(res["strength"].data[0].z, dtype=float)
    values = store.states(layer)
    for i, (s, n) in enumerate(zip(res["starts"], res["lengths"], strict=True)):
        on = (values.rows(s, s + n)[:, sel["cells"]] >= 0.3).sum(axis=1)
        w = min(n, logic.MATCH_WIDTH - logic.MATCH_BEFORE)
        cut = logic.MATCH_BEFORE
        np.testing.assert_array_equal(strength[i, cut : cut + w], on[:w])
        doc_start = int(store.boundaries[logic.document_of(store, s)])
        pre = (values.rows(max(s - cut, doc_start), s)[:, sel["cells"]] >= 0.3).sum(axis=1)
        got = strength[i, :cut]  # context before the match, NaN before the document
        np.testing.assert_array_equal(got[cut - len(pre) :], pre)
        assert np.isnan(got[: cut - len(pre)]).all()
        assert (on >= direct.level).all()
    meta = np.asarray(res["meta"].data[0].z, dtype=float)
    s0 = res["starts"][0]
    assert meta[0, logic.MATCH_BEFORE] == store.meta("depth")[s0]
    # the tokens are written once, in the strength rows; the meta rows under them show
    # the same tokens on hover only (each written cell costs the browser an SVG text)
    assert res["strength"].data[0].texttemplate == "%{text}"
    assert res["meta"].data[0].texttemplate is None
    assert [list(r) for r in res["meta"].data[0].text] == [
        list(r) for r in res["strength"].data[0].text
    ]
    assert "%{text}" in res["meta"].data[0].hovertemplate
    hist = res["hist"]
    assert sum(hist.data[0].y) == direct.n_candidates
    jump = states.navigate(ctx, "match:0", rec, rec["start"], 100, "", None, res, None, None)
    assert jump[1:3] == (s0, s0 + res["lengths"][0])


# -------------------------------------------------------------------------- navigation
def test_navigation_find_prev_next_doc_and_brush(ctx):
    store = ctx.store("python")
    rec = {"model": "python", "names": [logic.default_names(store.names)[0]], "start": 500,
           "size": 100}  # fmt: skip
    index = logic.corpus_text(store)
    text = "".join(store.tokens(900, 906))
    start, hit, end, msg = states.navigate(ctx, "find", rec, 500, 100, text, None, None, None,
                                           lambda: index)  # fmt: skip
    assert "".join(store.tokens(hit, end)) == text and hit <= 900 and end == hit + 6
    assert start == max(hit - 10, 0) and "brushed" in msg
    # Find next: from the brushed hit on, the next occurrence (not the same one again)
    first = states.navigate(ctx, "find", rec, 500, 100, "\n", None, None, None,
                            lambda: index)  # fmt: skip
    rec2 = {**rec, "start": first[0]}
    again = states.navigate(ctx, "find", rec2, first[0], 100, "\n", None, None, None,
                            lambda: index, brush_start=first[1])  # fmt: skip
    assert again[1] > first[1] and "".join(store.tokens(again[1], again[2])) == "\n"
    none = states.navigate(ctx, "find", rec, 500, 100, "\x00never\x00", None, None, None,
                           lambda: index)  # fmt: skip
    assert "does not occur" in none[-1]
    assert states.navigate(ctx, "prev", rec, 500, 100, "", None, None, None, None)[0] == 450
    assert states.navigate(ctx, "next", rec, 500, 100, "", None, None, None, None)[0] == 550
    doc = states.navigate(ctx, "doc", rec, 500, 100, "", 0, None, None, None)
    assert doc[0] == 0
    # the box follows the view: its echo of the view's own document moves nothing
    echo = states.navigate(ctx, "doc", {**rec, "doc": 3}, 500, 100, "", 3, None, None, None)
    assert echo[0] is states.no_update and echo[-1] is states.no_update
    relayout = {"selections": [{"x0": 12.4, "x1": 3.6, "type": "rect"}]}
    out = states.navigate(ctx, "brush", rec, 500, 100, "", None, None, relayout, None)
    assert out[1:3] == (504, 513)
    assert states.navigate(ctx, "brush", rec, 500, 100, "", None, None, {"autosize": True},
                           None)[1] is states.no_update  # fmt: skip


def test_route_skips_the_search_a_page_wrote(app):
    import dash

    assert app.workbench_context is not None
    assert any(d.get("output") == "wb-page.children" for d in app.callback_map.values()) or any(
        "wb-page.children" in k for k in app.callback_map
    )
    assert dash.__version__.split(".")[0] >= "3"


# ------------------------------------------------------------------- other pages' logic
def test_gates_saturation_best_cells_and_recording(ctx):
    from workbench.app import _explain_logic as xlogic
    from workbench.store import stats

    store = ctx.store("python")
    layer = "rnn.1.fwd"
    fig = gates.saturation_figure(ctx, "python", layer)
    gate = gates.gate_groups(store.names)[layer][1]
    left, right = stats.gate_saturation(store.states(gate))
    trace = next(t for t in fig.data if t.name == gate)
    np.testing.assert_allclose(trace.x, left)
    np.testing.assert_allclose(trace.y, right)
    with pytest.raises(logic.ViewError):
        gates.saturation_figure(ctx, "python", "rnn.7.fwd")
    rows, traj = gates.best_cells(ctx, "python", "rnn.1.fwd.hidden", "in_string")
    best = [r for r in rows if r["track"] == "in_string" and r["rank"] == 0][0]
    assert best["method"] == "auc"  # a bool track is ranked by AUC
    auc = stats.track_auc(store.states("rnn.1.fwd.hidden"), store.meta("in_string"))
    assert best["unit"] == int(np.nanargmax(np.abs(auc - 0.5)))
    assert traj.data[1].name.endswith(f"unit {best['unit']}")
    steps = len(traj.data[1].y)  # every token of the window is labelled (no thinned ticks)
    assert steps > 1 and list(traj.layout.xaxis.tickvals) == list(range(steps))
    text = xlogic.examples_for(ctx.bundle("sentiment"), "sentiment")[0]
    names, chosen, heat, att = gates.record_input(ctx, "sentiment", text, None)
    assert chosen in names and len(att) == 1  # the attention pooling weights
    w = np.asarray(att[0].data[0].z, dtype=float)
    assert w.shape[0] == 1 and w.sum() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        gates.record_input(ctx, "sentiment", "   ", None)


def test_projection_map_colours_and_lasso_links(ctx):
    store = ctx.store("parens")
    name = logic.default_names(store.names)[0]
    fig = projection.map_figure(ctx, "parens", name, "pca", 2000, "meta:depth", 0)
    n = sum(len(t.x) for t in fig.data)
    assert n == min(2000, store.n_tokens)
    custom = [row for t in fig.data for row in t.customdata]
    assert all(isinstance(row, list | tuple) and len(row) == 3 for row in custom)  # JSON lists
    steps = np.array([row[0] for row in custom])
    docs = np.searchsorted(store.boundaries, steps, side="right") - 1
    assert [row[1] for row in custom] == [store.doc_ids[d] for d in docs]  # hover: document
    assert "customdata[1]" in fig.data[0].hovertemplate and "depth" in fig.data[0].hovertemplate
    depth = np.concatenate([np.asarray(t.marker.color, dtype=float) for t in fig.data])
    np.testing.assert_array_equal(depth, store.meta("depth")[steps])
    proj = projection.fitted(ctx, "parens", name, "pca", 2000)
    x = store.states(name).rows(0, store.n_tokens)[proj.sample].astype(np.float32)
    np.testing.assert_allclose(proj.embedding, proj.pca(x)[:, :2], atol=1e-3)
    for colour in ("token", "prediction", "loss", "unit"):
        assert projection.map_figure(ctx, "parens", name, "pca", 2000, colour, 3).data
    with pytest.raises(logic.ViewError):
        projection.map_figure(ctx, "parens", name, "pca", 2000, "unit", 9999)
    items = projection.selected_list(ctx, "parens", name, [5, 7, 5], unit=3)
    links = _json(items[1])
    assert links.count("/states?model=parens") == 2 and "brush=5,6" in links
    value = float(store.states(name).rows(7, 8, [3])[0, 0])
    assert f"{value:.4g}" in links and store.doc_ids[0] in links
    lasso = {"points": [{"customdata": list(row)} for row in custom[:4]]}
    assert projection.selected_steps(lasso) == [int(row[0]) for row in custom[:4]]


def test_model_page_metrics_and_exactness(ctx):
    rows = model.metric_rows(ctx.bundle("python").metrics)
    assert ("bits_per_char", "model", "1.616") in rows
    assert [r[1] for r in rows] == ["model", "baseline: 5gram", "baseline: unigram"]
    rows = model.metric_rows(ctx.bundle("sentiment").metrics)
    assert len(rows) == len(set(rows)) == 6  # accuracy and macro F1, model + 2 baselines
    values = model.exactness(ctx, "parens")["rnn"]
    assert values["checked"] == "full"
    assert float(values["max_abs_error_hidden"]) <= float(values["tolerance"])


# --------------------------------------------------------------------------------- CLI
def test_serve_context_from_a_store_and_errors(ctx, tmp_path):
    from workbench.app._cli import build_context

    path = ctx.store_path("parens")
    one = build_context(path, None, rebuild=False, build=False)
    assert one.model_names() == ["parens"] and one.store("parens").n_tokens > 0
    with pytest.raises(FileNotFoundError):
        build_context(tmp_path / "missing", None, rebuild=False, build=False)
    with pytest.raises(ValueError):
        AppContext.from_store(tmp_path)  # an empty folder is not a store
    empty = AppContext(cache=tmp_path / "c")
    assert empty.store("python") is None  # unbuilt: pages say so instead of failing
    assert "No state store" in _text(states.layout(empty, model="python"))
    assert "No state store" in _text(model.layout(empty, model="python"))


def test_match_with_no_span_is_a_message_not_a_crash(ctx):
    """Cells that are never on together (found by the load test as a 500)."""
    store = ctx.store("parens")
    layer = logic.default_names(store.names)[0]
    sel = {"model": "parens", "name": layer, "cells": list(range(store.states(layer).shape[1])),
           "threshold": 1.5, "pad": [1, 0]}  # fmt: skip
    assert len(store.match(layer, sel["cells"], threshold=1.5)) == 0  # tanh < 1.5
    with pytest.raises(logic.ViewError, match="cells are never on together anywhere"):
        states.match_view(ctx, sel, "depth")


# ------------------------------------------------------------------- readable values
def test_value_scales_draw_cells_readably_and_keep_raw_values_in_the_hover():
    from workbench.viz._scale import resolve

    rng = np.random.default_rng(1)
    v = rng.normal(scale=120.0, size=(40, 12))  # LSTM cell states reach +-400
    v[5, 3] = -400.0
    assert resolve("auto", v) == "symlog" and resolve("auto", np.tanh(v)) == "linear"
    fig = trajectory_slots(v, None, threshold=0.3, scale="auto")
    assert fig.layout.meta["scale"] == "symlog"
    y = np.asarray(fig.data[0].y, dtype=np.float64)
    ref = np.concatenate([np.append(np.sign(v[:, u]) * np.log10(1 + np.abs(v[:, u])), np.nan)
                          for u in range(12)])  # fmt: skip
    np.testing.assert_allclose(y, ref, rtol=1e-6, equal_nan=True)  # float32 on the wire
    assert fig.layout.shapes[0].y0 == pytest.approx(np.log10(1.3))
    ticks = dict(zip(fig.layout.yaxis.ticktext, fig.layout.yaxis.tickvals, strict=True))
    assert ticks["100"] == pytest.approx(np.log10(101)) and ticks["-100"] < 0
    upd = trajectory_selection(v, None, [3], brush=None, threshold=0.3, scale="tanh")
    t = upd["traces"][0]
    np.testing.assert_allclose(t["y"], np.tanh(v[:, 3]), atol=1e-4)
    assert [c[1] for c in t["customdata"]] == pytest.approx(v[:, 3], abs=1e-4)  # raw values
    assert upd["threshold"] == pytest.approx(np.tanh(0.3))
    clip = trajectory_slots(v, None, threshold=0.3, scale="clip")
    lo, hi = clip.layout.yaxis.range
    assert hi == pytest.approx(1.1 * np.quantile(np.abs(v), 0.99)) and lo == -hi
    with pytest.raises(ValueError, match="scale"):
        trajectory_slots(v, None, scale="log")


def test_threshold_quantiles_are_those_of_the_corpus(ctx):
    store = ctx.store("parens")
    name = logic.default_names(store.names)[0]
    everything = np.asarray(store.states(name).rows(0, store.n_tokens), dtype=np.float64)
    got = logic.quantiles(store, name)
    assert list(got) == list(logic.QUANTILES)
    np.testing.assert_allclose(list(got.values()), np.quantile(everything, logic.QUANTILES))
    sampled = logic.quantiles(store, name, rows=400)  # 20 blocks of 20 rows
    starts = np.linspace(0, store.n_tokens - 20, 20).astype(int)
    part = np.concatenate([everything[a : a + 20] for a in starts])
    np.testing.assert_allclose(list(sampled.values()), np.quantile(part, logic.QUANTILES))
    rec = states.render_view(ctx, "parens", None, None, None, 0, 50, 0.3)[2]
    assert rec["quantiles"]["0.9"] == pytest.approx(got[0.9])
    assert "90th" in states.quantile_text(rec)


def test_match_grids_hold_the_longest_span(ctx):
    store = ctx.store("python")
    name = logic.default_names(store.names)[0]
    values = store.states(name).rows(0, 400)
    cells = [int(np.argmax((values > 0.3).sum(axis=0)))]
    res = logic.run_match(store, name, cells, 0.3, (1, 0), width=5)
    longest = int(res["matches"].length.max())
    width = min(max(5, logic.MATCH_BEFORE + longest + logic.MATCH_AFTER), logic.MAX_MATCH_WIDTH)
    assert len(res["offsets"]) == width and res["strength"].shape[1] == width
    for row, s, n in zip(res["strength"], res["matches"].start, res["matches"].length,
                         strict=True):  # fmt: skip
        d = logic.document_of(store, int(s))
        inside = min(int(n), int(store.boundaries[d + 1]) - int(s), width - logic.MATCH_BEFORE)
        span = row[logic.MATCH_BEFORE : logic.MATCH_BEFORE + inside]
        assert not np.isnan(span).any()  # every matched step is drawn


def test_a_classification_store_has_its_label_track(ctx):
    store = ctx.store("sentiment")
    assert "label" in store.meta_tracks
    labels = np.asarray(store._column("docs/label"))
    want = np.repeat(labels, np.diff(store.boundaries))
    np.testing.assert_array_equal(store.meta("label"), want)
    page = json.loads(_json(states.layout(ctx, model="sentiment")))

    def find(node, wanted):
        if isinstance(node, dict):
            if node.get("props", {}).get("id") == wanted:
                return node["props"]
            node = list(node.values())
        for child in node if isinstance(node, list) else []:
            if (hit := find(child, wanted)) is not None:
                return hit
        return None

    track = find(page, "states-match-track")
    assert track["value"] == "label" and "label" in track["options"]
    assert "label" not in ctx.store("python").meta_tracks  # no document labels there


def test_cached_store_key_follows_the_corpus_tracks(ctx, tmp_path):
    """A demo store built before the python tracks changed is not served (new cache key)."""
    import shutil

    from workbench.data import python_source

    version = python_source.TRACKS_VERSION
    assert ctx.store_path("python").name == f"python-3000-v{version}"
    assert ctx.store_path("parens").name == "parens-1500"  # its corpus never changed
    assert set(python_source.TRACKS) <= set(ctx.store("python").meta_tracks)
    # an older store at the old key (here: the parens one, copied there) is not opened
    fresh = AppContext(corpus_tokens={"python": 3000}, cache=tmp_path)
    old = tmp_path / "stores" / "python-3000"
    shutil.copytree(ctx.store_path("parens"), old)
    assert fresh.store("python") is None
