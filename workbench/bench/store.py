"""``workbench bench store``: match, build and projection speed, each against a baseline.

- match: LSTMVis match over synthetic stores of 1M and 10M steps x 650 units (telegraph
  on/off units plus noise, float16). The 10M store hard-links ten copies of the 1M store's
  chunk files, so it costs no disk; its reads are served from the page cache. Baseline: the
  bare scan of the selected units (thresholding them, nothing else).
- build: ``StateStore.build`` of a char LM over real Python source (every gate, cell and
  hidden state, float16) against the plain forward over the same tokens with the same
  segments, batches and windows (the faster of one thread and torch's default count).
- umap: PCA + UMAP of 100k states, cold (new process, empty numba cache) and warm.

The match kernels are compiled (or loaded from numba's disk cache) before the timed calls;
that time, in a new process with an empty and with a warm cache, has its own row.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.bench._timing import median_seconds as _median_time


@dataclass
class Row:
    """One measured case."""

    case: str
    baseline: str
    baseline_s: float
    measured_s: float
    target: str
    note: str = ""
    paired_ratio: float | None = None  # median of interleaved pairs' ratios, where measured

    @property
    def ratio(self) -> float:
        if self.paired_ratio is not None:
            return self.paired_ratio
        return self.measured_s / self.baseline_s if self.baseline_s else float("nan")


# ----------------------------------------------------------------------------- synthetic


def synthetic_store(
    path: Path,
    tokens: int,
    units: int = 650,
    chunk: int = 8192,
    seed: int = 0,
    doc_tokens: int = 4096,
    link_from: Path | None = None,
    values: np.ndarray | None = None,
    offsets=None,
):
    """A store of telegraph-process states (runs of on/off, mean length ~8, plus noise).

    ``values`` (``[tokens, units]``, float16 or float32) and ``offsets`` (document offsets
    ``[0, ..., tokens]``) replace the generated states and the ``doc_tokens`` documents.
    """
    import zarr

    from workbench.store._layout import (
        MANIFEST_KEY,
        SCHEMA_VERSION,
        create_column,
        create_states,
    )
    from workbench.store._store import StateStore

    name = "lstm.0.fwd.cell"
    dtype = "float16" if values is None else str(values.dtype)
    if values is not None:
        tokens, units = values.shape
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    arr = create_states(group, name, tokens, units, chunk, dtype)
    n_chunks = -(-tokens // chunk)
    if values is not None:
        arr[:] = values
    elif link_from is not None:
        src_chunks = sorted(int(p.name) for p in (link_from / "states" / name / "c").iterdir())
        for k in range(n_chunks):
            dst = path / "states" / name / "c" / str(k)
            dst.mkdir(parents=True, exist_ok=True)
            os.link(
                link_from / "states" / name / "c" / str(src_chunks[k % len(src_chunks)]) / "0",
                dst / "0",
            )
    else:
        rng = np.random.default_rng(seed)
        base_len = chunk + 64
        flips = rng.random((base_len // 8 + 1, units)) < 0.35
        on = (np.cumsum(flips, axis=0) % 2).astype(np.float16)
        base = np.repeat(on, 8, axis=0)[:base_len] * np.float16(0.8)
        base += rng.normal(0, 0.05, base.shape).astype(np.float16)
        for k in range(n_chunks):
            shift = int(rng.integers(0, 64))
            perm = rng.permutation(units)
            block = base[shift : shift + chunk][:, perm]
            lo, hi = k * chunk, min((k + 1) * chunk, tokens)
            arr[lo:hi] = block[: hi - lo]
    if offsets is None:
        offsets = np.arange(0, tokens + doc_tokens, doc_tokens)
        offsets[-1] = tokens
        offsets = np.unique(offsets)
    offsets = np.asarray(offsets, dtype=np.int64)
    nd = len(offsets) - 1
    create_column(group, "docs/offsets", nd + 1, nd + 1, "int64", 0)[:] = offsets
    create_column(group, "tokens/surface", tokens, chunk, "int32", 0)
    group.attrs[MANIFEST_KEY] = {
        "schema": SCHEMA_VERSION,
        "status": "complete",
        "model": {"class": "synthetic", "fingerprint": "synthetic"},
        "kind": "synthetic",
        "corpus": {},
        "names": [name],
        "units": {name: units},
        "dtype": dtype,
        "chunk_tokens": chunk,
        "n_tokens": tokens,
        "n_docs": nd,
        "doc_ids": [f"d{i}" for i in range(nd)],
        "segments": [],
        "surface_vocab": ["x"],
        "vocab": [],
        "meta": {},
    }
    return StateStore.open(path)


def _pick_cells(store, name: str, k: int = 5) -> np.ndarray:
    """``k`` units selected by a 6-step brush of document 0 (the first brush that has k)."""
    store.document(0).states(name)
    for start in range(1, 400):
        cells = store.select_cells(name, 0, start, start + 6, threshold=0.3, pad=(1, 0))
        if cells.size >= k:
            return cells[:k]
    return np.arange(k)


_WARM = """
import time
t0 = time.perf_counter()
from workbench.store import search
search.warm_up()
print(time.perf_counter() - t0)
"""


def _in_new_process(code: str, *args: str, cache: Path) -> float:
    """Seconds printed by ``code`` run in a new process with ``NUMBA_CACHE_DIR=cache``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    res = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    return float(res.stdout.strip().splitlines()[-1])


