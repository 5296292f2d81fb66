"""``workbench bench app --browser``: latency a user sees, from mouse-up to the settled page.

A real app (the served models and their stores) runs in this process behind waitress, as
``workbench serve`` runs it, and headless Chromium (Playwright driving the system browser,
never a download) does what a user does:

- ``brush -> selected cells`` and ``brush -> match list``: drag over a few characters of
  the States page's trajectories (python model), timed to the cell list and the match list;
- ``explain (lrp + ig)``: press Explain on a tweet with LRP and integrated gradients;
- ``perturb compare``: edit a tweet and press Compare;
- ``projection recolour``: pick another colour on the Projection map (PCA).

Each time runs from the ``mouseup`` that ends the action (a capturing listener in the page)
to the last DOM change inside the element that shows the answer, once no callback request
is in flight and the element has been quiet for :data:`QUIET_MS` (so chained callbacks and
plotly's drawing count, the quiet wait does not).
"""

from __future__ import annotations

import shutil
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

#: Quiet time (ms) after which the page counts as settled.
QUIET_MS = 400
#: Targets on a quiet 2-core machine (p95, seconds).
TARGETS = {"brush -> selected cells": 0.300, "brush -> match list": 0.600}
#: In-flight seconds of each measurement since the last :func:`_take_busy` (see _measure).
_BUSY: list[float] = []
#: Longest wait for one answer (ms).
TIMEOUT_MS = 120_000

# counts Dash's requests in flight (Dash's renderer posts with fetch)
_INIT = """
(() => {
  const orig = window.fetch;
  window.__wbPending = 0;
  window.__wbFetchEnd = 0;
  window.__wbBusy = 0;  // ms with a request in flight (server, network), since armed
  let since = 0;
  window.fetch = function (...args) {
    if (window.__wbPending === 0) { since = performance.now(); }
    window.__wbPending += 1;
    return orig.apply(this, args).finally(() => {
      window.__wbPending -= 1;
      window.__wbFetchEnd = performance.now();
      if (window.__wbPending === 0) { window.__wbBusy += window.__wbFetchEnd - since; }
    });
  };
})();
"""
# arms one measurement: the next mouseup starts it, every change under a selector ends it
_ARM = """
(selectors) => {
  const st = {t0: null, last: {}, observers: []};
  window.__wbTiming = st;
  window.__wbBusy = 0;
  document.addEventListener('mouseup', () => { if (st.t0 === null) st.t0 = performance.now(); },
                            {capture: true, once: true});
  for (const sel of selectors) {
    st.last[sel] = null;
    const node = document.querySelector(sel);
    if (!node) { continue; }
    const obs = new MutationObserver(() => {
      if (st.t0 !== null) { st.last[sel] = performance.now(); }
    });
    obs.observe(node, {childList: true, subtree: true, characterData: true, attributes: true});
    st.observers.push(obs);
  }
}
"""
_SETTLED = """
(quiet) => {
  const st = window.__wbTiming;
  if (!st || st.t0 === null || window.__wbPending > 0) { return false; }
  const times = Object.values(st.last).filter(t => t !== null);
  const last = Math.max(window.__wbFetchEnd, ...times, st.t0);
  return performance.now() - last > quiet;
}
"""
_IDLE = """
(quiet) => window.__wbPending === 0 && performance.now() - window.__wbFetchEnd > quiet
"""
_READ = """
() => {
  const st = window.__wbTiming;
  st.observers.forEach(o => o.disconnect());
  const out = {};
  for (const [sel, t] of Object.entries(st.last)) { out[sel] = t === null ? null : t - st.t0; }
  out.busy = window.__wbBusy;
  return out;
}
"""


@contextmanager
def _server(ctx):
    """The app behind waitress on 127.0.0.1 (a free port) in a thread; yields its URL."""
    from waitress.server import create_server

    from workbench.app import create_app

    app = create_app(ctx)
    srv = create_server(app.server, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.effective_port}"
    finally:
        srv.close()
        thread.join(5)


def _measure(page, selectors: list[str], action) -> dict[str, float | None]:
    """Seconds from the action's mouseup to the last change under each selector.

    ``busy`` is the time some callback request was in flight (server and network); the
    rest is the browser's (Dash's renderer, React, plotly drawing).
    """
    page.evaluate(_ARM, selectors)
    action()
    page.wait_for_function(_SETTLED, arg=QUIET_MS, timeout=TIMEOUT_MS, polling=50)
    got = page.evaluate(_READ)
    busy = got.pop("busy") / 1e3
    out = {k: None if v is None else v / 1e3 for k, v in got.items()}
    _BUSY.append(busy)
    return out


