"""Screenshots of every app page (1400 x 900) into ``assets/screenshots/``.

Starts the app on the demo stores (built on first use, as ``workbench serve`` does) on a free
loopback port and drives the system chromium with playwright::

    .venv/bin/python demos/screenshots.py [--out assets/screenshots] [--chromium PATH]
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from urllib.parse import urlencode

ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
#: The tweet the Explain and Perturb shots explain (a real one would do; this reads clearly).
TWEET = "the food was good but the service was slow and the staff were rude"
READY = """(sel) => { const g = document.querySelector(sel + ' .js-plotly-plot');
    return g && g._fullData && g._fullData.some(t => t._length || (t.z && t.z.length)); }"""


def _states_query(ctx) -> str:
    """A python-LM view with a brush that selects a few cells (searched in the store)."""
    from workbench.app import _states_logic as logic

    store = ctx.store("python")
    name = "rnn.1.fwd.hidden"
    best = None
    for a in range(200, 3000, 3):
        d = logic.document_of(store, a)
        lo = int(store.boundaries[d])
        if a + 4 > int(store.boundaries[d + 1]):
            continue
        n = store.select_cells(name, d, a - lo, a - lo + 4, threshold=0.3).size
        if 2 <= n <= 8:
            best = a
            break
    best = best if best is not None else 400
    view = logic.ViewState("python", [name], start=best - 40, size=100, brush=(best, best + 4))
    return view.query()


def _box_select(page, selector: str) -> None:
    """Lasso a band across the middle of a map (what a user does to list contexts)."""
    box = page.locator(f"{selector} .nsewdrag").first.bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    path = [(0.35, 0.2), (0.65, 0.2), (0.65, 0.8), (0.35, 0.8), (0.35, 0.21)]
    page.mouse.move(x + w * path[0][0], y + h * path[0][1])
    page.mouse.down()
    for a, b in path[1:]:
        page.mouse.move(x + w * a, y + h * b, steps=8)
    page.mouse.up()
    page.wait_for_selector("#projection-selected table")
    page.wait_for_timeout(500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="assets/screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--only", default="", help="comma-separated shots, e.g. explain,perturb")
    opts = parser.parse_args()

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from workbench.app import AppContext, create_app

    ctx = AppContext()
    ctx.prepare(progress=True)
    srv = make_server("127.0.0.1", opts.port, create_app(ctx).server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}"
    shots = [
        ("states-literal", "/states?model=python", "#states-graph-box-0"),
        ("states", "/states" + _states_query(ctx), "#states-match-strength"),
        ("projection", "/projection?model=parens&method=umap&colour=meta:depth",
         "#projection-map"),
        ("gates", "/gates?model=python", "#gates-best-trajectory"),
        ("model", "/model?model=python", "#model-metrics"),
        ("explain", "/explain?" + urlencode({"model": "sentiment", "text": TWEET,
         "methods": "saliency,integrated_gradients,lrp,occlusion"}), "#explain-curves"),
        ("perturb", "/perturb?" + urlencode({"model": "sentiment", "text": TWEET,
         "edited": TWEET.replace("good", "awful")}), "#perturb-diff"),
        ("attention", "/attention?model=g2p&word=phoneme", "#attention-matrix"),
        ("memory", "/memory?model=python", "#memory-connectivity"),
    ]  # fmt: skip
    if opts.only:
        shots = [s for s in shots if s[0] in opts.only.split(",")]
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=opts.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(180_000)
        for name, path, plot in shots:
            page.goto(url + path)
            if plot:
                page.wait_for_function(READY, arg=plot)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(1500)
            if name == "projection":  # a box drawn over part of the map lists its contexts
                _box_select(page, "#projection-map")
            if name == "states":
                page.locator("#states-graph-box-0").scroll_into_view_if_needed()
            if name in ("explain", "perturb"):  # the results, with the input above them
                anchor = "#explain-methods" if name == "explain" else "#perturb-text"
                page.evaluate(f"document.querySelector('{anchor}').scrollIntoView()")
                page.evaluate("window.scrollBy(0, -90)")  # below the navigation bar
            page.screenshot(path=str(out / f"{name}.png"))
            print("wrote", out / f"{name}.png")
            if name == "states":  # the match view below the trajectories
                page.locator("#states-match-summary").scroll_into_view_if_needed()
                page.evaluate("window.scrollBy(0, -60)")
                page.wait_for_timeout(500)
                page.screenshot(path=str(out / "states-match.png"))
                print("wrote", out / "states-match.png")
        browser.close()
    srv.shutdown()


if __name__ == "__main__":
    main()
