"""``workbench bench app --browser`` runs end to end in Chromium and prints its table.

One repetition per case on the tests' small stores; no time is asserted (the figures live
in the README, measured with many repetitions).
"""

import pytest
from app_fixtures import small_context
from browser import needs_chromium, playwright_api

playwright_api()
pytestmark = needs_chromium


def test_browser_bench_measures_every_case_and_prints_its_table(tmp_path_factory):
    from rich.console import Console

    from workbench.app import _bench, _bench_browser

    ctx = small_context(tmp_path_factory)
    rows = _bench_browser.run(ctx, repeats=1)
    cases = [r[0] for r in rows]
    assert cases == ["brush -> selected cells", "brush -> match list", "explain (lrp + ig)",
                     "perturb compare", "projection recolour"]  # fmt: skip
    got = dict((case, ts) for case, ts, _ in rows)
    for case in ("brush -> selected cells", "explain (lrp + ig)", "perturb compare",
                 "projection recolour"):  # fmt: skip
        assert len(got[case]) == 1 and got[case][0] > 0, case
    assert len(got["brush -> match list"]) <= 1  # only brushes that selected cells
    console = Console(record=True, width=200)
    console.print(_bench._table("browser", rows, _bench_browser.TARGETS))
    text = console.export_text()
    assert "brush -> selected cells" in text and "300 ms" in text and "p95" in text


def test_browser_bench_says_what_is_missing():
    from workbench.app import _bench_browser

    with pytest.raises(RuntimeError, match="apt-get install -y chromium"):
        _bench_browser._chromium(("/nonexistent/chromium",), ("no-such-browser-wb",))


def test_browser_bench_times_a_running_server_page_by_page(tmp_path_factory):
    from workbench.app import _bench_browser

    ctx = small_context(tmp_path_factory)
    with pytest.raises(RuntimeError, match="unknown pages \\['stats'\\]: pick from states"):
        _bench_browser.run(ctx, repeats=1, pages=["stats"])
    with _bench_browser._server(ctx) as url:  # stands for a server started elsewhere
        rows = _bench_browser.run(ctx, repeats=1, url=url, pages=["projection"])
    assert [r[0] for r in rows] == ["projection recolour"]
    assert len(rows[0][1]) == 1 and rows[0][1][0] > 0
