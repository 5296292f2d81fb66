"""The app's server side against real small stores: bounded requests, serving, warm-up.

Callback bodies are the ones the pages send (built from ``/_dash-dependencies`` and the
component values of the page layouts the router returns); servers are real (Flask's test
client in-process, waitress on a loopback port, ``workbench serve`` worker processes).
"""

import json
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from app_fixtures import small_context
from typer.testing import CliRunner

from workbench.app import _limits, _serving, create_app
from workbench.app._cli import build_context

ROOT = Path(__file__).parents[1]
PAGES = ("/", "/explain", "/perturb", "/projection", "/gates", "/model", "/attention", "/memory")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return small_context(tmp_path_factory)


@pytest.fixture(scope="module")
def app(ctx):
    return create_app(ctx)


@pytest.fixture(scope="module")
def client(app):
    return app.server.test_client()


# ------------------------------------------------------------------------- real bodies
def _walk(tree, found: dict) -> None:
    """Component id -> props of every component in a Dash JSON tree."""
    if isinstance(tree, dict):
        props = tree.get("props")
        if isinstance(props, dict) and isinstance(props.get("id"), str):
            found.setdefault(props["id"], props)
        for v in tree.values():
            _walk(v, found)
    elif isinstance(tree, list):
        for v in tree:
            _walk(v, found)


def _route(client, path: str, search: str = ""):
    body = {
        "output": "wb-page.children",
        "outputs": {"id": "wb-page", "property": "children"},
        "inputs": [
            {"id": "wb-url", "property": "pathname", "value": path},
            {"id": "wb-url", "property": "search", "value": search},
        ],
        "changedPropIds": ["wb-url.pathname"],
        "state": [{"id": "wb-url-written", "property": "data", "value": None}],
    }
    return client.post("/_dash-update-component", json=body)


@pytest.fixture(scope="module")
def bodies(client):
    """One real callback body per server-side callback, values from the page layouts."""
    props: dict = {}
    for path in PAGES:
        res = _route(client, path)
        assert res.status_code == 200, path
        _walk(res.get_json()["response"]["wb-page"]["children"], props)
    out = []
    for dep in client.get("/_dash-dependencies").get_json():
        if dep.get("clientside_function"):
            continue
        output = dep["output"]
        if output.startswith(".."):
            outs = [dict(zip(("id", "property"), o.rsplit(".", 1), strict=True))
                    for o in output.strip(".").split("...")]  # fmt: skip
        else:
            outs = dict(zip(("id", "property"), output.rsplit(".", 1), strict=True))

        def items(specs):
            return [{"id": s["id"], "property": s["property"],
                     "value": props.get(s["id"], {}).get(s["property"])}
                    for s in specs]  # fmt: skip

        inputs = items(dep["inputs"])
        out.append({"output": output, "outputs": outs, "inputs": inputs,
                    "changedPropIds": [f"{i['id']}.{i['property']}" for i in inputs[:1]],
                    "state": items(dep.get("state", []))})  # fmt: skip
    return out


def _post(client, body):
    return client.post("/_dash-update-component", json=body)


def test_real_bodies_are_answered(client, bodies):
    """The guard refuses nothing the pages send (so the 400s below are about the mutations)."""
    for body in bodies:
        res = _post(client, body)
        assert res.status_code in (200, 204), (body["output"], res.get_data(as_text=True)[:300])


MUTANTS = (None, 0, -1, 1.5e308, True, "x", "", [], [1, "a", None], {}, {"a": [1]})


def test_mutated_callback_bodies_are_400_never_500(client, bodies):
    """About 250 field-type mutations of real bodies: answered (200/204) or 400, one line."""
    rng = random.Random(0)
    cases = []
    for b, body in enumerate(bodies):
        for field in ("inputs", "state"):
            for i in range(len(body[field])):
                cases += [(b, field, i, m) for m in range(len(MUTANTS))]
    picked = rng.sample(cases, min(230, len(cases)))
    seen = set()
    for b, field, i, m in picked:
        body = json.loads(json.dumps(bodies[b]))
        body[field][i]["value"] = MUTANTS[m]
        res = _post(client, body)
        text = res.get_data(as_text=True)
        assert res.status_code in (200, 204, 400), (body["output"], field, i, MUTANTS[m], text)
        if res.status_code == 400:
            assert text.count("\n") == 1 and "Traceback" not in text
        seen.add(res.status_code)
    structural = [
        None, [], "x", {"output": 1}, {"output": "a.b"},
        {"output": "wb-page.children", "outputs": 3, "inputs": []},
        {**bodies[0], "inputs": {"id": "x"}}, {**bodies[0], "inputs": [3]},
        {**bodies[0], "inputs": [{"id": 1, "property": "value"}]},
        {**bodies[0], "state": "x"}, {**bodies[0], "changedPropIds": [1]},
        {**bodies[0], "output": "nope.children"},
        {**bodies[0], "inputs": [{"id": "wb-url", "property": "pathname"}]},
        {**bodies[0], "inputs": bodies[0]["inputs"][:1]},  # fewer inputs than declared
        {**bodies[0], "inputs": bodies[0]["inputs"] * 2},
    ]  # fmt: skip
    for body in structural:
        res = _post(client, body)
        assert res.status_code == 400, (body, res.get_data(as_text=True)[:300])
    res = client.post("/_dash-update-component", data=b"{not json",
                      content_type="application/json")  # fmt: skip
    assert res.status_code == 400
    assert 400 in seen


