"""The Model page's training history and exactness verdicts, on the shipped checkpoints."""

import json

import plotly
import pytest
import torch
from dash import html

import workbench
from workbench.app import AppContext
from workbench.app.pages import model as page
from workbench.models.checkpoint import shipped


def _text(component) -> str:
    if isinstance(component, list):
        component = html.Div(component)
    return json.dumps(component.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder)


def test_history_says_where_each_run_started_not_a_folder():
    history = workbench.load(shipped("python")).config["history"]
    assert any(str(h["training"].get("init", "")).startswith("/") for h in history)  # the cause
    rows = page.history_rows(history)
    assert [r[0] for r in rows] == list(range(1, len(history) + 1))
    assert rows[0][3] == "from scratch" and rows[1][3] == "continued from run 1"
    for (_, metrics, settings, started), h in zip(rows, history, strict=True):
        assert "/" not in started + settings and "init" not in settings
        assert f"lr={h['training']['lr']:.4g}" in settings
        assert f"bits_per_char={h['metrics']['test_bits_per_char']:.4g}" in metrics
    lay = page.layout(AppContext(cache=None), model="python")
    assert "/tmp/" not in _text(lay) and "continued from run" in _text(lay)


def test_exactness_verdicts_follow_the_recorders_rule():
    # python's cell error is 3.05e-5 absolute beside a 1e-5 tolerance: it passes relative
    # to the cell's size, which is the recorder's own rule (float error grows with |c|)
    info = {
        "strategy": "unroll",
        "dtype": "float32",
        "checked": "full",
        "max_abs_error_hidden": 1.07e-6,
        "max_abs_error_cell": 3.052e-5,
        "cell_scale": 67.9,
        "tolerance": 1e-5,
        "max_rel_error_cell": 3.052e-5 / 67.9,
    }
    rows = page.verdicts("rnn", info)
    assert [r[4] for r in rows] == ["pass", "pass"]
    assert rows[1][2] == f"{3.052e-5 / 67.9:.3g}" and "3.05e-05" in rows[1][5]
    assert rows[0][3] == "1e-05 (float32)"
    bad = page.verdicts("rnn", {**info, "max_abs_error_hidden": 2e-5})
    assert bad[0][4] == "FAIL"
    failing = {"rnn": {**info, "max_abs_error_hidden": 2e-5}}
    assert "1 check(s) failed" in _text(page.exactness_view(failing))


@pytest.mark.parametrize("name", ["parens", "sunspots"])
def test_exactness_of_a_real_recording(name):
    ctx = AppContext(cache=None)
    found = page.exactness(ctx, name)
    info = found["rnn"]
    assert info["checked"] == "full" and info["dtype"] == str(torch.float32).split(".")[1]
    view = _text(page.exactness_view(found))
    assert "all checks pass" in view and '"FAIL"' not in view
