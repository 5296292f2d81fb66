"""The States page's "LSTMVis compatible" switch: selection and match take LSTMVis's rules."""

import json

import numpy as np
import plotly
import pytest
from app_fixtures import small_context

from workbench.app import _states_logic as logic
from workbench.app.pages import states


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return small_context(tmp_path_factory)


def _brush(store, name, compat):
    b = store.boundaries
    for d in range(store.n_docs):
        lo, hi = int(b[d]), int(b[d + 1])
        for a in range(1, hi - lo - 3, 5):
            if store.select_cells(name, d, a, a + 2, 0.3, (1, 0), compat=compat).size:
                return d, lo + a, lo + a + 2
    pytest.skip("no brush selects a cell")


def test_switch_is_on_the_page(ctx):
    text = json.dumps(states.layout(ctx, model="python").to_plotly_json(),
                      cls=plotly.utils.PlotlyJSONEncoder)  # fmt: skip
    assert "states-compat" in text and "LSTMVis compatible" in text


def test_compat_selection_and_match_through_the_page(ctx):
    store = ctx.store("python")
    name = logic.default_names(store.names)[0]
    d, a, b = _brush(store, name, "lstmvis")
    rec = {"model": "python", "names": [name], "start": max(a - 20, 0), "size": 100}
    out = states.update_selection(ctx, rec, 0.3, 1, 0, a, b, compat="lstmvis")
    lo = int(store.boundaries[d])
    want = store.select_cells(name, d, a - lo, b - lo, 0.3, (1, 0), compat="lstmvis")
    assert out["message"] == "" and out["cells"][name] == want.tolist()
    sel = out["selection"]
    assert sel["compat"] == "lstmvis"
    res = states.match_view(ctx, sel, None)
    m = store.match(name, want, 0.3, (1, 0), top_k=logic.TOP_MATCHES, compat="lstmvis")
    assert res["starts"] == m.start.tolist() and res["lengths"] == m.length.tolist()
    # the default rules on the same brush: the page's default path is unchanged
    plain = states.update_selection(ctx, rec, 0.3, 1, 0, a, b)
    assert plain["selection"] is None or plain["selection"]["compat"] is None
    default = store.select_cells(name, d, a - lo, b - lo, 0.3, (1, 0))
    assert plain["cells"][name] == default.tolist()
    assert np.isin(want, np.arange(store.states(name).shape[1])).all()
