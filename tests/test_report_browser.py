"""A report opened in real headless Chromium (system browser, network off).

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and the ``playwright`` Python
package; Playwright never downloads a browser here (``executable_path`` points at the system
one). Skipped with the reason when either is missing.
"""

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from browser import needs_chromium, playwright_api
from report_fixtures import explanations, small_trace

from workbench import viz
from workbench.reports import report
from workbench.reports._embed import quantise
from workbench.trace import Trace

playwright_api()  # skips the module when Playwright is missing
pytestmark = needs_chromium
TIME, UNITS = 5000, 650


def _open(browser, path: Path):
    ctx = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_function("window.wbReport && window.wbReport.ready", timeout=30_000)
    return page, errors, requests


def _big_trace() -> tuple[Trace, np.ndarray]:
    """5,000 steps x 650 units; units 0-9 are on exactly over [1000, 1010)."""
    rng = np.random.default_rng(0)
    v = rng.uniform(-1, 0.2, size=(TIME, UNITS)).astype(np.float32)
    v[1000:1010, :10] = 0.9
    tokens = [f"w{i % 97}" for i in range(TIME)]
    tokens[3] = "<script>alert(1)</script>"
    trace = Trace({"lm.rnn.0.fwd.hidden": torch.from_numpy(v)[None]}, tokens=[tokens])
    return trace, v


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    curves = {"lrp": [1.0, 0.4], "shap": [1.0, 0.8]}
    rng = np.random.default_rng(0)
    every_view = [  # every viz figure goes through the report path
        viz.trajectories(rng.random((6, 4)), list("abcdef"), selected=[1], brush=(1, 3)),
        viz.gate_heatmap(rng.random((6, 4)), list("abcdef")),
        viz.attribution_heatmap({"ig": rng.normal(size=6)}, list("abcdef")),
        viz.saturation_scatter({"forget_gate": rng.random((6, 4))}),
        viz.deletion_curve({"ig": [1.0, 0.5, 0.2]}),
        viz.attention_heatmap(rng.random((6, 6)), list("abcdef")),
        viz.agreement_heatmap(np.eye(2), ["ig", "lrp"]),
    ]
    items = [
        small_trace(),
        *explanations(),
        {"title": "Faithfulness", "curves": curves},
        {"title": "Every view", "figures": every_view},
    ]
    return report(items, tmp_path_factory.mktemp("b") / "small.html")


@pytest.fixture(scope="module")
def big_report(tmp_path_factory):
    trace, v = _big_trace()
    return report([trace], tmp_path_factory.mktemp("b") / "big.html"), v


def test_report_renders_offline_without_errors(browser, small_report):
    page, errors, requests = _open(browser, small_report.path)
    n_plots = page.evaluate("document.querySelectorAll('.wb-plot').length")
    drawn = page.evaluate(
        "Array.from(document.querySelectorAll('.wb-plot')).filter("
        "d => d.data && d.data.length && d.querySelector('.main-svg')).length"
    )
    assert n_plots >= 15 and drawn == n_plots
    # heatmap cells really painted, hover text carries values
    assert page.evaluate("document.querySelectorAll('.wb-plot .hm image, .wb-plot image').length")
    idx = page.evaluate(
        "Array.from(document.querySelectorAll('.wb-plot')).findIndex("
        "p => (p.data[0].hovertemplate || '').includes('relevance'))"
    )
    fig = page.locator(".wb-plot").nth(idx)
    fig.scroll_into_view_if_needed()
    box = fig.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.wait_for_timeout(300)
    hover = fig.locator(".hovertext").first.text_content(timeout=5_000) or ""
    assert "relevance" in hover and any(c.isdigit() for c in hover), hover
    # the hostile token is text, never a live element
    assert page.evaluate("document.querySelectorAll('main textarea, main img').length") == 0
    assert not page.evaluate("window.__xss === true")
    assert errors == [] and all(u.startswith("file://") for u in requests), (errors, requests)


def test_brush_by_mouse_changes_selection(browser, small_report):
    page, errors, _ = _open(browser, small_report.path)
    before = page.inner_text(".wb-selected")
    box = page.locator(".wb-traj canvas").bounding_box()
    y = box["y"] + 100
    page.mouse.move(box["x"] + box["width"] * 0.35, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=5)
    page.mouse.up()
    after = page.inner_text(".wb-selected")
    assert after != before and "selected unit" in after
    assert page.evaluate("wbReport.widgets[0].brushRange") is not None
    assert errors == []


def test_big_trajectory_selection_matches_python(browser, big_report):
    res, v = big_report
    page, errors, _ = _open(browser, res.path)
    assert page.evaluate("[wbReport.widgets[0].time, wbReport.widgets[0].units]") == [TIME, UNITS]
    sel = page.evaluate("wbReport.brush(0, 1000, 1010)")
    assert sel == list(range(10))
    assert "10 selected units" in page.inner_text(".wb-selected")
    # same rule as the Python reference on the same (quantised) values, other settings
    q = quantise(v)
    codes = np.frombuffer(__import__("base64").b64decode(q["q"]), np.uint8)
    deq = (q["lo"] + codes.reshape(UNITS, TIME).T.astype(np.float64)
           * ((q["hi"] - q["lo"]) / 255)).astype(np.float32)  # fmt: skip
    for start, end, thr, pad in [(1000, 1003, 0.1, (0, 0)), (20, 22, -0.2, (1, 1))]:
        page.evaluate(f"wbReport.setPad(0, {pad[0]}, {pad[1]})")
        js = page.evaluate(f"wbReport.brush(0, {start}, {end}) && wbReport.setThreshold(0, {thr})")
        py = viz.select_cells(deq, start, end, threshold=np.float32(thr), pad=pad).tolist()
        assert js == py
    # responsiveness: brush + select + redraw of the window, measured in the page
    page.evaluate("wbReport.setPad(0, 1, 0); wbReport.setThreshold(0, 0.3)")
    t0 = time.perf_counter()
    ms = page.evaluate(
        "(() => { const t = performance.now(); for (let i = 0; i < 20; i++) "
        "wbReport.brush(0, 900 + i * 5, 1010); return (performance.now() - t) / 20; })()"
    )
    print(f"\nbrush+select+draw 5000x650: {ms:.1f} ms/brush "
          f"(selection alone {page.evaluate('wbReport.lastSelectionMs(0)'):.2f} ms), "
          f"report {res.size / 1e6:.1f} MB, wall {time.perf_counter() - t0:.2f} s")  # fmt: skip
    assert errors == []


def test_link_mode_loads_plotly_from_beside(browser, tmp_path):
    res = report(explanations(), tmp_path / "linked.html", plotly="link")
    page, errors, requests = _open(browser, res.path)
    assert page.evaluate("document.querySelectorAll('.wb-plot .main-svg').length") > 0
    assert any(u.endswith("/plotly.min.js") for u in requests)
    assert errors == [] and all(u.startswith("file://") for u in requests)
