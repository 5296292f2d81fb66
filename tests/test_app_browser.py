"""The Dash app in real headless Chromium: pages load, brushing selects, the URL round-trips.

The app runs on a free loopback port in a background thread over small demo stores; the
system ``chromium`` is driven by playwright (never downloaded). Skipped with the reason
when either is missing.
"""

from urllib.parse import parse_qsl, urlparse

import pytest
from app_fixtures import small_context
from browser import TIMEOUT, needs_chromium, playwright_api, served

from workbench.app import _states_logic as logic
from workbench.app import create_app
from workbench.app.pages import states
from workbench.viz import select_cells

playwright = playwright_api()
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ctx = small_context(tmp_path_factory)
    app = create_app(ctx)
    with served(app) as url:
        yield url, ctx


def _page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def _plot_points(page, selector: str) -> int:
    return page.evaluate(
        """(sel) => { const g = document.querySelector(sel + ' .js-plotly-plot');
        if (!g || !g._fullData) return 0;
        return g._fullData.reduce((n, t) => n + (t._length || (t.z && t.z.length) || 0), 0);
        }""",
        selector,
    )


def _wait_plot(page, selector: str) -> None:
    page.wait_for_function(
        """(sel) => { const g = document.querySelector(sel + ' .js-plotly-plot');
        return g && g._fullData && g._fullData.some(t => t._length || (t.z && t.z.length)); }""",
        arg=selector,
    )


@pytest.mark.parametrize(
    ("path", "plot"),
    [
        ("/", "#states-graph-box-0"),
        ("/states?model=sentiment", "#states-graph-box-0"),
        ("/projection?model=parens&method=pca&sample=2000", "#projection-map"),
        ("/gates?model=python", "#gates-saturation"),
        ("/gates?model=sentiment", "#gates-heatmap"),
        ("/model?model=co2", "#model-metrics"),
    ],
)
def test_every_page_loads_with_plots_and_no_console_errors(server, browser, path, plot):
    url, _ = server
    page, errors = _page(browser)
    page.goto(url + path)
    _wait_plot(page, plot)
    assert _plot_points(page, plot) > 0
    assert page.locator(".wb-nav").is_visible()
    page.wait_for_timeout(300)
    assert errors == []
    page.context.close()


def test_states_brush_selects_cells_matches_and_writes_the_url(server, browser):
    url, ctx = server
    store = ctx.store("parens")
    name = logic.default_names(store.names)[0]
    d = 2
    lo = int(store.boundaries[d])
    values = store.document(d).states(name)
    a = next(i for i in range(len(values) - 3) if select_cells(values, i, i + 3).size)
    expected = select_cells(values, a, a + 3).tolist()
    page, errors = _page(browser)
    page.goto(f"{url}/states?model=parens&start={lo}")
    _wait_plot(page, "#states-graph-box-0")
    page.fill("#states-brush-start", str(lo + a))
    page.fill("#states-brush-end", str(lo + a + 3))
    page.press("#states-brush-end", "Enter")
    page.wait_for_function("document.querySelectorAll('#states-cells .wb-chip').length > 0")
    chips = page.locator("#states-cells .wb-chip").all_inner_texts()
    assert [int(c) for c in chips] == expected
    page.wait_for_selector("#states-match-list li")
    assert page.locator("#states-match-list li").count() > 0
    _wait_plot(page, "#states-match-strength")
    query = dict(parse_qsl(urlparse(page.url).query))
    assert query["brush"] == f"{lo + a},{lo + a + 3}"
    assert query["cells"] == ",".join(map(str, expected))
    # highlighted traces in the plot are the selected units
    names = page.evaluate(
        "() => document.querySelector('#states-graph-box-0 .js-plotly-plot').data"
        ".filter(t => t.visible !== false && t.name && t.name.startsWith('unit'))"
        ".map(t => t.name)"
    )
    assert names == [f"unit {u}" for u in expected[:9]] or len(expected) > 10
    # the shared selection the Explain / Perturb pages read
    shared = page.evaluate("() => JSON.parse(sessionStorage.getItem('wb-selection'))")
    assert shared["cells"] == expected and shared["model"] == "parens"

    # the URL round-trips: a fresh tab on the same URL shows the same view and selection
    again, errors2 = _page(browser)
    again.goto(page.url)
    again.wait_for_function("document.querySelectorAll('#states-cells .wb-chip').length > 0")
    assert again.input_value("#states-brush-start") == str(lo + a)
    assert again.locator("#states-cells .wb-chip").all_inner_texts() == chips
    # clicking a match jumps there (brush set to the match span)
    first = again.locator("#states-match-list li a").first
    href = first.get_attribute("href")
    first.click()
    want = dict(parse_qsl(urlparse(href).query))["brush"].split(",")
    again.wait_for_function(
        "(b) => document.querySelector('#states-brush-start').value === b", arg=want[0]
    )
    assert errors == [] and errors2 == []
    page.context.close()
    again.context.close()