def _take_busy() -> float | None:
    """Median in-flight seconds of the measurements since the last call (then cleared)."""
    out = float(np.median(_BUSY)) if _BUSY else None
    _BUSY.clear()
    return out


def _with_busy(note: str) -> str:
    busy = _take_busy()
    return note if busy is None else f"{note}; requests in flight {busy * 1e3:.0f} ms (median)"


def _idle(page) -> None:
    """Wait until no callback request has been in flight for :data:`QUIET_MS`."""
    page.wait_for_function(_IDLE, arg=QUIET_MS, timeout=TIMEOUT_MS, polling=50)


def _wait_plot(page, selector: str) -> None:
    page.wait_for_function(
        """(sel) => { const g = document.querySelector(sel + ' .js-plotly-plot');
        return g && g._fullData && g._fullData.some(t => t._length || (t.z && t.z.length)); }""",
        arg=selector,
        timeout=TIMEOUT_MS,
    )


def _drag_tokens(page, box: str, a: float, b: float) -> None:
    """Drag on a States plot from ``a`` to ``b`` tokens after the left end of its x axis."""
    x0, x1, y = page.evaluate(
        """([sel, a, b]) => {
        const g = document.querySelector(sel + ' .js-plotly-plot');
        const ax = g._fullLayout.xaxis, ya = g._fullLayout.yaxis, r = g.getBoundingClientRect();
        const lo = Math.min(...ax.range) + 0.5;
        return [r.left + ax._offset + ax.l2p(lo + a), r.left + ax._offset + ax.l2p(lo + b),
                r.top + ya._offset + ya._length / 2]; }""",
        [box, a, b],
    )
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, y, steps=4)
    page.mouse.move(x1, y, steps=4)
    page.mouse.up()


def _states(page, url, ctx, model, repeats, rng, times, notes):
    store = ctx.store(model)
    if store is None:
        notes["brush -> selected cells"] = f"no store for {model}"
        return
    lengths = np.diff(store.boundaries)
    long = np.flatnonzero(lengths >= 40)  # room to brush inside a window
    if not long.size:
        notes["brush -> selected cells"] = f"no document of {model} has 40 tokens"
        return
    hits = 0
    for i in range(repeats + 1):  # the first brush warms up (compiled match kernels)
        d = int(rng.choice(long))
        lo, hi = int(store.boundaries[d]), int(store.boundaries[d + 1])
        start = int(rng.integers(lo, hi - 30))
        page.goto(f"{url}/states?{urlencode({'model': model, 'start': start})}")
        _wait_plot(page, "#states-graph-box-0")
        _idle(page)
        a = float(rng.integers(2, 20)) - 0.4
        width = float(rng.integers(2, 6))
        got = _measure(
            page,
            ["#states-cells", "#states-match-list"],
            lambda a=a, width=width: _drag_tokens(page, "#states-graph-box-0", a, a + width),
        )
        chips = page.locator("#states-cells .wb-chip").count()
        if i == 0:
            _take_busy()  # not the warm-up's
            continue
        hits += chips > 0
        if got["#states-cells"] is not None:
            times["brush -> selected cells"].append(got["#states-cells"])
        if chips and got["#states-match-list"] is not None:
            times["brush -> match list"].append(got["#states-match-list"])
    notes["brush -> selected cells"] = f"{model} store, {store.n_tokens:,} tokens"
    notes["brush -> match list"] = _with_busy(f"{hits} of the brushes selected cells")


def _tweets(n: int) -> list[str]:
    from workbench.data import corpus

    docs = corpus("sentiment", "test")
    return [" ".join(d.tokens) for d in docs if 8 <= len(d.tokens) <= 30][:n]


def _explain(page, url, repeats, times, notes):
    tweets = _tweets(repeats + 1)
    query = {"model": "sentiment", "methods": "lrp,integrated_gradients", "text": tweets[0]}
    page.goto(f"{url}/explain?{urlencode(query)}")
    page.wait_for_selector("#explain-heatmap .main-svg", timeout=TIMEOUT_MS)
    _idle(page)
    for text in tweets[1 : repeats + 1]:
        page.fill("#explain-text", text)
        got = _measure(page, ["#explain-output"], lambda: page.click("#explain-run"))
        if got["#explain-output"] is not None and page.locator("#explain-heatmap").count():
            times["explain (lrp + ig)"].append(got["#explain-output"])
    notes["explain (lrp + ig)"] = _with_busy("sentiment, tweets of 8-30 words, IG 32 steps")