def bench_match(
    tmp: Path, sizes=(1_000_000, 10_000_000), repeats: int = 3, ks=(1, 5, 20)
) -> list[Row]:
    """Match over synthetic stores of ``sizes`` tokens, k cells each, and numba's start-up."""
    from workbench.store import search

    cold = _in_new_process(_WARM, cache=tmp / "numba_match")
    cached = _in_new_process(_WARM, cache=tmp / "numba_match")
    rows = [
        Row(
            "match kernels, new process: import + compile, empty numba cache",
            "same, numba cache warm",
            cached,
            cold,
            "report",
            "paid once per machine; search.warm_up() does it ahead",
        )
    ]
    search.warm_up()  # this process: compiled or loaded before anything is timed
    first = None
    for n in sizes:
        path = tmp / f"syn{n}"
        store = synthetic_store(path, n, link_from=first.path if first is not None else None)
        if first is None:
            first = store
        name = store.names[0]
        arr = store.states(name)
        for k in ks:
            cells = _pick_cells(store, name, k)
            arr.columns_on(cells, 0.3)  # map the chunks once (page cache)
            scan = _median_time(lambda: arr.columns_on(cells, 0.3), repeats)  # noqa: B023
            result = {}

            def run():
                result["m"] = store.match(name, cells)  # noqa: B023

            t = _median_time(run, repeats)
            m = result["m"]
            target = "<= 100 ms" if n <= 1_000_000 else "<= 1 s"
            rows.append(
                Row(
                    f"match {n / 1e6:g}M x 650, k={cells.size}",
                    "scan of k units",
                    scan,
                    t,
                    target,
                    f"{m.n_candidates:,} candidates, level {m.level}",
                )
            )
    return rows


# ----------------------------------------------------------------------------- build


def _python_lm():
    """The shipped Python-source char LM, else a 2 x 256 LSTM char LM of its vocabulary."""
    import torch

    import workbench
    from workbench.models.architectures import CharLM
    from workbench.models.tokenizer import Tokenizer

    try:
        from workbench.models.checkpoint import shipped

        bundle = workbench.load(shipped("python"))
        return bundle, "shipped python char LM"
    except Exception:  # noqa: BLE001 - not trained yet: a same-shaped stand-in
        torch.manual_seed(0)
        vocab = ["<pad>", "<unk>", *[chr(c) for c in range(32, 127)], "\n", "\t"]
        tok = Tokenizer(vocab)
        return (CharLM(len(vocab), 64, 256, 2).eval(), tok), "untrained 2 x 256 LSTM char LM"