def _on_select_body(bodies, cells):
    body = next(b for b in bodies if "states-cells.children" in b["output"])
    body = json.loads(json.dumps(body))
    for item in body["state"]:
        if item["id"] == "states-url-cells":
            item["value"] = cells
    return body


def test_long_lists_are_refused_with_the_limit(client, bodies):
    res = _post(client, _on_select_body(bodies, list(range(30_000))))
    assert res.status_code == 400
    text = res.get_data(as_text=True)
    assert "states-url-cells.data has 30,000 entries" in text and f"{_limits.MAX_ITEMS:,}" in text
    assert _post(client, _on_select_body(bodies, [0, 1, 2])).status_code == 200


@pytest.mark.parametrize(
    "search",
    ["?start=1e309", "?start=inf&end=nan&threshold=1e309", "?start=-1e309&brush=1e309,2",
     "?ctx=1", "?step=1e309&cells=1e309", "?sample=1e309&unit=nan", "?cells=" + "9" * 5000,
     "?model=python&start=3.5", "?" + "&".join(f"k{i}=1" for i in range(5000))],
)  # fmt: skip
def test_url_values_never_give_500(client, search):
    for path in PAGES:
        res = _route(client, path, search)
        assert res.status_code == 200, (path, search, res.get_data(as_text=True)[:300])
        assert "Traceback" not in res.get_data(as_text=True)


def test_query_numbers_are_bounded():
    problems: list[str] = []
    assert _limits.query_int("1e309", "start", problems) is None
    assert _limits.query_int("12", "start", problems) == 12
    assert _limits.query_int("1e3", "start", problems) == 1000
    assert _limits.query_int("3.5", "start", problems) is None
    assert _limits.query_int(str(10**13), "start", problems) is None
    assert _limits.query_float("nan", "threshold", problems) is None
    assert len(problems) == 4 and all(p.startswith("ignored ") for p in problems)
    assert _limits.query("?ctx=1&a-b=2&ok=3") == {"ok": "3"}


# ------------------------------------------------------------------ waitress on loopback
@pytest.fixture(scope="module")
def waitress_url(app):
    pytest.importorskip("waitress", reason="pip install waitress")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = _serving.make_server(app, sock)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.close()


