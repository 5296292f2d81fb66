"""Building a store: plan, resumable segments, edge-chunk assembly, single process or dask.

The corpus is cut into *segments* of whole documents (about ``segment_tokens`` tokens each;
the plan depends only on the corpus and the settings, so every engine and every resumed run
computes exactly the same batches). A segment writes the chunks that lie wholly inside it
straight into the store; rows of chunks it shares with a neighbour go to
``_pending/seg*.npz``. Only then is ``_progress/seg*.json`` committed (atomic rename), so a
killed build reruns at most the segments that had not committed. When every segment has
committed, the shared chunks are assembled from the pending pieces and the manifest is
marked complete; readers refuse a store whose manifest is not complete.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from workbench.store._layout import (
    MANIFEST_KEY,
    SCHEMA_VERSION,
    StateArray,
    StoreError,
    atomic_savez,
    atomic_write_text,
    create_column,
    create_states,
    raw_column,
)
from workbench.store._limits import (
    BOUNDS,
    check_chunk_bytes,
    check_disk,
    check_size,
    estimate_bytes,
)
from workbench.store._lock import LOCK_NAME, build_lock, clear_folder
from workbench.store._runner import (
    Runner,
    model_fingerprint,
    pooling,
    release_buffers,
    resolve,
)
from workbench.store._tokens import check_corpus_tokens
from workbench.store._writer import (
    BackgroundWriter,
    ChunkSink,
    run_all,
    state_block,
    write_column_rows,
    write_state_block,
    write_state_rows,
)

TOKEN_COLUMNS = {
    "doc": ("int32", -1),
    "position": ("int32", -1),
    "token_id": ("int32", -1),
    "surface": ("int32", -1),
    "prediction": ("int32", -1),
    "loss": ("float32", float("nan")),
}


# ----------------------------------------------------------------------------- planning


def _corpus_fingerprint(docs) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(str(d.doc_id).encode())
        h.update(b"\0")
        h.update("\x1f".join(d.tokens).encode("utf-8", "surrogatepass"))
        h.update(b"\1")
    return h.hexdigest()[:32]


def _meta_schema(docs) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for d in docs:
        for k, v in (d.meta or {}).items():
            arr = np.asarray(v)
            if arr.shape[:1] != (len(d),):
                raise StoreError(
                    f"meta track {k!r} of document {d.doc_id!r} has {arr.shape[:1]} steps, "
                    f"the document {len(d)}; meta tracks are per token"
                )
            kind = "bool" if arr.dtype == bool else "int32" if arr.dtype.kind in "iu" else "float32"
            old = kinds.get(k)
            if old and old != kind:
                kind = "float32" if "float32" in (old, kind) else "int32"
            kinds[k] = kind
    return kinds


def _fill(kind: str):
    return {"bool": False, "int32": -1, "float32": float("nan")}[kind]


def plan(docs, chunk: int, segment_tokens: int) -> dict:
    """Document offsets and segments (lists of document index ranges)."""
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    segments, lo, acc = [], 0, 0
    for i, n in enumerate(lengths):
        acc += int(n)
        if acc >= segment_tokens:
            segments.append([lo, i + 1])
            lo, acc = i + 1, 0
    if lo < len(docs):
        segments.append([lo, len(docs)])
    return {"offsets": offsets.tolist(), "segments": segments}


def _surface_vocab(docs) -> list[str]:
    vocab: dict[str, int] = {}
    for d in docs:
        for t in d.tokens:
            if t not in vocab:
                vocab[t] = len(vocab)
    return list(vocab)


# ----------------------------------------------------------------------------- store setup


def prepare(runner: Runner, docs, path: Path, settings: dict, info: dict) -> dict:
    """Create the store (or check a started one matches) and return the manifest."""
    import zarr

    if not docs:
        raise StoreError("the corpus is empty; pass at least one document")
    chunk = int(settings["chunk_tokens"])
    the_plan = plan(docs, chunk, int(settings["segment_tokens"]))
    fingerprint = model_fingerprint(runner.model)
    corpus_fp = _corpus_fingerprint(docs)
    first = next((d for d in docs if len(d) > 0), None)
    if first is None:
        raise StoreError("every document is empty; nothing to record")
    check_corpus_tokens(runner.tokenizer, docs)
    units = runner.probe(first)
    if not units:
        raise StoreError(
            f"the recorder kept no per-step quantity with names={runner.names!r}; "
            "see workbench.record(model, ...).names for what can be recorded"
        )
    check_chunk_bytes(chunk, units, settings["dtype"])
    manifest = {
        "schema": SCHEMA_VERSION,
        "status": "building",
        "model": {"class": type(runner.model).__name__, "fingerprint": fingerprint, **info},
        "kind": runner.kind,
        "corpus": {"fingerprint": corpus_fp, "name": settings.get("corpus_name")},
        "names": list(units),
        "units": units,
        "dtype": settings["dtype"],
        "chunk_tokens": chunk,
        "n_tokens": int(the_plan["offsets"][-1]),
        "n_docs": len(docs),
        "doc_ids": [str(d.doc_id) for d in docs],
        "segments": the_plan["segments"],
        "window": runner.window,
        "batch_size": runner.batch_size,
        "strategy": runner.strategy,
        "surface_vocab": _surface_vocab(docs),
        "vocab": list(getattr(runner.tokenizer, "vocab", []) or []),
        "meta": _meta_schema(docs),
    }
    existing = _read_manifest(path)
    fresh = existing is None or existing.get("status") == "creating"
    if not fresh and not _nothing_committed(path, existing):
        same = {k: existing.get(k) for k in _PLAN_KEYS} == {k: manifest.get(k) for k in _PLAN_KEYS}
        if not same:
            raise StoreError(
                f"{path} holds a store built with other settings, model or corpus; "
                "pass a new path, or delete the old store to rebuild it"
            )
        if existing.get("status") != "complete":
            check_disk(path, _left_to_write(path, existing))
        return existing
    if existing is None and path.exists() and any(_store_files(path)):
        raise StoreError(f"{path} exists and is not a workbench store; pick an empty path")
    check_disk(path, estimate_bytes(manifest) - _size_on_disk(path))
    # the manifest goes first, marked "creating" (one atomic write): a build killed while the
    # arrays are created is recognised as ours and created afresh on the next run (as is a
    # store that never committed a segment: it holds nothing computed)
    path.mkdir(parents=True, exist_ok=True)
    clear_folder(path)
    group = zarr.open_group(
        str(path),
        mode="a",
        zarr_format=3,
        attributes={MANIFEST_KEY: {**manifest, "status": "creating"}},
    )
    n = manifest["n_tokens"]
    for name, u in units.items():
        create_states(group, name, n, u, chunk, settings["dtype"])
    for col, (dt, fill) in TOKEN_COLUMNS.items():
        create_column(group, f"tokens/{col}", n, chunk * COLUMN_CHUNKS, dt, fill)
    for track, kind in manifest["meta"].items():
        create_column(group, f"meta/{track}", n, chunk * COLUMN_CHUNKS, kind, _fill(kind))
    nd = len(docs)
    create_column(group, "docs/offsets", nd + 1, nd + 1, "int64", 0)[:] = np.asarray(
        the_plan["offsets"]
    )
    labels = np.array([-1 if d.label is None else int(d.label) for d in docs], np.int32)
    create_column(group, "docs/label", nd, nd, "int32", -1)[:] = labels
    create_column(group, "docs/prediction", nd, nd, "int32", -1)
    create_column(group, "docs/loss", nd, nd, "float32", float("nan"))
    (path / "_progress").mkdir(exist_ok=True)
    (path / "_pending").mkdir(exist_ok=True)
    group.attrs[MANIFEST_KEY] = manifest
    return manifest


_PLAN_KEYS = (
    "schema",
    "model",
    "kind",
    "corpus",
    "names",
    "units",
    "dtype",
    "chunk_tokens",
    "segments",
    "window",
    "batch_size",
    "strategy",
    "meta",
)


def _nothing_committed(path: Path, manifest: dict) -> bool:
    """Whether ``manifest``'s store is a build that never committed a segment."""
    return manifest.get("status") == "building" and not done_segments(path)


