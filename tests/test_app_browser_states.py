"""The States and Projection pages as a user reads them, in real headless Chromium.

What is checked is what the browser renders (the DOM text of the plotly SVGs, input boxes,
tables): every token of the default window labelled and no two labels overlapping, user text
shown literally (``"`` ``<`` ``&`` ``'`` and ``<b>`` never as entities or markup) on States,
Explain and Perturb, the lasso on the Projection map listing the contexts it covers.
"""

from urllib.parse import urlencode

import numpy as np
import pytest
from browser import TIMEOUT, needs_chromium, playwright_api, served

from workbench.app import AppContext, create_app
from workbench.app import _states_logic as logic
from workbench.data import Document
from workbench.store import StateStore
from workbench.viz._common import _VISIBLE

playwright = playwright_api()
pytestmark = needs_chromium

#: Source text full of the characters HTML escaping touches.
HOSTILE = 's = "<b>" & \'q\' < 3  # it\'s "x" & <i>\n'
ENTITIES = ("&quot;", "&amp;", "&lt;", "&gt;", "&#x27;", "&#39;")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cache = tmp_path_factory.mktemp("states-cache")
    models = {k: v for k, v in AppContext().models.items() if k in ("python", "sentiment",
                                                                    "parens")}  # fmt: skip
    base = AppContext(models=models, corpus_tokens={"sentiment": 800, "parens": 1500},
                      cache=cache)  # fmt: skip
    docs = [Document(f"hostile<{i}>.py", list(HOSTILE * 6), {}) for i in range(3)]
    path = cache / "hostile"
    StateStore.build(base.bundle("python"), docs, path, progress=False)
    ctx = AppContext(models=models, stores={"python": path},
                     corpus_tokens={"sentiment": 800, "parens": 1500}, cache=cache)  # fmt: skip
    ctx.prepare(progress=False)
    with served(create_app(ctx)) as url:
        yield url, ctx


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


def _wait_plot(page, selector: str) -> None:
    page.wait_for_function(
        """(sel) => { const g = document.querySelector(sel + ' .js-plotly-plot');
        return g && g._fullData && g._fullData.some(t => t._length || (t.z && t.z.length)); }""",
        arg=selector,
    )


def _texts(page, selector: str) -> list[str]:
    """Rendered text of every SVG ``<text>`` under ``selector`` (what the user reads)."""
    return page.evaluate(
        "(sel) => Array.from(document.querySelectorAll(sel + ' svg text')).map(t => t.textContent)",
        selector,
    )


def _no_entities(texts) -> None:
    joined = "\n".join(texts)
    shown = [e for e in ENTITIES if e in joined]
    assert not shown, f"escaped twice: {shown} in {joined[:300]!r}"


def _glyph(tok: str) -> str:
    return _VISIBLE.get(tok, tok)


def test_every_token_labelled_at_the_default_window_and_text_shown_literally(server, page):
    url, ctx = server
    store = ctx.store("python")
    page.goto(f"{url}/states?model=python")
    _wait_plot(page, "#states-graph-box-0")
    page.wait_for_function(
        "document.querySelectorAll('#states-graph-box-0 .xtick text').length > 0"
    )
    ticks = page.evaluate(
        """() => Array.from(document.querySelectorAll('#states-graph-box-0 .xtick text'))
        .map(t => { const r = t.getBoundingClientRect();
                    return {text: t.textContent, left: r.left, right: r.right}; })"""
    )
    want = [_glyph(t) for t in store.tokens(0, logic.DEFAULT_SIZE)]
    assert [t["text"] for t in ticks] == want  # every token, in order, literally
    assert {'"', "<", "&", "'"} <= set(want)
    ticks.sort(key=lambda t: t["left"])
    pairs = zip(ticks[:-1], ticks[1:], strict=True)
    overlaps = [(a["text"], b["text"]) for a, b in pairs if a["right"] > b["left"]]
    assert overlaps == []
    # a brush: the counts heatmap and the match grids write the tokens in their cells
    page.fill("#states-brush-start", "3")
    page.fill("#states-brush-end", "6")
    page.press("#states-brush-end", "Enter")
    page.wait_for_function("document.querySelectorAll('#states-cells .wb-chip').length > 0")
    _wait_plot(page, "#states-counts")
    page.wait_for_selector("#states-match-plots", state="visible")
    _wait_plot(page, "#states-match-strength")
    for sel in ("#states-graph-box-0", "#states-counts", "#states-match-strength"):
        _no_entities(_texts(page, sel))
    cells = _texts(page, "#states-match-strength")
    assert '"' in cells and "<" in cells and "&" in cells
    _no_entities([page.inner_text("body")])
    assert page.errors == []