def test_request_bodies_over_the_limit_are_413(waitress_url):
    import requests

    url = f"{waitress_url}/_dash-update-component"
    big = b'{"output": "' + b"a" * (_limits.MAX_BODY + 10) + b'"}'
    res = requests.post(url, data=big, headers={"Content-Type": "application/json"}, timeout=60)
    assert res.status_code == 413

    def chunks():  # no Content-Length: waitress counts while it reads
        for _ in range(_limits.MAX_BODY // 65536 + 2):
            yield b"a" * 65536

    res = requests.post(url, data=chunks(), headers={"Content-Type": "application/json"},
                        timeout=60)  # fmt: skip
    assert res.status_code == 413
    assert requests.get(waitress_url, timeout=60).status_code == 200  # still serving


# ----------------------------------------------------------------------------- serve CLI
def _cli(args):
    from workbench.cli import app

    return CliRunner().invoke(app, ["serve", *args])


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_serve_refuses_ports_outside_the_range(port):
    res = _cli(["--port", port, "--no-build"])
    assert res.exit_code == 1
    assert "outside 1-65535" in res.output and res.output.count("\n") == 1
    assert "ready" not in res.output


def test_serve_on_a_busy_port_says_so_before_ready():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = _cli(["--port", str(port), "--no-build"])
    assert res.exit_code == 1
    assert res.output == f"error: port {port} is in use; pass --port\n"


def test_serve_checks_the_store_came_from_the_model(ctx):
    path = ctx.store_path("parens")
    with pytest.raises(ValueError, match="recorded from another model"):
        build_context(path, "python", rebuild=False, build=False)
    with socket.socket() as s:  # a free port the command may bind and give back
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = _cli([str(path), "--model", "python", "--port", str(port)])
    assert res.exit_code == 1 and "recorded from another model" in res.output
    assert res.output.count("\n") == 1
    same = build_context(path, "parens", rebuild=False, build=False)
    assert same.model_names() == ["parens"]


# ------------------------------------------------------------------------------ warm-up
def _saturation_body(bodies, model):
    body = next(b for b in bodies if b["output"] == "gates-saturation.figure")
    body = json.loads(json.dumps(body))
    for item in body["inputs"] + body["state"]:
        if item["id"] == "gates-layer":
            item["value"] = None
        if item["id"] == "gates-model":
            item["value"] = model
    return body


def test_warm_up_never_makes_a_callback_wait(ctx, client, bodies):
    """A warm-up computing the very table a callback needs: the callback answers first."""
    model = "parens"
    store = ctx.store(model)
    release, started = threading.Event(), threading.Event()
    key = ("saturation", model)
    ctx._memo.pop(key, None)

    def slow_saturation():
        started.set()
        release.wait(300)
        return store.saturation()

    def warm():
        with ctx.warming():
            ctx.cached(key, slow_saturation)

    warmer = threading.Thread(target=warm, daemon=True)
    warmer.start()
    assert started.wait(60)
    answered = []
    asker = threading.Thread(
        target=lambda: answered.append(_post(client, _saturation_body(bodies, model))),
        daemon=True,
    )
    asker.start()
    asker.join(120)
    try:
        assert answered, "the callback waited for the warm-up"
        assert not release.is_set() and warmer.is_alive()  # the warm-up is still running
        assert answered[0].status_code == 200
        assert "gates-saturation" in answered[0].get_data(as_text=True)
    finally:
        release.set()
        warmer.join(60)


def test_kernel_warm_up_runs_in_another_process(ctx):
    import os

    from workbench.app._warm import warm_in_background

    thread, proc = warm_in_background(ctx)
    try:
        assert proc.pid != os.getpid()
        names = {t.name for t in threading.enumerate()}
        assert "workbench-umap-warmup" not in names  # nothing compiles in this process
        thread.join(120)
        assert not thread.is_alive()
    finally:
        proc.terminate()
        proc.wait(30)


# ------------------------------------------------------------------------------ workers
SUPERVISOR = """
import json, sys
from workbench.app import AppContext, serve
spec = json.loads(sys.argv[1])
serve(AppContext.from_spec(spec), port=int(sys.argv[2]), workers=2,
      on_all_ready=lambda: print("all ready", flush=True))
"""


def test_workers_serve_in_parallel_and_stop_with_the_supervisor(ctx):
    import psutil
    import requests

    pytest.importorskip("waitress", reason="pip install waitress")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR, json.dumps(ctx.spec()), str(port)],
                            stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "all ready"
        workers = {c.pid for c in psutil.Process(proc.pid).children()}
        seen = set()
        for _ in range(40):  # fresh connections: the kernel hands them to either worker
            res = requests.get(f"http://127.0.0.1:{port}/", timeout=60,
                               headers={"Connection": "close"})  # fmt: skip
            assert res.status_code == 200
            seen.add(int(res.headers["X-Workbench-Worker"]))
        assert seen <= workers and len(seen) == 2
    finally:
        proc.terminate()
        proc.wait(60)
    deadline = time.monotonic() + 30
    while any(psutil.pid_exists(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in workers)  # fmt: skip


# --------------------------------------------------------------------------------- jobs
def _wait(jobs, job, states, timeout=300):
    deadline = time.monotonic() + timeout
    while (status := jobs.status(job))["state"] not in states:
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    return status


def test_a_job_reports_progress_and_its_result_lands_in_the_store(ctx):
    jobs = ctx.jobs()
    name = next(n for n in ctx.store("parens").names if n.endswith("hidden"))
    kwargs = dict(model="parens", name=name, method="pca", sample=500, seed=3)
    job = jobs.start("projection", restart=True, **kwargs)
    assert jobs.start("projection", **kwargs) == job  # the same request joins the same job
    status = _wait(jobs, job, ("done", "failed"))
    assert status == {"state": "done", "fraction": 1.0, "message": "done"}
    assert jobs.result(job) == {"points": 500}
    proj = ctx.store("parens").projection(name, method="pca", sample=500, seed=3,
                                          progress=False)  # fmt: skip
    assert proj.sample.size == 500  # read back from the store's cache


def test_a_job_can_be_cancelled_and_its_process_stops(ctx):
    import psutil

    jobs = ctx.jobs()
    name = next(n for n in ctx.store("python").names if n.endswith("cell"))
    job = jobs.start("projection", restart=True, model="python", name=name, method="umap",
                     sample=3000, seed=11)  # fmt: skip
    _wait(jobs, job, ("running",))
    pid = json.loads((jobs.folder / f"{job}.json").read_text())["pid"]
    assert pid and psutil.pid_exists(pid)
    assert jobs.cancel(job)
    assert jobs.status(job)["state"] == "cancelled"
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert jobs.status(job)["state"] == "cancelled"
    with pytest.raises(ValueError, match="not a job id"):
        jobs.status("../../etc/passwd")


def test_a_cancelled_run_never_writes_over_the_next_run(ctx):
    """Cancel then start again at once: the cancelled run's process ends later, its reaper and
    its last progress must leave the new run's state alone (the page saw "failed" otherwise)."""
    import subprocess
    import sys

    jobs = ctx.jobs()
    name = next(n for n in ctx.store("parens").names if n.endswith("hidden"))
    kwargs = dict(model="parens", name=name, method="pca", sample=300, seed=21)
    job = jobs.start("projection", restart=True, **kwargs)
    jobs.cancel(job)
    again = jobs.start("projection", **kwargs)  # the same job, a new run
    assert again == job
    new_run = json.loads((jobs.folder / f"{job}.json").read_text())["run"]
    old = subprocess.Popen([sys.executable, "-c", "pass"], stderr=subprocess.PIPE)
    jobs._reap(old, job, "an-earlier-run")  # an earlier run's process ends (status 0) now
    assert json.loads((jobs.folder / f"{job}.json").read_text()).get("run") == new_run
    status = _wait(jobs, job, ("done", "failed"))
    assert status == {"state": "done", "fraction": 1.0, "message": "done"}


def test_the_job_panel_shows_progress_and_cancels(ctx):
    from workbench.app import _job_panel

    app = create_app(ctx)
    _job_panel.register(app, ctx, "tjob")
    client = app.server.test_client()
    name = next(n for n in ctx.store("python").names if n.endswith("hidden"))
    job = ctx.jobs().start("projection", restart=True, model="python", name=name,
                           method="umap", sample=3000, seed=12)  # fmt: skip
    outs = ["tjob-job-bar.value", "tjob-job-message.children", "tjob-job-panel.style",
            "tjob-job-poll.disabled", "tjob-job-done.data"]  # fmt: skip

    def poll(trigger):
        inputs = [{"id": "tjob-job", "property": "data", "value": job},
                  {"id": "tjob-job-poll", "property": "n_intervals", "value": 1},
                  {"id": "tjob-job-cancel", "property": "n_clicks", "value": 1}]  # fmt: skip
        body = {"output": ".." + "...".join(outs) + "..",
                "outputs": [dict(zip(("id", "property"), o.rsplit(".", 1), strict=True))
                            for o in outs],
                "inputs": inputs, "changedPropIds": [trigger],
                "state": [{"id": "tjob-job-done", "property": "data", "value": None}]}  # fmt: skip
        res = _post(client, body)
        assert res.status_code == 200, res.get_data(as_text=True)
        return res.get_json()["response"]

    _wait(ctx.jobs(), job, ("running",))
    shown = poll("tjob-job-poll.n_intervals")
    assert shown["tjob-job-panel"]["style"] == {"display": "flex"}
    assert shown["tjob-job-poll"]["disabled"] is False and shown["tjob-job-message"]["children"]
    stopped = poll("tjob-job-cancel.n_clicks")
    assert stopped["tjob-job-message"]["children"] == "cancelled"
    assert stopped["tjob-job-poll"]["disabled"] is True
    assert stopped["tjob-job-done"]["data"]["state"] == "cancelled"
    assert ctx.jobs().status(job)["state"] == "cancelled"


def test_a_held_port_is_busy_for_others_and_each_worker_listens_on_its_own_socket():
    if not _serving.REUSEPORT:
        pytest.skip("no SO_REUSEPORT on this system: workers share the supervisor's socket")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    held = _serving.bind("127.0.0.1", port, listen=False)
    try:
        assert not _serving.listening(held)
        for listen in (True, False):  # another server, one process or several
            with pytest.raises(_serving.PortError, match=f"port {port} is in use"):
                _serving.bind("127.0.0.1", port, listen=listen)
        mine = [_serving.own_socket(held) for _ in range(2)]  # two workers on one port
        assert all(_serving.listening(s) and s.getsockname()[1] == port for s in mine)
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # the kernel hands it to one of the listening sockets, never to the holder
        for s in mine:
            s.close()
    finally:
        held.close()
