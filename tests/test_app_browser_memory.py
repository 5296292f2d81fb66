"""The Memory page in real headless Chromium against a live local app (parens model)."""

import pytest
from browser import TIMEOUT, needs_chromium, playwright_api, served

from workbench.app import AppContext, create_app

playwright = playwright_api()
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ctx = AppContext(
        models={k: v for k, v in AppContext().models.items() if k in ("parens", "sentiment")},
        corpus_tokens={"parens": 3000, "sentiment": 500},
        cache=tmp_path_factory.mktemp("cache"),
    )
    ctx.prepare(progress=False)
    with served(create_app(ctx)) as url:
        yield url


def _open(browser, url):
    page = browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page, errors


def test_memory_page_draws_curves_and_time_scales(server, browser, tmp_path):
    page, errors = _open(browser, f"{server}/memory?model=parens")
    page.wait_for_selector("#memory-horizon", timeout=TIMEOUT)
    assert "horizon" in page.inner_text("#memory-horizon")
    page.wait_for_selector("#memory-connectivity .scatterlayer .trace", timeout=TIMEOUT)
    page.wait_for_selector("#memory-states .scatterlayer .trace", timeout=TIMEOUT)
    page.wait_for_selector("#memory-ranking-table tr >> nth=10", timeout=TIMEOUT)
    page.wait_for_selector("#memory-histogram .barlayer .trace", timeout=TIMEOUT)
    assert page.locator("#memory-ranking .barlayer .trace").count() == 1
    page.screenshot(path=str(tmp_path / "memory.png"), full_page=True)
    # a request over the page's cap is answered, capped, with the note
    page.fill("#memory-windows", "100000")
    page.fill("#memory-steps", "10")
    page.click("#memory-run")
    page.wait_for_function(
        "document.querySelector('#memory-horizon')?.innerText.includes('capped at 500')",
        timeout=TIMEOUT,
    )
    assert not errors, errors


def test_memory_page_names_a_model_it_cannot_measure(server, browser):
    page, errors = _open(browser, f"{server}/memory?model=sentiment")
    page.wait_for_selector(".wb-error", timeout=TIMEOUT)
    assert "unknown model 'sentiment'" in page.inner_text(".wb-error")
    page.wait_for_selector("#memory-horizon", timeout=TIMEOUT)
    assert not errors, errors