def _perturb(page, url, repeats, times, notes):
    tweets = _tweets(repeats + 1)
    page.goto(f"{url}/perturb?{urlencode({'model': 'sentiment', 'text': tweets[0]})}")
    page.wait_for_selector("#perturb-compare", timeout=TIMEOUT_MS)
    _idle(page)
    for i, text in enumerate(tweets[: repeats + 1]):  # the first one warms up
        words = text.split()
        page.fill("#perturb-text", text)
        page.fill("#perturb-edited", " ".join(words[:-1] + ["terrible"]))
        got = _measure(page, ["#perturb-output"], lambda: page.click("#perturb-compare"))
        if i == 0:
            _take_busy()
        if i and got["#perturb-output"] is not None and page.locator("#perturb-diff").count():
            times["perturb compare"].append(got["#perturb-output"])
    notes["perturb compare"] = _with_busy("sentiment, last word replaced")


def _projection(page, url, model, repeats, times, notes):
    page.goto(f"{url}/projection?{urlencode({'model': model, 'method': 'pca', 'sample': 2000})}")
    _wait_plot(page, "#projection-map")
    _idle(page)
    page.click("#projection-colour")
    page.wait_for_selector(".dash-dropdown-option input", timeout=TIMEOUT_MS)
    values = page.evaluate(
        "() => [...document.querySelectorAll('.dash-dropdown-option input')].map(i => i.value)"
    )
    page.keyboard.press("Escape")
    cheap = [v for v in values if v.startswith("meta:") or v == "token"] or values
    for i in range(repeats + 1):  # the first one warms up
        value = cheap[(i + 1) % len(cheap)]
        page.click("#projection-colour")
        option = page.locator(f".dash-dropdown-option:has(input[value='{value}'])")
        got = _measure(page, ["#projection-map"], lambda option=option: option.click())
        if i == 0:
            _take_busy()
        if i and got["#projection-map"] is not None:
            times["projection recolour"].append(got["#projection-map"])
    notes["projection recolour"] = _with_busy(f"{model}, PCA of 2,000 states, {len(cheap)} colours")


#: Page groups :func:`run` can be limited to, and the cases each one times.
PAGES = {"states": ("brush -> selected cells", "brush -> match list"),
         "explain": ("explain (lrp + ig)",), "perturb": ("perturb compare",),
         "projection": ("projection recolour",)}  # fmt: skip


def run(ctx=None, repeats: int = 20, seed: int = 0, states_model: str = "python",
        url: str | None = None, pages=tuple(PAGES)) -> list:  # fmt: skip
    """Drive the app in Chromium; returns ``(case, [seconds], note)`` rows.

    Parameters
    ----------
    ctx : AppContext, optional
        What to serve (default: the demo models and their cached stores, built if missing).
    repeats : int
        Actions timed per case.
    states_model : str
        The model whose store the States and Projection pages show.
    url : str, optional
        A server already running (e.g. ``http://127.0.0.1:8050``, to compare two versions
        of the app under the same load); ``ctx`` must then hold the same stores (the default
        demo stores do). Default: the app runs in this process.
    pages : sequence of str
        Which of :data:`PAGES` to time (default all).

    Raises
    ------
    RuntimeError
        Without Playwright or the system Chromium (the message says how to install them).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RuntimeError(
            "the browser bench needs Playwright: pip install playwright (it drives the "
            "system chromium; no browser download)"
        ) from None
    from workbench.app import AppContext

    chromium = _chromium()
    if ctx is None:
        ctx = AppContext()
        ctx.prepare(progress=False)
    rng = np.random.default_rng(seed)
    unknown = sorted(set(pages) - set(PAGES))
    if unknown:
        raise RuntimeError(f"unknown pages {unknown}: pick from {', '.join(PAGES)}")
    cases = tuple(c for pg in PAGES if pg in pages for c in PAGES[pg])
    times: dict[str, list[float]] = {c: [] for c in cases}
    _take_busy()
    notes: dict[str, str] = dict.fromkeys(cases, "")
    with nullcontext(url) if url else _server(ctx) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.add_init_script(_INIT)
            if "states" in pages:
                _states(page, url, ctx, states_model, repeats, rng, times, notes)
            if "explain" in pages:
                _explain(page, url, repeats, times, notes)
            if "perturb" in pages:
                _perturb(page, url, repeats, times, notes)
            if "projection" in pages:
                _projection(page, url, states_model, repeats, times, notes)
        finally:
            browser.close()
    return [(c, times[c], notes[c]) for c in cases]


#: Where the system Chromium is looked for first.
_CANDIDATES = ("/usr/bin/chromium",)
_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _chromium(candidates=_CANDIDATES, names=("chromium", "chrome")) -> str:
    """The system Chromium: the first existing candidate path, else the first on PATH."""
    for p in (*candidates, *(shutil.which(n) or "" for n in names)):
        if p and Path(p).exists():
            return p
    raise RuntimeError("the browser bench needs the system Chromium: apt-get install -y chromium")
