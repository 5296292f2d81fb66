"""LSTMVis export / import round trip and the format LSTMVis's server reads."""

import h5py
import numpy as np
import pytest
import yaml
from test_store import SETTINGS, make_corpus, make_model

from workbench.store import StateStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("lv") / "s"
    return StateStore.build(make_model(), make_corpus(n_docs=5), path, **SETTINGS)


def test_export_is_an_lstmvis_project(store, tmp_path):
    folder = store.export(tmp_path / "proj")
    cfg = yaml.safe_load((folder / "lstm.yml").read_text())
    # what lstmdata/data_handler.py reads
    assert set(cfg["files"]) >= {"states", "train", "words"}
    ws = cfg["word_sequence"]
    with h5py.File(folder / cfg["files"][ws["file"]], "r") as f:
        assert f[ws["path"]].shape == (store.n_tokens,)
    for line in (folder / "words.dict").read_text(encoding="utf-8").splitlines():
        k, v = line.split()  # LSTMVis's own parse
        int(v)
    types = {(t["type"], t["layer"]) for t in cfg["states"]["types"]}
    assert ("state", 1) in types and ("output", 2) in types
    with h5py.File(folder / "states.h5", "r") as f:
        for t in cfg["states"]["types"]:
            assert t["transform"] == "none"
            assert f[t["path"]].shape == store.states(t["path"]).shape


def test_round_trip(store, tmp_path):
    folder = store.export(tmp_path / "proj")
    back = StateStore.from_lstmvis(folder, tmp_path / "back", chunk_tokens=50)
    assert back.names == store.names
    assert back.tokens() == store.tokens()  # spaces and newlines survive the .dict
    assert back.doc_ids == store.doc_ids
    np.testing.assert_array_equal(back.boundaries, store.boundaries)
    for n in store.names:
        np.testing.assert_array_equal(back.states(n)[:], store.states(n)[:])
    np.testing.assert_array_equal(back.meta("depth"), store.meta("depth"))
    m1 = store.match("rnn.0.fwd.cell", [0, 2], threshold=0.0)
    m2 = back.match("rnn.0.fwd.cell", [0, 2], threshold=0.0)
    assert m1.spans() == m2.spans()


def test_import_applies_lstmvis_default_tanh(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    with h5py.File(folder / "states.h5", "w") as f:
        f["states1"] = x
    with h5py.File(folder / "train.h5", "w") as f:
        f["words"] = np.array([0, 1, 2, 1, 0, 2, 2])
    (folder / "words.dict").write_text("the 0\ncat 1\nsat 2\n")
    cfg = {
        "name": "tiny",
        "files": {"states": "states.h5", "train": "train.h5", "words": "words.dict"},
        "word_sequence": {"file": "train", "path": "words", "dict_file": "words"},
        "states": {"file": "states", "types": [{"type": "state", "layer": 1, "path": "states1"}]},
    }
    (folder / "lstm.yml").write_text(yaml.safe_dump(cfg))
    s = StateStore.from_lstmvis(folder, tmp_path / "s")
    assert s.tokens(0, 3) == ["the", "cat", "sat"]
    assert s.n_docs == 1
    np.testing.assert_allclose(s.states("states1")[:], np.tanh(x), atol=1e-3)
    with pytest.raises(FileNotFoundError, match="lstm.yml"):
        StateStore.from_lstmvis(tmp_path, tmp_path / "t")
