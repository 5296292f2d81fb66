"""The widgets' ESM in real headless Chromium, driven by a minimal fake anywidget model.

The anywidget render contract is ``render({model, el})`` with ``model.get / set / on / off /
save_changes / send``; a plain page implementing it loads the shipped ESM (no Jupyter server).
Needs Debian's ``chromium`` and the ``playwright`` package; skipped with the reason otherwise.
"""

import numpy as np
import pytest
from browser import needs_chromium, playwright_api
from report_fixtures import EVIL

from workbench import viz
from workbench.widgets import FigureWidget, TrajectoryWidget, match_rows
from workbench.widgets._assets import plotly_js, static

playwright_api()  # skips the module when Playwright is missing
pytestmark = needs_chromium
ORIGIN = "http://wb.test"

PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<div id="root" style="width: 900px"></div>
<script type="module">
function b64view(s) {
  const bin = atob(s), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new DataView(bytes.buffer);
}
// the anywidget model interface: get / set / on / off / save_changes / send
function fakeModel(state) {
  const listeners = {};
  const emit = (event, ...args) => (listeners[event] || []).slice().forEach((f) => f(...args));
  const model = {
    state, saves: 0, sent: [],
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; emit("change:" + k); },
    on: (e, f) => { (listeners[e] = listeners[e] || []).push(f); },
    off: (e, f) => { listeners[e] = (listeners[e] || []).filter((g) => g !== f); },
    save_changes: () => { model.saves++; },
    send: (msg) => {
      model.sent.push(msg);
      if (msg.type === "wb-plotly-request") {  // what FigureWidget answers from Python
        fetch("/plotly.min.js").then((r) => r.arrayBuffer())
          .then((b) => emit("msg:custom", {type: "wb-plotly"}, [new DataView(b)]));
      }
    },
    emit,
  };
  return model;
}
window.mount = async (file, state) => {
  if (state.values) state.values = b64view(state.values);
  const mod = (await import("/" + file)).default;
  const model = fakeModel(state);
  const root = document.getElementById("root");
  root.replaceChildren();
  window.model = model;
  window.cleanup = await mod.render({model, el: root});
  return true;
};
window.ready = true;
</script></body></html>"""


@pytest.fixture
def page(browser):
    files = {
        "/": ("text/html", PAGE.encode()),
        "/trajectory.js": ("text/javascript", static("trajectory.js").encode()),
        "/figure.js": ("text/javascript", static("figure.js").encode()),
        "/matches.js": ("text/javascript", static("matches.js").encode()),
        "/plotly.min.js": ("text/javascript", plotly_js()),
    }
    outside = []

    def handle(route):
        url = route.request.url
        path = url[len(ORIGIN) :] if url.startswith(ORIGIN) else None
        if path in files:
            ctype, body = files[path]
            route.fulfill(status=200, content_type=ctype, body=body)
        else:
            outside.append(url)
            route.abort()

    ctx = browser.new_context(viewport={"width": 1000, "height": 800})
    ctx.route("**/*", handle)
    pg = ctx.new_page()
    errors = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(ORIGIN + "/")
    pg.wait_for_function("window.ready === true")
    yield pg
    assert errors == [], errors
    assert outside == [], f"the widgets requested outside resources: {outside}"
    ctx.close()


def _state(widget) -> dict:
    import base64

    from ipywidgets.widgets.widget import _remove_buffers

    state, paths, buffers = _remove_buffers(widget.get_state())
    for path, buf in zip(paths, buffers, strict=True):
        state[path[0]] = base64.b64encode(bytes(buf)).decode()
    return {k: v for k, v in state.items() if not k.startswith("_")}


def _step_x(page, widget, step: int) -> tuple[float, float]:
    box = page.locator("canvas.wb-canvas").bounding_box()
    dx = (box["width"] - 50 - 10) / widget.window
    return box["x"] + 50 + (step + 0.5) * dx, box["y"] + 120


def _values() -> np.ndarray:
    rng = np.random.default_rng(3)
    v = rng.uniform(-1, 0.6, (80, 48)).astype(np.float32)
    v[20:26, :6] = 0.8  # units 0-5 on exactly over [20, 26)
    v[17:20, :6] = -0.4
    v[26:29, :6] = -0.4
    return v


def test_brush_in_the_browser_selects_what_python_selects(page):
    v = _values()
    w = TrajectoryWidget(v, [f"t{i}" for i in range(80)], window=80)
    page.evaluate("s => window.mount('trajectory.js', s)", _state(w))
    for a, b in ((20, 25), (20, 20), (3, 9), (40, 47)):
        x0, y = _step_x(page, w, a)
        x1, _ = _step_x(page, w, b)
        page.mouse.move(x0, y)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, y)
        page.mouse.move(x1, y)
        page.mouse.up()
        st = page.evaluate("window.model.state")
        assert st["brush"] == [a, b + 1]
        expected = viz.select_cells(v, a, b + 1, threshold=0.3, pad=(1, 0)).tolist()
        assert st["selected_cells"] == expected
        # Python agrees when the same update arrives from the front end
        w.set_state({"brush": st["brush"]})
        assert w.selected_cells == expected
    assert page.evaluate("window.model.saves") == 4
    text = page.locator(".wb-selected").inner_text()
    assert text.startswith(f"{len(expected)} selected unit")


def test_threshold_and_pad_inputs_recompute_the_selection(page):
    v = _values()
    w = TrajectoryWidget(v, window=60, brush=(20, 26))
    page.evaluate("s => window.mount('trajectory.js', s)", _state(w))
    assert page.evaluate("window.model.state.selected_cells") == list(range(6))
    for thr in ("0.5", "-0.3", "0.9"):
        page.fill("input.wb-threshold-number", thr)
        page.dispatch_event("input.wb-threshold-number", "change")
        got = page.evaluate("window.model.state.selected_cells")
        assert got == viz.select_cells(v, 20, 26, threshold=float(thr), pad=(1, 0)).tolist()
        assert page.evaluate("window.model.state.threshold") == float(thr)
    page.fill("input.wb-threshold-number", "0.3")
    page.dispatch_event("input.wb-threshold-number", "change")
    page.fill("input.wb-pad-right", "3")
    page.dispatch_event("input.wb-pad-right", "change")
    assert page.evaluate("window.model.state.pad") == [1, 3]
    got = page.evaluate("window.model.state.selected_cells")
    assert got == viz.select_cells(v, 20, 26, threshold=0.3, pad=(1, 3)).tolist() == list(range(6))


def test_changes_from_python_redraw(page):
    v = _values()
    w = TrajectoryWidget(v, window=60)
    page.evaluate("s => window.mount('trajectory.js', s)", _state(w))
    assert "Brush a token range" in page.locator(".wb-selected").inner_text()
    w.select(20, 26)  # in a kernel these changes reach the model as below
    page.evaluate(
        "s => { window.model.set('brush', s.brush); window.model.set('selected_cells', s.cells); }",
        {"brush": w.brush, "cells": w.selected_cells},
    )
    assert (
        page.locator(".wb-selected").inner_text().startswith("6 selected units for steps [20, 26)")
    )
    assert page.evaluate("window.model.saves") == 0  # nothing echoed back
    page.evaluate("window.cleanup()")


def test_figure_widget_draws_with_plotly_from_the_kernel(page):
    fig = viz.output_change(["neg", "<b>pos</b>"], [0.3, 0.7], [0.6, 0.4])
    w = FigureWidget(fig)
    assert page.evaluate("typeof window.Plotly") == "undefined"
    page.evaluate("s => window.mount('figure.js', s)", _state(w))
    page.wait_for_selector(".wb-figure .main-svg", timeout=30_000)
    assert page.evaluate("window.model.sent") == [{"type": "wb-plotly-request"}]
    assert page.locator(".wb-figure g.point").count() == 4  # two runs x two classes
    assert page.locator("#root b").count() == 0
    page.evaluate(
        "f => window.model.set('figure', f)",
        _state(FigureWidget(viz.deletion_curve({"m": [1.0, 0.5, 0.1]})))["figure"],
    )
    page.wait_for_function("document.querySelectorAll('.wb-figure .scatterlayer .trace').length")


def test_matches_widget_shows_tokens_as_text(page):
    class _M:  # the Matches fields match_rows reads
        document = np.array([0, 0])
        intersection = np.array([3, 2])
        union = np.array([3, 4])
        cells = np.array([1, 2, 3])

        def spans(self):
            return [(1, 3), (2, 4)]

    rows = match_rows(_M())
    for r in rows:
        r["span"] = EVIL[r["start"] : r["start"] + 2]
    page.evaluate(
        "s => window.mount('matches.js', s)", {"rows": rows, "caption": "c", "selected": -1}
    )
    assert page.locator("#root script, #root img").count() == 0
    assert page.locator("mark.wb-span").first.inner_text() == EVIL[1] + "\u2423"  # space shown
    page.locator("tr.wb-row").nth(1).click()
    assert page.evaluate("window.model.state.selected") == 1
    assert page.locator("tr.wb-row-selected").count() == 1
