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


def test_lstm_yml_is_what_lstmvis_reads(store, tmp_path):
    """Meta ranges are explicit lists (a "0...3" string becomes a Python range that LSTMVis's
    /info drops, and its client then fails on ``range.length``)."""
    import json

    folder = store.export(tmp_path / "proj")
    text = (folder / "lstm.yml").read_text(encoding="utf-8")
    assert "LSTMVis" in text.splitlines()[0] and "e0628ca" in text.splitlines()[0]
    cfg = yaml.load(text, Loader=yaml.FullLoader)  # how lstm_server.py loads it
    assert set(cfg["meta"]) == set(store.meta_tracks)
    for track, info in cfg["meta"].items():
        values = store.meta(track)
        vis = info["vis"]
        json.dumps(vis)  # survives /info as it is
        assert isinstance(vis["range"], list)
        if vis["type"] == "discrete":
            assert vis["range"] == list(range(int(values.min()), int(values.max()) + 1))
        else:
            assert vis["type"] == "scalar" and len(vis["range"]) == 2
        assert info["file"] in cfg["files"] and info["type"] == "general"
        with h5py.File(folder / cfg["files"][info["file"]], "r") as f:
            np.testing.assert_array_equal(f[info["path"]][:], values)
    assert cfg["meta"]["depth"]["vis"]["type"] == "discrete"
    assert cfg["meta"]["is_open"]["vis"]["range"] == [0, 1]


def test_scalar_meta_range_is_the_float_extent():
    from workbench.store.lstmvis import _vis

    assert _vis(np.array([0.25, np.nan, 1.75], np.float32)) == {
        "type": "scalar",
        "range": [0.25, 1.75],
    }
    assert _vis(np.arange(1000))["type"] == "scalar"  # too many values to list


def test_dict_keeps_tokens_that_look_like_the_escapes():
    from workbench.store.lstmvis import _escape, _unescape

    for tok in [" ", "␣", "\n", "⏎", "a b", "\\", "\\u0041", "", "x"]:
        esc = _escape(tok)
        assert len(esc.split()) == 1 and _unescape(esc) == tok


@pytest.mark.parametrize("source,asked,kept", [
    (np.float32, None, "float32"),
    (np.float16, None, "float16"),
    (np.float64, None, "float32"),
    (np.float32, "float16", "float16"),
])  # fmt: skip
def test_import_keeps_the_source_dtype(tmp_path, source, asked, kept):
    folder = tmp_path / "p"
    folder.mkdir()
    x = np.random.default_rng(1).normal(size=(9, 4)).astype(source)
    with h5py.File(folder / "states.h5", "w") as f:
        f["states1"] = x
    with h5py.File(folder / "train.h5", "w") as f:
        f["words"] = np.zeros(9, np.int64)
    (folder / "words.dict").write_text("a 0\n")
    cfg = {
        "name": "tiny",
        "files": {"states": "states.h5", "train": "train.h5", "words": "words.dict"},
        "word_sequence": {"file": "train", "path": "words", "dict_file": "words"},
        "states": {
            "file": "states",
            "types": [{"type": "state", "layer": 1, "path": "states1", "transform": "none"}],
        },
    }
    (folder / "lstm.yml").write_text(yaml.safe_dump(cfg))
    s = StateStore.from_lstmvis(folder, tmp_path / "s", dtype=asked)
    assert s.states("states1").dtype == np.dtype(kept)
    np.testing.assert_array_equal(s.states("states1")[:], x.astype(kept))


def test_cli_import_keeps_the_dtype_unless_asked(store, tmp_path):
    from typer.testing import CliRunner

    from workbench.cli import app

    folder = store.export(tmp_path / "proj")  # float32 HDF5
    res = CliRunner().invoke(app, ["import", str(folder), "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert StateStore.open(tmp_path / "a").states("rnn.0.fwd.cell").dtype == np.float32
    args = ["import", str(folder), "--out", str(tmp_path / "b"), "--dtype", "float16"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert StateStore.open(tmp_path / "b").states("rnn.0.fwd.cell").dtype == np.float16
    bad = CliRunner().invoke(app, [*args[:3], str(tmp_path / "c"), "--dtype", "int8"])
    assert bad.exit_code != 0 and "float16 or float32" in bad.output
    assert "Traceback" not in bad.output


# the lstm.yml keys LSTMVis 2 reads (lstmdata/data_handler.py, lstm_server.py, client/*.html
# and client/js/apps/*.js at e0628ca): nothing else is written
READ = {
    "": {"name", "description", "files", "word_sequence", "states", "meta"},
    "word_sequence": {"file", "path", "dict_file"},
    "states": {"file", "types"},
    "type": {"type", "layer", "path", "transform", "unsigned"},
    "meta": {"file", "path", "type", "vis"},
    "vis": {"type", "range"},
}


def test_every_lstm_yml_field_is_one_lstmvis_reads(store, tmp_path):
    cfg = yaml.safe_load((store.export(tmp_path / "proj") / "lstm.yml").read_text())
    assert set(cfg) <= READ[""]
    assert set(cfg["word_sequence"]) <= READ["word_sequence"]
    assert set(cfg["states"]) <= READ["states"]
    for t in cfg["states"]["types"]:
        assert set(t) <= READ["type"] and t["type"] in ("state", "output", *_QUANTITIES)
        assert isinstance(t["layer"], int) and t["layer"] >= 1
    for info in cfg["meta"].values():
        assert set(info) <= READ["meta"] and set(info["vis"]) <= READ["vis"]
        assert info["vis"]["type"] in ("discrete", "scalar")
    # LSTMVis opens files by extension: HDF5 ends .h5 / .hdf5, dicts .dict / .txt
    for key, name in cfg["files"].items():
        assert name.endswith((".h5", ".dict")), (key, name)
    assert cfg["files"][cfg["word_sequence"]["dict_file"]].endswith(".dict")


_QUANTITIES = ("input_gate", "forget_gate", "cell_input", "output_gate")
