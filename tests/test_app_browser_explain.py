"""The Explain and Perturb pages in real headless Chromium against a live local app.

Needs Debian's ``chromium`` and the ``playwright`` Python package (no browser download:
``executable_path`` points at the system one). Skipped with the reason when either is missing.
"""

from urllib.parse import urlencode

import pytest
from browser import needs_chromium, playwright_api, served

from workbench.app import AppContext, create_app
from workbench.explainers import METHODS
from workbench.explainers._base import Method

playwright = playwright_api()
pytestmark = needs_chromium
SENTENCE = "the food was great but the service was slow"


class Broken(Method):
    """A registered method that raises inside ``explain``, as a real failure would."""

    name = "broken"

    def _attribute(self, problem, scorer):
        raise RuntimeError("broken on purpose")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    METHODS["broken"] = Broken
    ctx = AppContext(
        models={k: v for k, v in AppContext().models.items() if k in ("sentiment", "parens")},
        corpus_tokens={"sentiment": 1000, "parens": 1000},
        cache=tmp_path_factory.mktemp("cache"),
    )
    ctx.prepare(progress=False)  # small stores: a States selection carries its window
    app = create_app(ctx)
    with served(app) as url:
        yield url
    METHODS.pop("broken", None)


def _open(browser, url):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page, errors


def test_explain_runs_methods_and_isolates_a_failure(server, browser):
    query = urlencode({"model": "sentiment", "text": SENTENCE, "methods": "saliency,lrp,broken"})
    page, errors = _open(browser, f"{server}/explain?{query}")
    page.wait_for_selector("#explain-heatmap .main-svg", timeout=60_000)
    heat = page.locator("#explain-heatmap")
    assert heat.locator(".hm, .heatmaplayer image, .heatmaplayer").count() >= 1
    assert "prediction:" in page.locator("#explain-prediction").inner_text()
    assert "broken on purpose" in page.locator("#explain-panel-broken").inner_text()
    assert "conservation" in page.locator("#explain-panel-lrp").inner_text()
    page.wait_for_selector("#explain-curves .main-svg", timeout=30_000)
    # the session stays usable: run again with other methods and an empty text
    page.fill("#explain-text", "   ")
    page.click("#explain-run")
    page.wait_for_selector("#explain-error", timeout=30_000)
    assert "empty" in page.locator("#explain-error").inner_text()
    page.fill("#explain-text", "what a lovely day")
    page.click("#explain-run")
    page.wait_for_selector("#explain-heatmap .main-svg", timeout=60_000)
    assert not errors, errors


def test_perturb_edit_a_token_and_see_the_diff(server, browser):
    query = urlencode({"model": "sentiment", "text": "i love this movie so much"})
    page, errors = _open(browser, f"{server}/perturb?{query}")
    page.wait_for_selector("#perturb-replace")
    page.fill("#perturb-position", "1")
    page.fill("#perturb-replacement", "hate")
    page.click("#perturb-replace")
    page.wait_for_function(
        "document.querySelector('#perturb-edited').value === 'i hate this movie so much'",
        timeout=30_000,
    )
    page.click("#perturb-compare")
    page.wait_for_selector("#perturb-diff .main-svg", timeout=60_000)
    assert "perturbed" in page.locator("#perturb-prediction").inner_text()
    assert page.locator("#perturb-moved tr").count() == 11
    page.fill("#perturb-cells", "1, 2, 3")
    page.click("#perturb-ablate")
    page.wait_for_selector("#perturb-ablate-diff .main-svg", timeout=60_000)
    assert "edited" in page.locator("#perturb-ablate-prediction").inner_text()
    assert not errors, errors


def _select(page, server, selection):
    """Store a States-page selection as that page does, and open Explain."""
    page.evaluate("s => sessionStorage.setItem('wb-selection', JSON.stringify(s))", selection)
    page.goto(f"{server}/explain?model=sentiment")
    page.wait_for_selector("#explain-use-selection")
    page.wait_for_selector("#explain-output .wb-hint")  # the page has settled (no run yet)


