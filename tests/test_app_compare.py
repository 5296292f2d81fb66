"""The Compare page: its logic on real small stores of the shipped char LMs, and the page as
a user reads it in headless Chromium (the CKA heatmap, tables, saturation, one-line errors).
"""

import numpy as np
import pytest
from browser import TIMEOUT, chromium, needs_chromium, served

from workbench.app import AppContext, create_app
from workbench.app import _compare_logic as logic
from workbench.app.pages import compare as page_module

MODELS = ("python", "python-gru", "python-rnn", "sentiment")
TOKENS = {"python": 2000, "python-gru": 2000, "python-rnn": 2000, "sentiment": 300}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    base = AppContext()
    models = {k: v for k, v in base.models.items() if k in MODELS}
    out = AppContext(models=models, corpus_tokens=TOKENS, cache=tmp_path_factory.mktemp("cmp"))
    out.prepare(progress=False)
    return out


def test_comparison_of_the_shipped_lstm_gru_and_rnn(ctx):
    res = logic.comparison(ctx, "python", "python-gru")
    assert res.steps == 2000
    assert res.names_a == [f"rnn.{k}.fwd.{q}" for k in (0, 1) for q in ("hidden", "cell")]
    assert res.names_b == ["rnn.0.fwd.hidden", "rnn.1.fwd.hidden"]
    assert res.cka.shape == (4, 2) and np.all((res.cka > 0) & (res.cka <= 1))
    same = logic.comparison(ctx, "python-rnn", "python-rnn")
    np.testing.assert_allclose(np.diag(same.cka), 1.0, atol=1e-9)
    figs = logic.figures(ctx, "python", "python-rnn")
    assert set(figs) == {"summary", "bpc", "cka", "matches", "cells", "saturation"}
    bars = figs["bpc"].data[0]
    assert list(bars.x) == ["python", "python-rnn"]
    assert bars.y[0] == pytest.approx(ctx.bundle("python").metrics["test_bits_per_char"])
    assert len(figs["matches"].data[0].cells.values[0]) == logic.MATCH_ROWS
    # the tanh RNN has no gates: its panel says so
    assert any(a.text == "no gates" for a in figs["saturation"].layout.annotations)


def test_errors_are_one_line_with_the_fix(ctx, tmp_path):
    with pytest.raises(logic.ViewError, match="different tokenizers"):
        logic.comparison(ctx, "python", "sentiment")
    with pytest.raises(logic.ViewError, match="unknown model"):
        logic.comparison(ctx, "python", "nope")
    bare = AppContext(models=dict(ctx.models), corpus_tokens=TOKENS, cache=tmp_path)
    with pytest.raises(logic.ViewError, match="No state store for python.*workbench serve"):
        logic.comparison(bare, "python", "python-gru")
    assert logic.defaults(ctx, "nope", None)[2].startswith("unknown model 'nope'")
    assert logic.defaults(ctx) == ("python", "python-gru", None)
    assert "sentiment" not in logic.comparable(ctx)
    page_module.layout(ctx, a="nope", b="python-rnn")  # reported, never raised
    assert "/memory" in str(page_module.layout(ctx))  # memory horizons: a static link


@needs_chromium
def test_compare_page_in_the_browser(ctx, tmp_path):
    with served(create_app(ctx)) as url, chromium() as browser:
        pg = browser.new_page(viewport={"width": 1300, "height": 2600})
        pg.set_default_timeout(TIMEOUT)
        errors = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(f"{url}/compare?a=python&b=python-rnn")
        pg.wait_for_function(
            """() => { const g = document.querySelector('#compare-cka .js-plotly-plot');
            return g && g._fullData && g._fullData.some(t => t.z && t.z.length === 4); }"""
        )
        pg.wait_for_selector("#compare-summary:has-text('common steps compared')")
        texts = pg.eval_on_selector_all("#compare-cka svg text", "ts => ts.map(t => t.textContent)")
        assert "rnn.1.fwd.cell" in texts and "linear CKA, layer x layer" in texts
        pg.wait_for_selector("#compare-saturation svg text:has-text('no gates')")
        pg.wait_for_selector("#compare-cells svg text:has-text('in_string')")
        pg.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
        assert not errors, errors
        pg.goto(f"{url}/compare?a=python&b=sentiment")
        pg.wait_for_selector(".wb-compare .wb-error:has-text(\"unknown model 'sentiment'\")")
