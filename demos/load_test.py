"""Load test of the Dash app served by waitress on loopback.

Starts ``waitress`` on 127.0.0.1 in a child process (the app of the shipped demo models),
then drives N concurrent clients for S seconds, each looping over the Explain, Perturb
(compare and ablate) and States match callbacks with the payloads
the pages send (``POST /_dash-update-component``, built from ``/_dash-dependencies`` and the
page layouts the app returns). Reports errors, p50/p95/p99 latencies per callback and the
server's memory (PSS of all its processes) after warm-up, at its peak and at the end.

Usage::

    python demos/load_test.py --clients 50 --seconds 60
    python demos/load_test.py --clients 4 --seconds 5 --json out.json    # smoke run

The exit status is 1 when any request failed (HTTP error, timeout, or an error message
shown by the page).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = """
import json, sys
from pathlib import Path
from workbench.app import AppContext, serve
opts = json.loads(sys.argv[3])
ctx = AppContext(corpus_tokens=opts["tokens"], cache=opts["cache"])
ctx.prepare(progress=False)  # the demo stores (built once, cached), as `workbench serve` does
serve(ctx, host="127.0.0.1", port=int(sys.argv[1]), workers=int(sys.argv[2]),
      on_all_ready=lambda: Path(opts["ready"]).touch())