def test_drag_on_the_plot_brushes_and_navigation_works(server, browser):
    url, _ = server
    page, errors = _page(browser)
    page.goto(f"{url}/states?model=python&start=0&end=50")
    _wait_plot(page, "#states-graph-box-0")
    box = page.locator("#states-graph-box-0 .nsewdrag").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.30, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.40, y, steps=8)
    page.mouse.move(box["x"] + box["width"] * 0.42, y, steps=4)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#states-brush-start').value !== ''")
    a = int(page.input_value("#states-brush-start"))
    b = int(page.input_value("#states-brush-end"))
    assert 10 <= a < b <= 25
    page.wait_for_function("() => new URL(location.href).searchParams.get('brush') !== null")
    # next window, then the nav bar to another page and back
    page.click("#states-next")
    page.wait_for_function("() => new URL(location.href).searchParams.get('start') === '25'")
    page.click("#nav-model")
    page.wait_for_selector("#model-exactness table")
    assert urlparse(page.url).path == "/model"
    page.go_back()
    page.wait_for_selector("#states-graph-box-0")
    assert errors == []
    page.context.close()


def test_unknown_page_and_bad_query_show_messages(server, browser):
    url, _ = server
    page, errors = _page(browser)
    page.goto(url + "/nowhere")
    page.wait_for_selector("text=Page not found")
    page.goto(url + "/states?model=parens&start=abc&threshold=nan&brush=9,3")
    page.wait_for_selector("#states-query-message")
    assert "not a number" in page.inner_text("#states-query-message")
    page.wait_for_function(
        "document.querySelector('#states-select-message').innerText.includes('brush')"
    )
    assert errors == []
    assert states.PATH == "/states"
    page.context.close()


def test_the_default_view_shows_the_string_literal_cell_and_its_track(server, browser):
    url, ctx = server
    page, errors = _page(browser)
    page.goto(url + "/")
    # the cell drawn in colour (a selected trace named after it) over the in_literal strip
    page.wait_for_function(
        """() => { const g = document.querySelector('#states-graph-box-0 .js-plotly-plot');
        return g && g._fullData && g._fullData.some(t => t.visible === true
            && t.name === 'unit 164' && t._length > 0); }"""
    )
    _wait_plot(page, "#states-track-box")
    title = page.text_content("#states-graph-box-0 .gtitle")
    assert title.startswith("rnn.0.fwd.cell")
    strip = page.evaluate(
        """() => { const g = document.querySelector('#states-track-box .js-plotly-plot');
        return {y: g._fullData[0].y, z: g._fullData[0].z[0]}; }"""
    )
    assert strip["y"] == ["in_literal"] and 0 < sum(strip["z"]) < len(strip["z"])
    view = logic.parse_query(ctx)
    inside = ctx.store("python").meta("in_literal")[view.start : view.end]
    assert strip["z"] == inside.astype(float).tolist()
    page.wait_for_function(
        "() => new URL(location.href).searchParams.get('track') === 'in_literal'"
    )
    query = dict(parse_qsl(urlparse(page.url).query))
    assert query["cells"] == "164" and query["name"] == "rnn.0.fwd.cell"
    assert int(query["start"]) == view.start
    assert "in_literal" in page.text_content("#states-track")
    assert errors == []
    page.context.close()
