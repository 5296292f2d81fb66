"""Long work as jobs in real headless Chromium: progress, Cancel, and running again.

The Projection page's UMAP fit and the Explain page's SHAP run in a job process
(:mod:`workbench.app._jobs`): the page shows the job's progress, Cancel stops its process
and says so, the server keeps answering, and a second request runs to its result.
Waits are on DOM conditions only (:data:`browser.TIMEOUT` is a hang guard).
"""

import json
import time
from urllib.parse import urlencode

import psutil
import pytest
from browser import TIMEOUT, needs_chromium, playwright_api, served

from workbench.app import AppContext, _jobs, create_app

playwright = playwright_api()
pytestmark = needs_chromium
SENTENCE = "the food was great but the service was slow and the room was cold"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    # a cache of its own: the UMAP map of the test is never already in a shared store
    models = {k: v for k, v in AppContext().models.items() if k in ("sentiment", "parens")}
    ctx = AppContext(models=models, corpus_tokens={"sentiment": 600, "parens": 600},
                     cache=tmp_path_factory.mktemp("jobs-cache"))  # fmt: skip
    ctx.prepare(progress=False)
    return ctx


@pytest.fixture(scope="module")
def server(ctx):
    with served(create_app(ctx)) as url:
        yield url


def _open(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page, errors


def _job_pids(ctx) -> list[int]:
    pids = []
    for path in ctx.jobs().folder.glob("*.json"):
        if not path.name.endswith(".result.json"):
            pids.append(json.loads(path.read_text()).get("pid"))
    return [p for p in pids if p]


def _assert_stopped(pids) -> None:
    deadline = time.monotonic() + 60
    for pid in pids:
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
            assert time.monotonic() < deadline, f"job process {pid} still runs after Cancel"
            time.sleep(0.1)


def _cancel_shown(page, prefix: str) -> None:
    panel = page.locator(f"#{prefix}-job-panel")
    panel.wait_for(state="visible")  # the job's progress shows while it runs
    assert page.locator(f"#{prefix}-job-message").inner_text().strip()
    page.click(f"#{prefix}-job-cancel")
    page.wait_for_function(
        f"document.querySelector('#{prefix}-job-message').innerText === 'cancelled'"
    )


def test_umap_shows_progress_cancels_and_fits_again(ctx, server, browser):
    query = urlencode({"model": "parens", "method": "umap", "sample": 2000})
    page, errors = _open(browser, f"{server}/projection?{query}")
    _cancel_shown(page, "projection")
    page.wait_for_selector("#projection-map text.annotation-text >> text=UMAP cancelled")
    _assert_stopped(_job_pids(ctx))
    assert ctx.jobs().running() == []
    page.click("#projection-fit")  # the same map again: a new job, to its end
    page.wait_for_function(  # a fresh process loads numba's kernels: slow on a busy machine
        "document.querySelector('#projection-map .gtitle')?.textContent.startsWith('UMAP')",
        timeout=2 * TIMEOUT,
    )
    assert page.locator("#projection-job-panel").is_hidden()
    assert not errors, errors


def test_shap_shows_progress_cancels_and_runs_again(ctx, server, browser):
    query = urlencode({"model": "sentiment", "text": SENTENCE, "methods": "shap"})
    page, errors = _open(browser, f"{server}/explain?{query}")
    page.wait_for_selector("#explain-running")  # the page says the job runs in the background
    _cancel_shown(page, "explain")
    page.wait_for_selector("#explain-cancelled")
    _assert_stopped(_job_pids(ctx))
    page.click("#explain-run")
    page.wait_for_selector("#explain-panel-shap.explain-ok", timeout=2 * TIMEOUT)
    page.wait_for_selector("#explain-heatmap .main-svg")
    assert "prediction:" in page.locator("#explain-prediction").inner_text()
    assert not errors, errors


def test_a_client_runs_a_bounded_number_of_jobs(ctx):
    jobs = ctx.jobs()
    name = next(n for n in ctx.store("parens").names if n.endswith("hidden"))
    started = [jobs.start("projection", client="10.0.0.9", model="parens", name=name,
                          method="umap", sample=None, seed=100 + i)
               for i in range(_jobs.MAX_PER_CLIENT)]  # fmt: skip
    try:
        with pytest.raises(_jobs.JobLimitError, match="limit is 2: wait for one"):
            jobs.start("projection", client="10.0.0.9", model="parens", name=name,
                       method="umap", sample=None, seed=99)  # fmt: skip
        # joining a running job is allowed, and another client is not held up
        assert jobs.start("projection", client="10.0.0.9", model="parens", name=name,
                          method="umap", sample=None, seed=100) == started[0]  # fmt: skip
    finally:
        for job in started:
            jobs.cancel(job)
    assert jobs.running() == []