def _store_files(path: Path):
    return (p for p in path.iterdir() if p.name != LOCK_NAME)


def _size_on_disk(path: Path) -> int:
    """Bytes the files under ``path`` take now (0 for a missing folder)."""
    if not path.is_dir():
        return 0
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def _left_to_write(path: Path, manifest: dict) -> int:
    """What a resumed build still writes: the estimate's share of the segments left."""
    total = max(int(manifest["n_tokens"]), 1)
    done = sum(
        json.loads(p.read_text()).get("tokens", 0) for p in (path / "_progress").glob("seg*.json")
    )
    return int(estimate_bytes(manifest) * max(total - done, 0) / total)


def _read_manifest(path: Path) -> dict | None:
    meta = path / "zarr.json"
    if not meta.exists():
        return None
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError):
        return None
    return attrs.get(MANIFEST_KEY)


def done_segments(path: Path) -> set[int]:
    return {int(p.stem[3:]) for p in (path / "_progress").glob("seg*.json")}


# ----------------------------------------------------------------------------- segments


def _segment_range(manifest: dict, seg: int) -> tuple[int, int]:
    d0, d1 = manifest["segments"][seg]
    offsets = manifest["offsets_"]
    return int(offsets[d0]), int(offsets[d1])


def _inner_chunks(a: int, b: int, c: int, n: int) -> range:
    """Chunks lying wholly inside rows ``[a, b)`` of an ``n``-row array (the last may be short)."""
    first = -(-a // c)  # first chunk starting inside [a, b)
    stop = b // c if b < n else -(-n // c)  # chunks ending inside [a, b)
    return range(first, max(first, stop))


def _segment_columns(runner: Runner, seg_docs, manifest: dict, seg: int, sink=None):
    """All columns of segment ``seg`` (its documents ``seg_docs``) over its tokens ``[a, b)``.

    With a ``sink`` (:class:`~workbench.store._writer.ChunkSink`) the states go there and
    the columns hold none.
    """
    d0, d1 = manifest["segments"][seg]
    a, b = _segment_range(manifest, seg)
    if len(seg_docs) != d1 - d0:
        raise StoreError(f"segment {seg} expects {d1 - d0} documents, got {len(seg_docs)}")
    dtype = manifest["dtype"]
    cols: dict[str, np.ndarray] = {}
    if sink is None:
        outs, states = runner.run(seg_docs, stacked=True)  # already in the store dtype
        for name, u in manifest["units"].items():
            got = states.get(name)
            cols[f"states/{name}"] = (
                np.zeros((b - a, u), dtype) if got is None else got.astype(dtype, copy=False)
            )
    else:
        outs = runner.run(seg_docs, sink=sink)
    surface = {t: i for i, t in enumerate(manifest["surface_vocab"])}
    lens = [len(d) for d in seg_docs]
    cols["tokens/doc"] = np.concatenate(
        [np.full(n, d0 + i, np.int32) for i, n in enumerate(lens)] + [np.zeros(0, np.int32)]
    )
    cols["tokens/position"] = np.concatenate(
        [np.arange(n, dtype=np.int32) for n in lens] + [np.zeros(0, np.int32)]
    )
    for key in ("token_id", "prediction", "loss"):
        cols[f"tokens/{key}"] = np.concatenate([o[key] for o in outs])
    cols["tokens/surface"] = np.array(
        [surface[t] for d in seg_docs for t in d.tokens], dtype=np.int32
    ).reshape(-1)
    for track, kind in manifest["meta"].items():
        parts = []
        for d in seg_docs:
            v = (d.meta or {}).get(track)
            parts.append(
                np.full(len(d), _fill(kind), kind) if v is None else np.asarray(v).astype(kind)
            )
        cols[f"meta/{track}"] = np.concatenate(parts) if parts else np.zeros(0, kind)
    cols["docs/prediction"] = np.array([o["doc_prediction"] for o in outs], np.int32)
    cols["docs/loss"] = np.array([o["doc_loss"] for o in outs], np.float32)
    for k, v in cols.items():
        if not k.startswith("docs/") and len(v) != b - a:
            raise StoreError(f"segment {seg}: column {k} has {len(v)} rows, expected {b - a}")
    return a, b, cols


def run_segment(path: str, runner: Runner, seg_docs, manifest: dict, seg: int, writer=None) -> int:
    """Compute one segment, write it and commit its progress record; returns its tokens.

    With a :class:`~workbench.store._writer.BackgroundWriter` the writing and the commit run
    in its thread (in segment order) while the caller computes the next segment.
    """
    path = Path(path)
    manifest = dict(manifest)
    manifest["offsets_"] = _offsets(path, manifest)
    sink = None
    if writer is not None:  # state chunks are written as soon as their rows are final
        a, b = _segment_range(manifest, seg)
        sink = ChunkSink(
            path,
            [len(d) for d in seg_docs],
            a,
            manifest["units"],
            manifest["dtype"],
            int(manifest["chunk_tokens"]),
            int(manifest["n_tokens"]),
            writer,
        )
    a, b, cols = _segment_columns(runner, seg_docs, manifest, seg, sink)
    pieces = sink.finish() if sink is not None else None
    job = functools.partial(_write_segment, path, manifest, seg, a, b, cols, pieces)
    if writer is None:
        job()
    else:
        writer.submit(job)
    return b - a


def _write_segment(
    path: Path, manifest: dict, seg: int, a: int, b: int, cols: dict, pieces=None
) -> None:
    """Chunks wholly inside ``[a, b)`` to the store, shared ones to ``_pending``; commit.

    ``pieces``: a function returning more ``_pending`` pieces (a :class:`ChunkSink`'s
    states, whose inner chunks it wrote itself).
    """
    import zarr

    d0, _ = manifest["segments"][seg]
    group = zarr.open_group(str(path), mode="r+")
    n = int(manifest["n_tokens"])
    pieces = pieces() if pieces is not None else {}
    known: dict[str, int] = {}
    for key, col in cols.items():
        if key.startswith("docs/"):
            pieces[f"{key}|{d0}"] = col
            continue
        c = _chunk_of(group, key, manifest, known)
        inner = _inner_chunks(a, b, c, n)
        lo, hi = inner.start * c, min(inner.stop * c, n)
        if lo < hi:
            if key.startswith("states/"):  # raw chunk files, see _writer
                write_state_rows(path, key[len("states/") :], col[lo - a : hi - a], lo, hi, c)
            elif raw_column(path / key):  # raw chunk files, as for the states
                fill = group[key].fill_value
                write_column_rows(path, key, col[lo - a : hi - a], lo, hi, c, fill)
            else:  # a store begun by an older version (compressed columns)
                group[key][lo:hi] = col[lo - a : hi - a]
            if a < lo:
                pieces[f"{key}|{a}"] = col[: lo - a]
            if hi < b:
                pieces[f"{key}|{hi}"] = col[hi - a :]
        elif b > a:
            pieces[f"{key}|{a}"] = col
    atomic_savez(path / "_pending" / f"seg{seg:06d}.npz", pieces)
    atomic_write_text(
        path / "_progress" / f"seg{seg:06d}.json", json.dumps({"segment": seg, "tokens": b - a})
    )
    release_buffers([v for k, v in cols.items() if k.startswith("states/")])  # no sink


# Token-table columns are chunked this many state chunks at a time: a column is 4 bytes a
# token, and at the states' chunk size a build created more column files (about 1,800 per
# million tokens) than state files. Their rows mostly reach the store in finalize.
COLUMN_CHUNKS = 16


def _chunk_of(group, key: str, manifest: dict, known: dict) -> int:
    """Rows per chunk of array ``key`` (states: ``chunk_tokens``; columns: their own).

    ``known`` caches the columns' sizes (reading one opens the array's metadata).
    """
    if key.startswith("states/"):
        return int(manifest["chunk_tokens"])
    if key not in known:
        known[key] = int(group[key].chunks[0])
    return known[key]


def _offsets(path: Path, manifest: dict) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_array(str(path / "docs" / "offsets"), mode="r")[:])