def test_explain_these_cells_runs_in_one_click(server, browser):
    page, errors = _open(browser, f"{server}/explain?model=sentiment")
    selection = {"model": "parens", "name": "rnn.0.fwd.cell", "cells": [2, 5],
                 "threshold": 0.3, "start": 10, "end": 20}  # fmt: skip
    _select(page, server, selection)
    page.click("#explain-use-selection")  # one click: target, window and the run
    page.wait_for_selector("#explain-heatmap .main-svg", timeout=60_000)
    text = page.locator("#wb-page").inner_text()
    assert "explaining rnn.0.fwd.cell[unit=(2, 5)" in text
    assert "corpus window [10, 20)" in page.locator("#explain-selection-info").inner_text()
    assert page.input_value("#explain-text") != ""  # the brushed window, not the example
    assert "conservation" in page.locator("#explain-panel-lrp").inner_text()  # LRP ran
    assert page.locator("#explain-panel-saliency.explain-ok").count() == 1
    # a gate: LRP is greyed with its reason and not run, the other methods still are
    _select(page, server, {**selection, "name": "rnn.0.fwd.forget_gate"})
    page.click("#explain-use-selection")
    page.wait_for_selector("#explain-panel-lrp.explain-skipped", timeout=60_000)
    assert page.locator("#explain-methods input[value='lrp']").is_disabled()
    assert "gates" in page.locator("#explain-why-lrp").inner_text()
    assert "not run" in page.locator("#explain-panel-lrp").inner_text()
    assert page.locator("#explain-panel-saliency.explain-ok").count() == 1
    assert not errors, errors


def test_large_ig_delta_offers_more_steps_in_one_click(server, browser):
    text = "((2((4)))1)000000(1)((22(()3()3))())0((())1(22(()3())2222(33"
    query = urlencode({"model": "parens", "text": text, "methods": "integrated_gradients"})
    page, errors = _open(browser, f"{server}/explain?{query}")
    page.wait_for_selector("#explain-ig-warning", timeout=60_000)
    assert "with 32 steps" in page.locator("#explain-ig-warning").inner_text()
    page.click("#explain-more-steps")
    page.wait_for_function(  # rerun with 4x the steps: still above 5% on this input
        "(document.querySelector('#explain-ig-warning') || {}).innerText?.includes('128 steps')",
        timeout=60_000,
    )
    page.wait_for_selector("#explain-more-steps:has-text('Rerun with 512 steps')", timeout=30_000)
    assert page.input_value("#explain-ig-steps") == "128"
    assert not errors, errors


def test_perturb_states_selection_stale_results_and_cells_width(server, browser):
    page, errors = _open(browser, f"{server}/perturb?model=sentiment")
    selection = {"model": "parens", "name": "rnn.0.fwd.cell", "cells": [2, 5],
                 "threshold": 0.3, "start": 10, "end": 20}  # fmt: skip
    page.evaluate("s => sessionStorage.setItem('wb-selection', JSON.stringify(s))", selection)
    page.goto(f"{server}/perturb?model=sentiment")
    page.wait_for_selector("#perturb-use-selection")
    default = page.input_value("#perturb-text")
    page.click("#perturb-use-selection")
    page.wait_for_function(
        "document.querySelector('#perturb-selection-info').innerText.includes('[10, 20)')",
        timeout=30_000,
    )
    window = page.input_value("#perturb-text")
    assert window != default and page.input_value("#perturb-edited") == window
    assert page.input_value("#perturb-cells") == "2, 5"
    assert page.locator("#perturb-cells").bounding_box()["width"] >= 150
    assert page.locator("#perturb-stale").is_hidden()
    page.click("#perturb-compare")
    page.wait_for_selector("#perturb-diff .main-svg", timeout=60_000)
    assert page.locator("#perturb-stale").is_hidden()
    page.fill("#perturb-edited", window[:-1] + ("(" if window[-1] != "(" else ")"))
    page.wait_for_selector("#perturb-stale", state="visible", timeout=10_000)
    assert "out of date" in page.locator("#perturb-stale").inner_text()
    page.click("#perturb-compare")
    page.wait_for_selector("#perturb-stale", state="hidden", timeout=60_000)
    page.click("#perturb-ablate")
    page.wait_for_selector("#perturb-ablate-diff .main-svg", timeout=60_000)
    assert page.locator("#perturb-ablate-stale").is_hidden()
    page.fill("#perturb-cells", "2")
    page.wait_for_selector("#perturb-ablate-stale", state="visible", timeout=10_000)
    assert "Run intervention" in page.locator("#perturb-ablate-stale").inner_text()
    assert not errors, errors