def _plain_forward(model, tokenizer, docs, window: int, batch_size: int, segment_tokens=None):
    """The same segments, batches and windows as the build, without recording or writing."""
    import torch

    from workbench.store._build import plan
    from workbench.store._runner import Runner, _can_shrink, _shrink

    runner = Runner(model, tokenizer, "charlm", None, window, batch_size)
    segments = plan(docs, 1, segment_tokens)["segments"] if segment_tokens else [[0, len(docs)]]
    with torch.no_grad():
        for d0, d1 in segments:  # the build batches documents within a segment only
            seg = docs[d0:d1]
            order = sorted(range(len(seg)), key=lambda i: (-len(seg[i]), i))
            order = [i for i in order if len(seg[i]) > 0]
            for b in range(0, len(order), batch_size):
                batch = [seg[i] for i in order[b : b + batch_size]]
                ids, lengths, _ = runner._padded(batch)
                state, n = None, len(batch)
                for w in range(0, ids.shape[1], window):
                    active = sum(1 for L in lengths if L > w)
                    if active < n and _can_shrink(state, n):
                        state, n = _shrink(state, active), active
                    logits, state = model(ids[:n, w : w + window], state)
                    torch.log_softmax(logits.float(), -1)


def bench_build(
    tmp: Path, tokens: int = 20_000, strategy: str = "auto", pairs: int = 3
) -> list[Row]:
    """Build time against the plain forward over the same segments, batches and windows.

    Runs ``pairs`` interleaved (plain forward, build) pairs and reports the median of the
    per-pair ratios (this machine's speed drifts by a third over minutes; pairs taken side
    by side keep the ratio honest). The plain forward uses torch's default threads (every
    core), the build its own default (:func:`~workbench.store._build.compute_threads`).
    """
    import torch

    import workbench
    from workbench.data import corpus
    from workbench.store import StateStore
    from workbench.store._build import compute_threads

    lm, label = _python_lm()
    model, tok = (lm.model, lm.tokenizer) if hasattr(lm, "model") else lm
    docs = corpus("python", "test", max_tokens=tokens)
    n = sum(len(d) for d in docs)
    window, batch, chunk = 256, 32, 8192
    seg = 16 * chunk  # the build's default segments
    build_threads = compute_threads()
    outs: list[Path] = []

    def plain():
        _plain_forward(model, tok, docs, window, batch, seg)

    def build():
        StateStore.build(
            (model, tok),
            docs,
            outs[-1],
            window=window,
            batch_size=batch,
            chunk_tokens=chunk,
            segment_tokens=seg,
            strategy=strategy,
            progress=False,
        )

    _plain_forward(model, tok, docs[:2], window, batch)  # warm up
    plain_s, build_s = [], []
    last_size, deleted = 0, 0  # outs[:deleted] are gone already
    try:
        for i in range(max(1, pairs)):
            # Each build goes into a new folder and all are deleted at the end: on ext4
            # without a journal (this machine's) new inodes step over the ones deleted in the
            # last minute one by one, which made a build right after deleting the previous
            # store 1-2 s slower (and deleting a 6 GB store took 1.2 s by itself). Where the
            # disk cannot hold another store, the oldest go first (said in the note).
            while deleted < len(outs) and shutil.disk_usage(tmp).free < 1.2 * last_size + 2**30:
                shutil.rmtree(outs[deleted], ignore_errors=True)
                deleted += 1
            outs.append(tmp / f"build{i}")
            shutil.rmtree(outs[-1], ignore_errors=True)
            plain_s.append(_median_time(plain, 1))
            build_s.append(_median_time(build, 1))
            last_size = sum(f.stat().st_size for f in outs[-1].rglob("*") if f.is_file())
        ratio = statistics.median(b / p for p, b in zip(plain_s, build_s, strict=True))
        names = len(workbench.StateStore.open(outs[-1]).names)
        size = last_size
    finally:
        for out in outs[deleted:]:
            shutil.rmtree(out, ignore_errors=True)
    t = statistics.median(build_s)
    return [
        Row(
            f"build {n:,} tokens ({label}, {names} names, float16)",
            f"plain forward ({torch.get_num_threads()} thread(s))",
            statistics.median(plain_s),
            t,
            "<= 1.5x",
            f"{n / t:,.0f} tokens/s, {size / 2**20:,.0f} MiB, strategy={strategy}, build "
            f"{build_threads} thread(s); median ratio of {len(plain_s)} interleaved pairs "
            f"(plain {', '.join(f'{x:.1f}' for x in plain_s)} s; build "
            f"{', '.join(f'{x:.1f}' for x in build_s)} s)"
            + (
                f"; {deleted} earlier store(s) deleted mid-run for disk space (on ext4 without"
                " a journal that slows the next build)"
                if deleted
                else ""
            ),
            paired_ratio=ratio,
        )
    ]