"""
#: Corpus tokens of the demo stores with --small (the test suite's smoke run).
SMALL = {"python": 3000, "sentiment": 1500, "parens": 1500}
TEXTS = {
    "sentiment": [
        "the food was great but the service was slow",
        "i did not like this movie at all",
        "what a wonderful day with friends",
        "not bad, not good either",
    ],
    "python": [
        "def add(a, b):\n    return a + b\n",
        "for i in range(10):\n    print(i)\n",
        "x = {'key': [1, 2, 3]}\n",
    ],
}
ERROR_MARKERS = ('"wb-error"', "explain-failed", "Traceback")
#: Answers that are right for a random selection: cells never on together anywhere.
VALID_MESSAGES = (" never on ",)


# ----------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, workers: int, small: bool, cache: str | None) -> subprocess.Popen:
    import tempfile

    import requests

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ready = Path(tempfile.mkdtemp(prefix="wb-load-")) / "ready"
    opts = json.dumps({"tokens": SMALL if small else None, "cache": cache, "ready": str(ready)})
    cmd = [sys.executable, "-c", SERVER, str(port), str(workers), opts]
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.time() + 600  # a first run builds the demo stores (about 40 s)
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            ok = requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
            if ok and ready.exists():  # every worker accepts requests
                return proc
        except requests.RequestException:  # refused, or queued while the workers load
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not answer within 600 s")


# ----------------------------------------------------------------------------- payloads
class Callbacks:
    """Payloads for ``/_dash-update-component`` from the app's own dependency list."""

    def __init__(self, base: str, session) -> None:
        self.base, self.session = base, session
        deps = session.get(f"{base}/_dash-dependencies", timeout=60).json()
        self.by_output = {d["output"]: d for d in deps}
        for d in deps:  # a multi-output callback ("..a.x...b.y..") is found by each output too
            if d["output"].startswith(".."):
                for part in d["output"].strip(".").split("..."):
                    if "@" not in part:  # not an allow_duplicate copy
                        self.by_output.setdefault(part, d)

    def has(self, output: str) -> bool:
        return output in self.by_output

    def payload(self, output: str, values: dict) -> dict:
        """The request body calling the callback of ``output`` ("id.prop") with ``values``."""
        dep = self.by_output[output]
        output = dep["output"]
        out_id, out_prop = output.rsplit(".", 1)

        def items(specs, changed=False):
            return [
                {"id": s["id"], "property": s["property"],
                 "value": values.get(f"{s['id']}.{s['property']}")}
                for s in specs
            ]  # fmt: skip

        inputs = items(dep["inputs"])
        outputs = {"id": out_id, "property": out_prop}
        if output.startswith(".."):  # a multi-output callback: "..a.x...b.y.."
            outputs = [
                {"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]}
                for o in output.strip(".").split("...")
            ]
        return {
            "output": output,
            "outputs": outputs,
            "inputs": inputs,
            "changedPropIds": [f"{i['id']}.{i['property']}" for i in inputs],
            "state": items(dep.get("state", [])),
        }

    def call(self, output: str, values: dict, timeout: float = 300):
        return self.session.post(
            f"{self.base}/_dash-update-component",
            json=self.payload(output, values),
            timeout=timeout,
        )


def find(tree, component_id: str):
    """Props of the component ``component_id`` in a Dash JSON component tree."""
    if isinstance(tree, dict):
        props = tree.get("props", {})
        if props.get("id") == component_id:
            return props
        for v in list(props.values()) + list(tree.values()):
            if isinstance(v, dict | list):
                got = find(v, component_id)
                if got is not None:
                    return got
    elif isinstance(tree, list):
        for v in tree:
            got = find(v, component_id)
            if got is not None:
                return got
    return None


def page(cb: Callbacks, path: str, query: str = ""):
    """The component tree the router returns for ``path`` (as the browser would get it)."""
    res = cb.call("wb-page.children", {"wb-url.pathname": path, "wb-url.search": query})
    res.raise_for_status()
    return res.json()["response"]["wb-page"]["children"]


def scenarios(cb: Callbacks, models: list[str]) -> list[tuple[str, str, callable]]:
    """``(name, output, make_values(rng))`` for every callback under test that exists."""
    out = []
    if cb.has("explain-output.children"):

        def explain_values(rng):
            model = rng.choice(models)
            return {
                "explain-run.n_clicks": 1,
                "explain-model.value": model,
                "explain-text.value": rng.choice(TEXTS[model]),
                "explain-methods.value": ["saliency", "lrp"],
                "explain-target.value": "prediction",
                "explain-cells.data": None,
            }

        out.append(("explain", "explain-output.children", explain_values))
    if cb.has("perturb-output.children"):
        names = {}
        for m in models:
            props = find(page(cb, "/perturb", f"?model={m}"), "perturb-name")
            names[m] = props["value"]

        def compare_values(rng):
            model = rng.choice(models)
            text = rng.choice(TEXTS[model])
            edited = text.replace("a", "o", 1) if "a" in text else text + " x"
            return {
                "perturb-compare.n_clicks": 1,
                "perturb-model.value": model,
                "perturb-text.value": text,
                "perturb-edited.value": edited,
                "perturb-name.value": names[model],
            }

        out.append(("perturb compare", "perturb-output.children", compare_values))
        if cb.has("perturb-ablate-output.children"):

            def ablate_values(rng):
                model = rng.choice(models)
                return {
                    "perturb-ablate.n_clicks": 1,
                    "perturb-model.value": model,
                    "perturb-text.value": rng.choice(TEXTS[model]),
                    "perturb-name.value": names[model],
                    "perturb-cells.value": ", ".join(str(rng.randrange(16)) for _ in range(3)),
                    "perturb-mode.value": "zero",
                    "perturb-value.value": 0,
                    "perturb-start.value": 0,
                }

            out.append(("perturb ablate", "perturb-ablate-output.children", ablate_values))
    match_output = next((o for o in cb.by_output if "states-match-strength.figure" in o), None)
    if match_output is not None and "python" in models:

        def match_values(rng):
            # a brushed selection as the States page hands it over: 1-8 cells of a layer of
            # the Python LM, searched over its whole demo store (300k characters)
            k = rng.randint(1, 8)
            return {
                "states-sel.data": {
                    "model": "python",
                    "name": rng.choice(["rnn.0.fwd.hidden", "rnn.1.fwd.hidden", "rnn.1.fwd.cell"]),
                    "cells": sorted(rng.sample(range(256), k)),
                    "threshold": 0.3,
                    "pad": [1, 0],
                },
                "states-match-track.value": rng.choice([None, "in_string", "in_comment"]),
            }

        out.append(("match", match_output, match_values))
    return out


# ----------------------------------------------------------------------------- clients
def client(base, cases, seed, deadline, results, lock) -> None:
    import requests

    rng = random.Random(seed)
    session = requests.Session()
    cb = Callbacks.__new__(Callbacks)
    cb.base, cb.session, cb.by_output = base, session, CALLBACKS.by_output
    turn = seed  # each client takes the callbacks in turn from its own starting point,
    while time.time() < deadline:  # so every callback is measured even in a short run
        name, output, make = cases[turn % len(cases)]
        turn += 1
        start = time.perf_counter()
        error = None
        try:
            res = cb.call(output, make(rng))
            body = res.text
            if res.status_code != 200:
                error = f"HTTP {res.status_code}"
            elif any(m in body for m in ERROR_MARKERS) and not any(
                m in body for m in VALID_MESSAGES
            ):
                error = "error shown: " + body[:300]
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        with lock:
            results.append((name, seconds, error))


CALLBACKS: Callbacks


def rss(pid: int) -> int:
    """Memory of the server and its workers: the sum of their PSS where the OS has it.

    PSS counts a page shared by several processes (the memory-mapped stores, the libraries)
    once in all, split between them; plain RSS would count it once per worker.
    """
    import psutil

    def one(p) -> int:
        try:
            info = p.memory_full_info()
            return getattr(info, "pss", info.rss)
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            return 0

    proc = psutil.Process(pid)
    return one(proc) + sum(one(c) for c in proc.children(True))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the server's processes have used so far."""
    import psutil

    total = 0.0
    proc = psutil.Process(pid)
    for p in [proc, *proc.children(True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def main(argv=None) -> int:
    global CALLBACKS
    import requests

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=0,
                        help="server processes (0: workbench serve's default)")  # fmt: skip
    parser.add_argument("--models", default="sentiment,python")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--small", action="store_true", help="small demo stores (smoke runs)")
    parser.add_argument("--cache", default=None, help="demo store folder (default: the app's)")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from workbench.app._serving import default_workers

    workers = args.workers or default_workers()
    server = start_server(port, workers, args.small, args.cache)
    try:
        CALLBACKS = Callbacks(base, requests.Session())
        cases = scenarios(CALLBACKS, models)
        if not cases:
            print("no callback under test is registered (pages missing?)")
            return 1
        rng = random.Random(args.seed)
        for _name, output, make in cases:  # warm-up: load models, first calls
            res = CALLBACKS.call(output, make(rng))
            res.raise_for_status()
        startup = time.perf_counter() - t0
        mem_start = peak = rss(server.pid)
        cpu_start = cpu_seconds(server.pid)
        results: list = []
        lock = threading.Lock()
        deadline = time.time() + args.seconds
        threads = [
            threading.Thread(target=client,
                             args=(base, cases, args.seed + 1 + i, deadline, results, lock))
            for i in range(args.clients)
        ]  # fmt: skip
        for t in threads:
            t.start()
        half, mem_half = time.time() + args.seconds / 2, None
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss(server.pid))
            if mem_half is None and time.time() >= half:
                mem_half = rss(server.pid)
            time.sleep(0.5)
        mem_end = rss(server.pid)
        cpu = cpu_seconds(server.pid) - cpu_start
        wall = args.seconds
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = []
    for name, *_ in cases:
        lat = [s for n, s, e in results if n == name]
        errs = [e for n, s, e in results if n == name and e]
        rows.append(dict(callback=name, requests=len(lat), errors=len(errs),
                         p50=percentile(lat, 50), p95=percentile(lat, 95),
                         p99=percentile(lat, 99), per_s=len(lat) / wall,
                         first_error=errs[0] if errs else None))  # fmt: skip
    all_lat = [s for _, s, _ in results]
    errors = sum(r["errors"] for r in rows)
    print(
        f"\n{args.clients} clients x {args.seconds:.0f} s against waitress ({workers} "
        f"worker processes) on 127.0.0.1; models {', '.join(models)}; server ready + warm-up "
        f"{startup:.1f} s\n"
    )
    print("| callback | requests | errors | p50 | p95 | p99 | requests/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows + [dict(callback="all", requests=len(all_lat), errors=errors,
                          p50=percentile(all_lat, 50), p95=percentile(all_lat, 95),
                          p99=percentile(all_lat, 99), per_s=len(all_lat) / wall)]:  # fmt: skip
        print(
            f"| {r['callback']} | {r['requests']} | {r['errors']} | {r['p50']:.2f} s | "
            f"{r['p95']:.2f} s | {r['p99']:.2f} s | {r['per_s']:.1f} |"
        )
    mb = 1024 * 1024
    print(
        f"\nserver memory (PSS, all processes): {mem_start / mb:.0f} MB after warm-up, "
        f"peak {peak / mb:.0f} MB, "
        f"{mem_end / mb:.0f} MB at the end (growth {(mem_end - mem_start) / mb:+.0f} MB; "
        f"{(mem_end - (mem_half or mem_end)) / mb:+.0f} MB over the second half)"
    )
    print(
        f"server CPU time during the run: {cpu:.0f} s ({cpu / max(len(all_lat), 1):.2f} s per "
        f"request; {cpu / wall:.2f} cores busy on average)"
    )
    for r in rows:
        if r["first_error"]:
            print(f"first error of {r['callback']}: {r['first_error']}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                dict(
                    clients=args.clients,
                    seconds=args.seconds,
                    workers=workers,
                    rows=rows,
                    rss_start=mem_start,
                    rss_half=mem_half,
                    rss_peak=peak,
                    rss_end=mem_end,
                    p50=percentile(all_lat, 50),
                    p95=percentile(all_lat, 95),
                    p99=percentile(all_lat, 99),
                    errors=errors,
                    requests=len(all_lat),
                    cpu_seconds=cpu,
                ),
                indent=1,
            )  # fmt: skip
        )
    return 1 if errors or not results else 0


if __name__ == "__main__":
    sys.exit(main())
