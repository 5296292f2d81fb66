"""Checkpoint I/O: safetensors + JSON folders, tokenizers, and the errors a user can cause."""

import json
import pickle

import pytest
import torch

import workbench
from workbench.models.architectures import build
from workbench.models.checkpoint import CheckpointError, load, save, shipped
from workbench.models.tokenizer import Tokenizer


def test_char_and_word_tokenizers_round_trip():
    tok = Tokenizer.fit([list("hello world"), list("help")], "char")
    assert tok.vocab[:2] == ["<pad>", "<unk>"] and tok.pad_id == 0 and tok.unk_id == 1
    ids = tok.encode(list("hold"))
    assert tok.decode(ids) == list("hold")
    assert tok.encode(["Z"]) == [tok.unk_id]
    again = Tokenizer.from_json(json.loads(json.dumps(tok.to_json())))
    assert again.vocab == tok.vocab and again.encode(list("hello")) == tok.encode(list("hello"))
    words = Tokenizer.fit([["good", "day"], ["good", "!"]], "word", min_count=2)
    assert words.vocab == ["<pad>", "<unk>", "good"]
    assert words.tokenize("Good DAY @bob http://x.y/z !") == ["good", "day", "@user", "url", "!"]
    with pytest.raises(ValueError, match="<pad>"):
        Tokenizer(["a", "b"])


@pytest.mark.parametrize(
    "kind, arch",
    [
        ("charlm", dict(vocab=9, embed=4, hidden=6, layers=2, arch="lstm", residual=True)),
        ("charlm", dict(vocab=9, embed=4, hidden=6, layers=1, arch="peephole")),
        ("classifier", dict(vocab=9, embed=4, hidden=6, classes=3, arch="gru", attention=False)),
        ("forecaster", dict(features=2, hidden=5, horizon=3, arch="gru", layers=2)),
    ],
)
def test_every_architecture_round_trips_exactly(tmp_path, kind, arch):
    model = build(kind, **arch).eval()
    tok = Tokenizer(["<pad>", "<unk>", *"abcdefg"]) if kind != "forecaster" else None
    save(tmp_path / "m", model, kind, "toy", arch, tok, labels=["a", "b", "c"])
    bundle = load(tmp_path / "m")
    assert bundle.kind == kind and bundle.task == "toy" and not bundle.model.training
    if kind == "forecaster":
        x = torch.randn(2, 7, 2)
        y = bundle.model(x)
        assert y.shape == (2, 3) and torch.equal(y, model(x))
        with pytest.raises(CheckpointError, match="series"):
            bundle.encode(["text"])
    elif kind == "classifier":
        ids, lengths = bundle.encode(["abc", "a"])
        assert ids[1].tolist() == [ids[0, 0].item(), 0, 0]
        assert torch.equal(bundle.model(ids, lengths), model(ids, lengths))
        assert bundle.labels == ["a", "b", "c"]
    else:
        ids, _ = bundle.encode("abcabc")
        assert torch.equal(bundle.model(ids)[0], model(ids)[0])


def test_pickle_refused_whatever_its_suffix(tmp_path):
    for name in ("weights.bin", "model.pth", "model.ckpt", "weights.data"):
        f = tmp_path / name
        f.write_bytes(pickle.dumps({"w": [1, 2]}))
        with pytest.raises(CheckpointError, match="pickle"):
            load(f)
    with pytest.raises(CheckpointError, match="never unpickles"):
        workbench.load(tmp_path / "model.pth")


def test_broken_folders_give_clear_errors(tmp_path):
    tok = Tokenizer.fit([list("ab")], "char")
    arch = dict(vocab=len(tok), embed=4, hidden=8, layers=1)
    good = save(tmp_path / "m", build("charlm", **arch), "charlm", "toy", arch, tok)
    (good / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(good)
    (good / "config.json").write_text(json.dumps({"schema": "other/9"}))
    with pytest.raises(CheckpointError, match="schema"):
        load(good)
    save(good, build("charlm", **arch), "charlm", "toy", arch, tok)
    (good / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable"):
        load(good)
    save(good, build("charlm", **arch), "charlm", "toy", arch, tok)
    (good / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load(good)
    other = dict(arch, layers=2)
    save(tmp_path / "two", build("charlm", **other), "charlm", "toy", arch, tok)
    with pytest.raises(CheckpointError, match="do not match"):
        load(tmp_path / "two")
    with pytest.raises(CheckpointError, match="no shipped model"):
        shipped("linux")


def test_shipped_name_resolves_to_the_package_data():
    path = shipped("parens")
    assert (path / "config.json").exists()
    assert path.parts[-4:] == ("workbench", "models", "shipped", "parens")
    bundle = workbench.load("parens")
    assert bundle.path == path and bundle.kind == "charlm"


def test_shipped_models_found_through_an_environment_variable(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(shipped("sunspots"), tmp_path / "sunspots")
    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path))
    assert shipped("sunspots") == tmp_path / "sunspots"
    assert workbench.load("sunspots").path == tmp_path / "sunspots"