def test_controls_show_the_view(server, page):
    url, ctx = server
    store = ctx.store("python")
    d = 1
    lo = int(store.boundaries[d])
    page.goto(f"{url}/states?model=python&start={lo + 5}")
    _wait_plot(page, "#states-graph-box-0")
    # the Document box names the document on screen (its id is user text, shown once)
    page.wait_for_function(
        "(id) => document.querySelector('#states-doc').innerText.includes(id)",
        arg=store.doc_ids[d],
    )
    # before any brush: a hint, no empty match plots
    assert not page.locator("#states-match-plots").is_visible()
    assert "brush" in page.inner_text("#states-match-summary")
    # 6-digit positions fit their boxes
    for box in ("#states-start", "#states-brush-start", "#states-brush-end"):
        page.fill(box, "398530")
        fits = page.evaluate(
            "(sel) => { const e = document.querySelector(sel);"
            " return e.scrollWidth <= e.clientWidth; }",
            box,
        )
        assert fits, f"{box} cuts a 6-digit position"
    page.goto(f"{url}/states?model=python&start=0")
    _wait_plot(page, "#states-graph-box-0")
    # Find brushes the hit; Find next moves on to the next one
    page.fill("#states-find-text", "'q'")
    page.click("#states-find")
    page.wait_for_function("document.querySelector('#states-brush-start').value !== ''")
    a = int(page.input_value("#states-brush-start"))
    b = int(page.input_value("#states-brush-end"))
    assert "".join(store.tokens(a, b)) == "'q'"
    page.click("#states-find")
    page.wait_for_function(
        "(a) => document.querySelector('#states-brush-start').value !== String(a)", arg=a
    )
    a2 = int(page.input_value("#states-brush-start"))
    assert a2 > a and "".join(store.tokens(a2, a2 + 3)) == "'q'"
    assert "brushed" in page.inner_text("#states-nav-message")
    assert page.errors == []


def test_threshold_suggestions_and_the_p90_button(server, page):
    url, ctx = server
    store = ctx.store("python")
    name = logic.default_names(store.names)[0]
    values = np.asarray(store.states(name).rows(0, store.n_tokens), dtype=np.float64)
    p90 = float(np.quantile(values, 0.9))
    page.goto(f"{url}/states?model=python")
    _wait_plot(page, "#states-graph-box-0")
    page.wait_for_function("document.querySelector('#states-quantiles').innerText !== ''")
    assert f"{p90:.3g}" in page.inner_text("#states-quantiles")
    page.click("#states-threshold-p90")
    page.wait_for_function("document.querySelector('#states-threshold').value !== '0.3'")
    assert float(page.input_value("#states-threshold")) == pytest.approx(p90, rel=1e-3)
    assert page.errors == []


def test_lasso_on_the_projection_lists_the_selected_contexts(server, page):
    url, ctx = server
    store = ctx.store("parens")
    page.goto(f"{url}/projection?model=parens&method=pca&sample=2000")
    _wait_plot(page, "#projection-map")
    page.wait_for_timeout(300)
    box = page.locator("#projection-map .nsewdrag").first.bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    path = [(0.02, 0.02), (0.98, 0.02), (0.98, 0.98), (0.02, 0.98), (0.02, 0.03)]
    page.mouse.move(x + w * path[0][0], y + h * path[0][1])
    page.mouse.down()
    for a, b in path[1:]:
        page.mouse.move(x + w * a, y + h * b, steps=8)
    page.mouse.up()
    page.wait_for_selector("#projection-selected table tbody tr")
    rows = page.locator("#projection-selected tbody tr")
    assert rows.count() > 0
    first = rows.first.locator("td").all_inner_texts()
    step = int(first[0].split()[-1])
    d = logic.document_of(store, step)
    assert first[1] == store.doc_ids[d]
    assert int(first[2]) == step - int(store.boundaries[d])
    mark = rows.first.locator("td mark").inner_text()
    assert mark == _glyph(store.tokens(step, step + 1)[0])  # the step's own token, marked
    href = rows.first.locator("a").get_attribute("href")
    assert href.startswith("/states?") and f"brush={step},{step + 1}" in href
    assert "states selected" in page.inner_text("#projection-selected")
    # the map fills the plot's width
    spread = page.evaluate(
        """() => { const g = document.querySelector('#projection-map .js-plotly-plot');
        const xa = g._fullLayout.xaxis, xs = g._fullData.flatMap(t => Array.from(t.x));
        const lo = Math.min(...xs), hi = Math.max(...xs);
        return (xa.l2p(hi) - xa.l2p(lo)) / xa._length; }"""
    )
    assert spread > 0.8
    assert page.errors == []


def test_explain_and_perturb_show_quotes_and_tags_literally(server, page):
    url, _ = server
    text = "x = \"<b>\" & 'q'"
    query = urlencode({"model": "python", "text": text, "methods": "saliency"})
    page.goto(f"{url}/explain?{query}")
    _wait_plot(page, "#explain-heatmap")
    texts = _texts(page, "#explain-heatmap")
    _no_entities(texts)
    assert {'"', "<", "&", "'"} <= set(texts)
    _no_entities([page.inner_text("body")])
    query = urlencode({"model": "python", "text": text, "edited": text.replace("q", "<i>")})
    page.goto(f"{url}/perturb?{query}")
    page.wait_for_selector("#perturb-output .main-svg")
    page.wait_for_timeout(500)
    texts = _texts(page, "#perturb-output")
    _no_entities(texts)
    assert {'"', "<", "&", "'"} <= set(texts)
    _no_entities([page.inner_text("body")])
    assert page.errors == []
