"""StateStore on a real zarr store on disk: contents, resumability, dask, errors."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

import workbench
from workbench.data import Document
from workbench.models.architectures import CharLM
from workbench.models.tokenizer import Tokenizer
from workbench.store import StateStore, StoreError, StoreIncompleteError
from workbench.store.search import SearchError

ALPHABET = list("ab(){} \n")
SETTINGS = dict(chunk_tokens=64, segment_tokens=150, window=32, batch_size=3, progress=False)


def make_corpus(n_docs=12, seed=0):
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n_docs):
        n = int(rng.integers(3, 120))
        toks = [ALPHABET[j] for j in rng.integers(0, len(ALPHABET), n)]
        depth = np.cumsum([1 if t == "(" else -1 if t == ")" else 0 for t in toks])
        meta = {"is_open": np.array([t == "(" for t in toks]), "depth": depth}
        docs.append(Document(f"doc{i}", toks, meta, None))
    return docs


def make_model(seed=0):
    torch.manual_seed(seed)
    tok = Tokenizer(["<pad>", "<unk>", *ALPHABET])
    return CharLM(len(tok.vocab), 6, 10, 2).eval(), tok


def arrays_of(path):
    group = zarr.open_group(str(path), mode="r")
    out = {}
    for name, arr in group.arrays():
        out[name] = np.asarray(arr[:])
    for gname, sub in group.groups():
        for name, arr in sub.arrays():
            out[f"{gname}/{name}"] = np.asarray(arr[:])
        for g2, sub2 in sub.groups():
            for name, arr in sub2.arrays():
                out[f"{gname}/{g2}/{name}"] = np.asarray(arr[:])
    return out


def assert_same_store(a, b):
    xa, xb = arrays_of(a), arrays_of(b)
    assert sorted(xa) == sorted(xb)
    for k in xa:
        assert np.array_equal(xa[k], xb[k], equal_nan=xa[k].dtype.kind == "f"), k


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    model, tok = make_model()
    docs = make_corpus()
    path = tmp_path_factory.mktemp("store") / "s"
    store = StateStore.build((model, tok), docs, path, **SETTINGS)
    return store, model, tok, docs


def test_store_holds_the_recorded_states(built):
    store, model, tok, docs = built
    assert store.n_docs == len(docs)
    assert store.n_tokens == sum(len(d) for d in docs)
    assert len(store.manifest["segments"]) > 2  # several segments, chunks shared across them
    for i in (0, 5, len(docs) - 1):
        d = docs[i]
        ids = torch.tensor([tok.encode(d.tokens)])
        with torch.no_grad():
            tr = workbench.record(model, ids)
        view = store.document(d.doc_id)
        assert view.tokens == d.tokens
        np.testing.assert_array_equal(view.meta["depth"], d.meta["depth"])
        for name in store.names:
            np.testing.assert_allclose(view.states(name), tr[name][0].numpy(), atol=2e-3)
        # loss = next-token cross-entropy inside the document, NaN at its last step
        table = store.token_table(view.start, view.end)
        logits = tr.output[0][0]
        ref = torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:], reduction="none")
        np.testing.assert_allclose(table.loss.to_numpy()[:-1], ref.numpy(), atol=1e-4)
        assert np.isnan(table.loss.to_numpy()[-1])
        assert (table.position.to_numpy() == np.arange(len(d))).all()
        assert (table.document == i).all()


def test_lazy_slices_and_windows_carry_state(built):
    store, model, tok, docs = built
    # the longest document spans several windows of 32 steps: carried state is exact
    i = int(np.argmax([len(d) for d in docs]))
    assert len(docs[i]) > 2 * SETTINGS["window"]
    view = store.document(i)
    h = store.states("rnn.1.fwd.hidden")
    full = h[view.start : view.end]
    assert full.shape == (len(view), 10)
    np.testing.assert_array_equal(full[:, [1, 3]], h[view.start : view.end, [1, 3]])
    np.testing.assert_array_equal(store.slice(view.start, view.end)["rnn.1.fwd.hidden"], full)
    assert h.dtype == np.float16
    assert store.boundaries[-1] == store.n_tokens


def test_store_search_and_stats(built):
    store, *_ = built
    name = "rnn.0.fwd.cell"
    cells = store.select_cells(name, 2, 0, 3, threshold=0.0, pad=(0, 0))
    full = store.document(2).states(name)
    ref = np.flatnonzero((full[0:3] >= 0).all(axis=0))
    assert cells.tolist() == ref.tolist()
    m = store.match(name, [0, 1], threshold=0.0)
    assert len(m) > 0
    for s, e in m.spans():  # never across documents
        assert np.searchsorted(store.boundaries, s, "right") == np.searchsorted(
            store.boundaries, e - 1, "right"
        )
    agg = store.match_meta(m)
    assert 0.0 <= agg["is_open"]["mean"] <= 1.0
    with pytest.raises(SearchError, match="outside document"):
        store.select_cells(name, 2, 0, 10_000)
    sat = store.saturation()
    assert set(sat.name) == {n for n in store.names if n.endswith("gate")}
    best = store.best_cells(name, top=3)
    assert set(best.track) == {"is_open", "depth"}
    mean, count = store.mean_response(name)
    assert count.sum() == store.n_tokens


def test_resume_after_sigkill_is_identical(tmp_path):
    """A build killed with SIGKILL mid-way and rerun equals an uninterrupted build."""
    script = tmp_path / "build.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            import workbench.store._build as b
            from test_store import SETTINGS, make_corpus, make_model
            from workbench.store import StateStore
            slow = b.run_segment
            def run_segment(*a, **k):
                n = slow(*a, **k)
                time.sleep(0.3)
                return n
            b.run_segment = run_segment
            StateStore.build(make_model(), make_corpus(), sys.argv[1], **SETTINGS)
            """
        )
    )
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(killed)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / "_progress").glob("seg*.json"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pytest.raises(StoreIncompleteError, match="run the same build"):
        StateStore.open(killed)
    done = len(list((killed / "_progress").glob("seg*.json")))
    assert (
        0
        < done
        < len(
            json.loads((killed / "zarr.json").read_text())["attributes"]["workbench_store"][
                "segments"
            ]
        )
    )
    resumed = StateStore.build(make_model(), make_corpus(), killed, **SETTINGS)
    fresh = StateStore.build(make_model(), make_corpus(), tmp_path / "fresh", **SETTINGS)
    assert_same_store(resumed.path, fresh.path)
    assert not (killed / "_pending").exists()


def test_interrupted_build_is_refused_then_resumes(tmp_path, built):
    store, *_ = built
    path = tmp_path / "s"
    from workbench.store._build import build

    build(make_model(), make_corpus(), path, stop_after=1, **SETTINGS)
    with pytest.raises(StoreIncompleteError):
        StateStore.open(path)
    done = StateStore.build(make_model(), make_corpus(), path, **SETTINGS)
    assert_same_store(done.path, store.path)


def test_finalize_refuses_a_shared_chunk_with_rows_missing(tmp_path, monkeypatch):
    """finalize writes each shared chunk once its pieces cover it; a chunk still short when
    the pending pieces run out is an error, and the store stays incomplete."""
    from workbench.store import _build

    path = tmp_path / "s"
    monkeypatch.setattr(_build, "finalize", lambda p: None)  # every segment done, not final
    _build.build(make_model(), make_corpus(), path, **SETTINGS)
    monkeypatch.undo()
    pending = sorted((path / "_pending").glob("seg*.npz"))
    assert len(pending) > 2
    pending[1].unlink()  # the rows segment 1 shares with its neighbours are gone
    with pytest.raises(StoreError, match="rows present"):
        _build.finalize(path)
    with pytest.raises(StoreIncompleteError):
        StateStore.open(path)


def test_dask_build_is_identical(tmp_path, built):
    pytest.importorskip("distributed")
    store, *_ = built
    got = StateStore.build(make_model(), make_corpus(), tmp_path / "d", engine="dask", **SETTINGS)
    assert_same_store(got.path, store.path)


def test_bad_stores(tmp_path, built):
    store, *_ = built
    with pytest.raises(FileNotFoundError):
        StateStore.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("hi")
    with pytest.raises(StoreError, match="not a workbench state store"):
        StateStore.open(tmp_path / "plain")
    with pytest.raises(StoreError, match="not a workbench store"):
        StateStore.build(make_model(), make_corpus(), tmp_path / "plain", **SETTINGS)
    other, _ = make_model(seed=1)
    with pytest.raises(StoreError, match="another model"):
        StateStore.open(store.path, model=other)
    StateStore.open(store.path, model=make_model()[0])  # the right model is accepted
    # a started store with another model is not resumed silently
    from workbench.store._build import build

    build(make_model(), make_corpus(), tmp_path / "half", stop_after=1, **SETTINGS)
    with pytest.raises(StoreError, match="other settings"):
        build((other, make_model()[1]), make_corpus(), tmp_path / "half", **SETTINGS)
    # an older schema
    old = tmp_path / "old"
    import shutil

    shutil.copytree(store.path, old)
    meta = json.loads((old / "zarr.json").read_text())
    meta["attributes"]["workbench_store"]["schema"] = 0
    (old / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="schema 0"):
        StateStore.open(old)
    with pytest.raises(StoreError, match="empty"):
        StateStore.build(make_model(), [], tmp_path / "e", **SETTINGS)


def test_build_threads_are_checked_and_restored(tmp_path, built):
    store, *_ = built
    before = torch.get_num_threads()
    got = StateStore.build(make_model(), make_corpus(), tmp_path / "t", threads=1, **SETTINGS)
    assert torch.get_num_threads() == before
    assert_same_store(got.path, store.path)
    with pytest.raises(StoreError, match="threads"):
        StateStore.build(make_model(), make_corpus(), tmp_path / "u", threads=0, **SETTINGS)


@pytest.mark.parametrize("value_dtype", [torch.float32, torch.float16])
def test_chunk_sink_hands_finished_chunks_to_the_writer_early(tmp_path, value_dtype):
    """float32 rows are cast piece by piece; float16 rows go in one compiled call a tick."""
    from workbench.store._writer import ChunkSink

    class Writer:  # runs each job at once
        def submit(self, job):
            job()

    rng = np.random.default_rng(0)
    lengths, a, c = [30, 50], 10, 16  # the segment holds rows [10, 90) of a 90-row store
    n = a + sum(lengths)
    values = [rng.standard_normal((k, 3)).astype(np.float32) for k in lengths]
    writer = Writer()
    sink = ChunkSink(tmp_path, lengths, a, {"x": 3, "never": 2}, "float16", c, n, writer)

    def written():
        return sorted(int(p.parent.name) for p in (tmp_path / "states" / "x").rglob("0"))

    for pos in range(0, 30, 8):  # document 0 runs to its end, window by window
        sink.put("x", 0, pos, torch.from_numpy(values[0][pos : pos + 8]).to(value_dtype))
        sink.tick()
    assert written() == [1]  # chunk 1 (rows 16-32) is final; chunk 2 waits for doc 1
    for pos in range(0, 50, 8):
        rows = torch.from_numpy(values[1][pos : pos + 8]).to(value_dtype)
        sink.put("x", 1, pos, rows.t().contiguous().t())  # strided: copied piece by piece
        sink.tick()
    assert written() == [1, 2, 3, 4, 5]  # chunk 5: the short last one
    pieces = sink.finish()()  # in the writer's order
    expected = np.concatenate(values).astype(np.float16)
    assert sorted(pieces) == ["states/never|10", "states/x|10"]  # chunk 0 is shared
    assert np.array_equal(pieces["states/x|10"], expected[:6])
    assert np.array_equal(pieces["states/never|10"], np.zeros((6, 2), np.float16))
    for k in range(1, 6):
        block = np.fromfile(tmp_path / "states" / "x" / "c" / str(k) / "0", "<f2").reshape(3, c)
        rows = expected[k * c - a : (k + 1) * c - a]
        assert np.array_equal(block.T[: len(rows)], rows)
        assert not block.T[len(rows) :].any()  # the last chunk is padded with the fill value
        never = np.fromfile(tmp_path / "states" / "never" / "c" / str(k) / "0", "<f2")
        assert never.shape == (2 * c,) and not never.any()


def test_float16_states_from_the_kernel_give_the_same_store(tmp_path, monkeypatch):
    """32 units, few rows: the recorder hands the build float16 states (same rounding)."""
    from workbench._native import ckernel as _ckernel
    from workbench.config import configure
    from workbench.recorder._recorder import half_outputs

    if not _ckernel.has_half():
        pytest.skip("no C compiler with _Float16 here")
    torch.manual_seed(3)
    tok = Tokenizer(["<pad>", "<unk>", *ALPHABET])
    model = CharLM(len(tok.vocab), 6, 32, 2).eval()
    ids = torch.tensor([tok.encode(list("(ab){ }" * 9))] * 3)
    with torch.no_grad():
        full = workbench.record(model, ids)
        with half_outputs():
            half = workbench.record(model, ids)
    assert half.names == full.names
    for name in full.names:
        assert half[name].dtype == torch.float16
        assert torch.equal(half[name], full[name].half()), name  # the same rounding
    assert torch.equal(half.output[0], full.output[0])  # the model's outputs are untouched
    docs = make_corpus(n_docs=9, seed=4)
    a = StateStore.build((model, tok), docs, tmp_path / "half", **SETTINGS)
    with configure(half_states=False):
        b = StateStore.build((model, tok), docs, tmp_path / "full", **SETTINGS)
    assert_same_store(a.path, b.path)