def finalize(path: Path) -> None:
    """Assemble shared chunks and document columns from the pending pieces; mark complete."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    manifest = dict(group.attrs[MANIFEST_KEY])
    n = int(manifest["n_tokens"])
    known: dict[str, int] = {}
    arrays: dict = {}  # key -> (array, unit-major state, raw column): opened once per key
    state_jobs: list = []  # shared state chunks, written a few at a time on the I/O threads

    def write_chunk(key: str, k: int, c: int, parts: list) -> None:
        if key not in arrays:
            a = group[key]
            unit_major = key.startswith("states/") and StateArray(a, path / key).unit_major
            arrays[key] = (a, unit_major, not unit_major and raw_column(path / key))
        arr, unit_major, raw = arrays[key]
        lo, hi = k * c, min((k + 1) * c, n)
        # every row comes from the pieces: the chunk is assembled, not read back
        block = np.full((hi - lo, *arr.shape[1:]), arr.fill_value, np.dtype(arr.dtype))
        for start, piece in parts:
            block[start - lo : start - lo + len(piece)] = piece
        if unit_major:
            block = state_block(block, c)  # here: the copy's threads belong to this thread
            name = key[len("states/") :]
            state_jobs.append(functools.partial(write_state_block, path, name, k, block))
            if len(state_jobs) >= 16:  # a bounded number of blocks held at once
                run_all(state_jobs)
                state_jobs.clear()
        elif raw:
            write_column_rows(path, key, block, lo, hi, c, arr.fill_value)
        else:
            arr[lo:hi] = block

    # Segments in order: a shared chunk is written as soon as its pieces cover it, so only
    # the chunks still open are held (all of them at once would be ~40 GB at 100M tokens).
    open_chunks: dict[tuple[str, int], list[tuple[int, np.ndarray]]] = {}
    doc_cols: dict[str, list[tuple[int, np.ndarray]]] = {}
    for f in sorted((path / "_pending").glob("seg*.npz")):
        with np.load(f, allow_pickle=False) as z:
            for item in z.files:
                key, start = item.rsplit("|", 1)
                start, arr = int(start), z[item]
                if key.startswith("docs/"):
                    doc_cols.setdefault(key, []).append((start, arr))
                    continue
                c = _chunk_of(group, key, manifest, known)
                for k in range(start // c, (start + len(arr) - 1) // c + 1):
                    lo, hi = max(start, k * c), min(start + len(arr), (k + 1) * c)
                    parts = open_chunks.setdefault((key, k), [])
                    parts.append((lo, arr[lo - start : hi - start]))
                    if sum(len(piece) for _, piece in parts) == min((k + 1) * c, n) - k * c:
                        write_chunk(key, k, c, open_chunks.pop((key, k)))
    for (key, k), parts in sorted(open_chunks.items()):
        c = _chunk_of(group, key, manifest, known)
        covered = sum(len(piece) for _, piece in parts)
        want = min((k + 1) * c, n) - k * c
        raise StoreError(f"chunk {k} of {key}: {covered} of {want} rows present")
    run_all(state_jobs)
    for key, parts in doc_cols.items():
        arr = group[key]
        for start, piece in parts:
            arr[start : start + len(piece)] = piece
    manifest["status"] = "complete"
    group.attrs[MANIFEST_KEY] = manifest
    _clean(path)


def _clean(path: Path) -> None:
    """Remove build leftovers: pending pieces, progress records, half-written temp files."""
    shutil.rmtree(path / "_pending", ignore_errors=True)
    shutil.rmtree(path / "_progress", ignore_errors=True)
    for tmp in path.rglob("*.partial"):  # zarr's atomic writes killed before their rename
        tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- engines


def _progress_bar(total: int, enabled: bool):
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]recording[/bold] {task.completed:,}/{task.total:,} tokens"),
        BarColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def build(
    model_or_bundle,
    corpus,
    path,
    *,
    names=None,
    dtype: str = "float16",
    engine: str | None = None,
    chunk_tokens: int = 8192,
    segment_tokens: int | None = None,
    batch_size: int = 32,
    window: int = 256,
    strategy: str = "auto",
    kind: str | None = None,
    progress: bool = True,
    client=None,
    corpus_name: str | None = None,
    stop_after: int | None = None,
    threads: int | None = None,
) -> Path:
    """See :meth:`workbench.StateStore.build`.

    ``threads`` is torch's intra-op thread count while the local engine computes (default:
    torch's, every core; see :func:`compute_threads`).
    """
    chunk_tokens, segment_tokens, window, batch_size = check_settings(
        dtype, engine, chunk_tokens, segment_tokens, window, batch_size, threads
    )
    threads = compute_threads(threads)
    docs = list(corpus)
    model, tokenizer, kind, info = resolve(model_or_bundle, kind)
    runner = Runner(model, tokenizer, kind, names, window, batch_size, strategy, dtype)
    path = Path(path)
    settings = {
        "chunk_tokens": chunk_tokens,
        "segment_tokens": segment_tokens,
        "dtype": dtype,
        "corpus_name": corpus_name,
    }
    created = not path.exists()
    with build_lock(path):
        try:
            manifest = prepare(runner, docs, path, settings, info)
        except BaseException:
            if created:  # nothing of a store this build began is left behind
                shutil.rmtree(path, ignore_errors=True)
            raise
        _run(path, runner, docs, manifest, engine, progress, client, stop_after, threads)
    return path


def check_settings(dtype, engine, chunk_tokens, segment_tokens, window, batch_size, threads):
    """Validate a build's settings before anything is loaded or created.

    Returns
    -------
    chunk_tokens, segment_tokens, window, batch_size : int
        ``segment_tokens`` defaults to 16 chunks (at most its bound).

    Raises
    ------
    StoreError
        For a dtype or engine not offered, or a size outside :data:`_limits.BOUNDS`.
    """
    if dtype not in ("float16", "float32"):
        raise StoreError(f"dtype must be float16 or float32, got {dtype!r}")
    if engine not in (None, "local", "dask"):
        raise StoreError(f"engine must be None or 'dask', got {engine!r}")
    chunk = check_size("chunk_tokens", chunk_tokens)
    segment = segment_tokens
    if segment is None:
        segment = min(16 * chunk, BOUNDS["segment_tokens"][1])
    if threads is not None:
        check_size("threads", threads)
    return (
        chunk,
        check_size("segment_tokens", segment),
        check_size("window", window),
        check_size("batch_size", batch_size),
    )


def _run(path, runner, docs, manifest, engine, progress, client, stop_after, threads) -> None:
    """Compute the segments a store still lacks, then finalize it (under the build lock)."""
    if manifest.get("status") == "complete":
        if (path / "_pending").exists() or (path / "_progress").exists():
            _clean(path)  # killed after it completed, before cleaning up
        return
    todo = [s for s in range(len(manifest["segments"])) if s not in done_segments(path)]
    if stop_after is not None:  # testing hook: commit this many segments, then stop
        todo = todo[: int(stop_after)]
    total = int(manifest["n_tokens"])
    offsets = np.asarray(_offsets(path, manifest))
    already = total - sum(_seg_tokens(manifest, offsets, s) for s in todo)
    with _progress_bar(total, progress) as bar:
        task = bar.add_task("record", total=total, completed=already, rate="")
        t0, done = time.perf_counter(), 0

        def tick(n):
            nonlocal done
            done += n
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=n, rate=f"{rate:,.0f} tokens/s")

        if engine == "dask":
            _run_dask(path, runner, docs, manifest, todo, tick, client)
        else:
            _run_local(path, runner, docs, manifest, todo, tick, threads)
    if stop_after is None and len(done_segments(path)) == len(manifest["segments"]):
        finalize(path)


def compute_threads(threads: int | None = None) -> int:
    """Intra-op threads for the local engine: ``threads``, else torch's (every core).

    The recorder's compiled kernels record a char LM's windows as fast as the plain forward
    on every core, and the writer thread only issues direct file writes (little CPU), so the
    compute gets all the cores (on 2 cores: 1 thread used to win while the writer thread also
    cast and copied the rows).
    """
    import os

    import torch

    if threads is not None:
        if int(threads) < 1:
            raise StoreError(f"threads must be >= 1, got {threads!r}")
        return int(threads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(torch.get_num_threads(), cores or 1))


def _run_local(path, runner, docs, manifest, todo, tick, threads: int) -> None:
    """Segments in order; each one's writes overlap the next one's compute."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    pooling(True)
    writer = BackgroundWriter(depth=0)  # chunk jobs hold no memory of their own
    written = []  # one event per segment, set once its writes and commit are done
    try:
        for s in todo:
            if len(written) >= 2:  # at most the previous segment's buffers wait for the writer
                written.pop(0).wait()
                writer.check()
            d0, d1 = manifest["segments"][s]
            tick(run_segment(str(path), runner, docs[d0:d1], manifest, s, writer))
            written.append(writer.mark())
    finally:
        try:
            writer.close()
        finally:
            pooling(False)
            torch.set_num_threads(before)


def _seg_tokens(manifest, offsets, s) -> int:
    d0, d1 = manifest["segments"][s]
    return int(offsets[d1] - offsets[d0])


def _worker_segment(path, runner, seg_docs, manifest, seg):
    import torch

    torch.set_num_threads(1)
    return run_segment(path, runner, seg_docs, manifest, seg)


def _run_dask(path, runner, docs, manifest, todo, tick, client) -> None:
    from workbench._extras import require

    require("dask")
    from distributed import Client, LocalCluster, as_completed

    own = client is None
    if own:
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        runner_f = client.scatter(runner, broadcast=True)
        futures = []
        for s in todo:
            d0, d1 = manifest["segments"][s]
            futures.append(
                client.submit(
                    _worker_segment, str(path), runner_f, docs[d0:d1], manifest, s, pure=False
                )
            )
        for fut in as_completed(futures):
            tick(fut.result())
    finally:
        if own:
            client.close()
            cluster.close()
