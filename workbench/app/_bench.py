"""``workbench bench app``: latency of the States page's server-side callbacks.

On a ~1M-token x 650-unit store (synthetic telegraph states, the store ``bench store`` uses,
cached under the workbench cache folder), each request runs the callback function the page
runs and serialises its answer as Dash does:

- ``brush -> selection``: :func:`~workbench.app.pages.states.update_selection` plus the
  figure patch, the counts figure and the URL (target p95 <= 200 ms);
- ``match``: :func:`~workbench.app.pages.states.match_view` for the selected cells (target
  p95 <= 300 ms);
- ``window -> view``: :func:`~workbench.app.pages.states.render_view` (400 tokens x 650
  units, for reference).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer

TARGETS = {"brush -> selection": 0.200, "match (1-20 cells)": 0.300}


def synthetic_store(path: Path, tokens: int, units: int = 650, seed: int = 0, doc: int = 2000):
    """A store of independent on/off units (runs of mean 12 on, 28 off steps, plus noise).

    Every unit switches at its own times, as real hidden units do, so a brush selects a
    handful of cells (LSTMVis hypotheses) rather than every unit that shares a switch grid.
    Tokens are letters, documents ``doc`` steps long, one meta track ``unit0_on``.
    """
    import zarr

    from workbench.store._build import TOKEN_COLUMNS
    from workbench.store._layout import (
        MANIFEST_KEY,
        SCHEMA_VERSION,
        create_column,
        create_states,
    )
    from workbench.store._store import StateStore

    rng = np.random.default_rng(seed)
    on = np.empty((units, tokens), dtype=bool)
    for u in range(units):
        runs = np.empty(2 * (tokens // 20 + 64), dtype=np.int64)
        runs[0::2] = rng.geometric(1 / 28, runs.size // 2)  # off
        runs[1::2] = rng.geometric(1 / 12, runs.size // 2)  # on
        runs = runs[int(rng.integers(0, 2)) :]
        first = bool(runs.size % 2 == 0)
        parity = (np.arange(runs.size) % 2 == 1) ^ (not first)
        on[u] = np.repeat(parity, runs)[:tokens]
    chunk = 8192
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    name = "lstm.0.fwd.hidden"
    arr = create_states(group, name, tokens, units, chunk, "float16")
    for a in range(0, tokens, chunk):
        b = min(a + chunk, tokens)
        block = np.where(on[:, a:b].T, 0.8, -0.3).astype(np.float32)
        block += rng.normal(0, 0.08, block.shape).astype(np.float32)
        arr[a:b] = block.astype(np.float16)
    offsets = np.unique(np.append(np.arange(0, tokens, doc), tokens))
    nd = len(offsets) - 1
    letters = list("abcdefghijklmnopqrstuvwxyz ")
    surface = rng.integers(0, len(letters), tokens).astype(np.int32)
    cols = {
        "doc": np.repeat(np.arange(nd), np.diff(offsets)).astype(np.int32),
        "position": (np.arange(tokens) - np.repeat(offsets[:-1], np.diff(offsets))).astype(
            np.int32
        ),
        "surface": surface,
        "token_id": surface,
    }
    for col, (dt, fill) in TOKEN_COLUMNS.items():
        c = create_column(group, f"tokens/{col}", tokens, chunk, dt, fill)
        if col in cols:
            c[:] = cols[col]
    create_column(group, "meta/unit0_on", tokens, chunk, "int32", 0)[:] = on[0].astype(np.int32)
    create_column(group, "docs/offsets", nd + 1, nd + 1, "int64", 0)[:] = offsets
    group.attrs[MANIFEST_KEY] = {
        "schema": SCHEMA_VERSION, "status": "complete",
        "model": {"class": "synthetic", "fingerprint": "synthetic-app"},
        "kind": "synthetic", "corpus": {}, "names": [name], "units": {name: units},
        "dtype": "float16", "chunk_tokens": chunk, "n_tokens": tokens, "n_docs": nd,
        "doc_ids": [f"doc{i}" for i in range(nd)], "segments": [], "surface_vocab": letters,
        "vocab": letters, "meta": {"unit0_on": "int32"},
    }  # fmt: skip
    return StateStore.open(path)


def _store(tokens: int, units: int, folder: Path):
    from workbench.store import StateStore
    from workbench.store._layout import StoreError

    path = folder / f"app-v2-{tokens}x{units}"
    try:
        return StateStore.open(path)
    except (FileNotFoundError, StoreError):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return synthetic_store(path, tokens, units)


def _send(value) -> int:
    import plotly

    return len(json.dumps(value, cls=plotly.utils.PlotlyJSONEncoder))


def run(tokens: int = 1_000_000, units: int = 650, repeats: int = 60, seed: int = 0) -> list:
    """Time the callbacks; returns ``(case, [seconds], note)`` rows."""
    from workbench.app import AppContext
    from workbench.app._context import cache_dir
    from workbench.app.pages import states

    t0 = time.perf_counter()
    store = _store(tokens, units, cache_dir() / "bench")
    built = time.perf_counter() - t0
    ctx = AppContext(models={}, stores={"bench": store.path})
    rng = np.random.default_rng(seed)
    size = 400
    small, large = "match (1-20 cells)", "match (21+ cells)"
    times: dict[str, list[float]] = {
        "brush -> selection": [], small: [], large: [], "window -> view": []
    }  # fmt: skip
    sizes = dict.fromkeys(times, 0)
    for _ in range(repeats):
        start = int(rng.integers(0, store.n_tokens - size))
        t = time.perf_counter()
        figs, _styles, view, _info, _msg = states.render_view(
            ctx, "bench", None, None, None, start, size, 0.3
        )
        sizes["window -> view"] = _send(figs[0])
        times["window -> view"].append(time.perf_counter() - t)
        a = start + int(rng.integers(0, size - 10))
        b = a + int(rng.integers(2, 8))
        t = time.perf_counter()
        out = states.update_selection(ctx, view, 0.3, 1, 0, a, b)
        answer = [states._patch(u) for u in out["updates"]]
        sizes["brush -> selection"] = _send(
            [answer, out["counts"], out["selection"], out["query"]]
        ) + len(str(states._cells_list(out["cells"])))
        times["brush -> selection"].append(time.perf_counter() - t)
    # hypotheses: brushes that select cells, timed apart by selection size (LSTMVis users
    # refine a brush to a handful of cells; a big selection makes match scan more columns)
    name = store.names[0]
    found: dict[str, list] = {small: [], large: []}
    for _ in range(50 * repeats):
        if all(len(v) >= repeats // 2 for v in found.values()):
            break
        d = int(rng.integers(0, store.n_docs))
        lo, hi = int(store.boundaries[d]), int(store.boundaries[d + 1])
        if hi - lo < 16:
            continue
        a = int(rng.integers(lo, hi - 12))
        b = a + int(rng.integers(2, 12))
        cells = store.select_cells(name, d, a - lo, b - lo, 0.3, (1, 0))
        if cells.size:
            key = small if cells.size <= 20 else large
            found[key].append({"model": "bench", "name": name, "threshold": 0.3, "start": a,
                               "end": b, "cells": cells.tolist(), "pad": [1, 0]})  # fmt: skip
    for key, sels in found.items():
        for sel in sels[: max(repeats // 2, 1)]:
            t = time.perf_counter()
            res = states.match_view(ctx, sel, None)
            sizes[key] = _send([res["strength"], res["hist"]]) + len(
                str(states._match_list(sel, res))
            )
            times[key].append(time.perf_counter() - t)
    note = (
        f"store {store.n_tokens:,} x {units} ({'built' if built > 1 else 'cached'} {built:.1f} s)"
    )
    return [(case, ts, f"{sizes[case] / 1e3:.0f} kB answer; {note}") for case, ts in times.items()]


def _table(title: str, rows: list, targets: dict):
    from rich.table import Table

    table = Table(title=title)
    for col in ("case", "requests", "p50", "p95", "p99", "target p95", "note"):
        table.add_column(col, justify="left" if col in ("case", "note") else "right")
    for case, ts, note in rows:
        if not ts:
            table.add_row(case, "0", "-", "-", "-", "-", note or "nothing measured")
            continue
        p50, p95, p99 = (float(np.percentile(ts, q)) * 1e3 for q in (50, 95, 99))
        target = targets.get(case)
        verdict = (
            "-"
            if target is None
            else f"{target * 1e3:.0f} ms " + ("ok" if p95 <= target * 1e3 else "MISSED")
        )
        table.add_row(case, str(len(ts)), f"{p50:.0f} ms", f"{p95:.0f} ms", f"{p99:.0f} ms",
                      verdict, note)  # fmt: skip
    return table


def bench_app(
    tokens: int = typer.Option(1_000_000, help="Tokens of the synthetic store."),
    units: int = typer.Option(650, help="Units of the recorded quantity."),
    repeats: int = typer.Option(60, help="Requests timed per case."),
    browser: bool = typer.Option(
        False,
        "--browser",
        help="Time in headless Chromium, from mouse-up to the settled page, on the demo "
        "models and stores (brush, match, Explain, Perturb, Projection).",
    ),
    url: str = typer.Option(
        "",
        help="With --browser: time a server already running at this URL (e.g. to "
        "compare two versions under the same load) instead of one started here.",
    ),
    pages: str = typer.Option(
        "states,explain,perturb,projection", help="With --browser: the pages to time."
    ),
) -> None:
    """App latency: server-side callbacks on a 1M-token store, or in the browser (--browser)."""
    from rich.console import Console

    if browser:
        from workbench.app import _bench_browser

        try:
            if url and not url.startswith(("http://127.0.0.1:", "http://localhost:")):
                raise RuntimeError(f"--url {url!r}: give a local server, http://127.0.0.1:PORT")
            rows = _bench_browser.run(
                repeats=repeats,
                url=url or None,
                pages=[p.strip() for p in pages.split(",") if p.strip()],
            )
        except RuntimeError as err:
            raise typer.BadParameter(str(err)) from None
        title = "workbench bench app --browser (mouse-up to settled DOM, headless Chromium)"
        Console(width=max(Console().width, 150)).print(_table(title, rows, _bench_browser.TARGETS))
        return
    rows = run(tokens, units, repeats)
    title = f"workbench bench app ({tokens:,} tokens x {units} units)"
    Console(width=max(Console().width, 150)).print(_table(title, rows, TARGETS))