# ----------------------------------------------------------------------------- umap

_UMAP = """
import sys, time, numpy as np
t0 = time.perf_counter()
from workbench.store import projection
x = np.load(sys.argv[1])
projection.fit(x, progress=False)
print(time.perf_counter() - t0)
"""


def bench_umap(tmp: Path, n: int = 100_000, units: int = 650) -> list[Row]:
    """PCA + UMAP of ``n`` states with ``projection.fit``'s defaults (see its module notes).

    The new-process times include importing, loading the states and PCA. pynndescent's
    NN-descent loop cannot be cached by numba, so every new process compiles it (part of
    the warm-cache time too).
    """
    from workbench.store import projection
    from workbench.store.projection import _sample_rows

    store = synthetic_store(tmp / "umap_syn", max(n, 8192 * 2), units)
    _, x = _sample_rows(store.states(store.names[0]), store.n_tokens, n, 0)
    x = x.astype(np.float32)
    np.save(tmp / "x.npy", x)
    pca_t = _median_time(lambda: projection.fit(x, method="pca", progress=False), 1)
    cache = tmp / "numba_umap"
    cold = _in_new_process(_UMAP, str(tmp / "x.npy"), cache=cache)
    cached = _in_new_process(_UMAP, str(tmp / "x.npy"), cache=cache)
    projection.fit(x[:5000], progress=False)  # compile in this process
    warm = _median_time(lambda: projection.fit(x, progress=False), 1)
    note = "init=pca; > 10k points: 100 epochs, lighter NN-descent"
    return [
        Row(
            f"UMAP {n:,} x {units}, new process, empty numba cache",
            "PCA only",
            pca_t,
            cold,
            "report",
            note,
        ),
        Row(
            f"UMAP {n:,} x {units}, new process, numba cache warm",
            "PCA only",
            pca_t,
            cached,
            "<= 60 s",
            note,
        ),
        Row(f"UMAP {n:,} x {units}, compiled in this process", "PCA only", pca_t, warm, "report"),
    ]


def run(
    parts=("match", "build", "umap"),
    quick: bool = False,
    tokens: int = 20_000,
    strategy: str = "auto",
    pairs: int = 3,
) -> list[Row]:
    """All requested cases; quick uses tiny sizes (a smoke test)."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="wb_bench_store_") as tmp:
        tmp = Path(tmp)
        if "match" in parts:
            sizes = (50_000, 200_000) if quick else (1_000_000, 10_000_000)
            rows += bench_match(tmp, sizes, repeats=1 if quick else 3)
        if "build" in parts:
            rows += bench_build(tmp, 2_000 if quick else tokens, strategy, 1 if quick else pairs)
        if "umap" in parts:
            rows += bench_umap(tmp, 5_000 if quick else 100_000, 64 if quick else 650)
    return rows
