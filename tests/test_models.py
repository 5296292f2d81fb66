"""Architectures, checkpoints and the shipped models."""

import pickle

import pytest
import torch

import workbench
from workbench.models.architectures import build
from workbench.models.checkpoint import CheckpointError, load, save, shipped
from workbench.models.evaluate import evaluate
from workbench.models.tokenizer import Tokenizer
from workbench.models.train import TrainSettings, train_forecaster


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    tok = Tokenizer.fit([list("hello world")], "char")
    arch = dict(vocab=len(tok), embed=4, hidden=8, layers=2, arch="gru")
    model = build("charlm", **arch).eval()
    save(tmp_path / "m", model, "charlm", "toy", arch, tok, metrics={"x": 1.0})
    bundle = load(tmp_path / "m")
    ids, lengths = bundle.encode(["hello", "hi"])
    assert lengths.tolist() == [5, 2]
    assert torch.equal(bundle.model(ids)[0], model(ids)[0])
    assert bundle.metrics == {"x": 1.0}
    assert bundle.tokenizer.decode(ids[0]) == list("hello")
    with pytest.raises(ValueError, match="empty"):
        bundle.encode([""])


def test_pickles_and_broken_folders_are_refused(tmp_path):
    pt = tmp_path / "model.pt"
    pt.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(CheckpointError, match="workbench convert"):
        load(pt)
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        load(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load(tmp_path / "half")
    tok = Tokenizer.fit([list("ab")], "char")
    arch = dict(vocab=len(tok), embed=4, hidden=8, layers=1)
    save(tmp_path / "m", build("charlm", **arch), "charlm", "toy", arch, tok)
    cfg = (tmp_path / "m" / "config.json").read_text().replace('"hidden": 8', '"hidden": 9')
    (tmp_path / "m" / "config.json").write_text(cfg)
    with pytest.raises(CheckpointError, match="do not match"):
        load(tmp_path / "m")


@pytest.mark.parametrize("arch", ["lstm", "gru", "peephole"])
def test_architectures_record_unmodified(arch):
    model = build("charlm", vocab=20, embed=4, hidden=6, layers=2, arch=arch).eval()
    trace = workbench.record(model, torch.randint(0, 20, (2, 5)))
    root = "rnn.cells" if arch == "peephole" else "rnn"
    cell = f"{root}.1.fwd.{'hidden' if arch == 'gru' else 'cell'}"
    assert trace[cell].shape == (2, 5, 6)
    clf = build("classifier", vocab=20, embed=4, hidden=6, classes=3).eval()
    t = workbench.record(clf, torch.randint(1, 20, (3, 7)), torch.tensor([7, 2, 4]))
    assert t.lengths.tolist() == [7, 2, 4]
    assert torch.allclose(t["pool.weights"].sum(1), torch.ones(3, 1))


def test_a_short_training_run_learns(tmp_path):
    s = TrainSettings(hidden=8, layers=1, epochs=15, lr=1e-2, batch=32, patience=20, dropout=0.0)
    metrics = train_forecaster("sunspots", s, tmp_path / "f", None)
    assert metrics["test_rmse"] < metrics["baseline_seasonal_naive_11_rmse"]
    assert load(tmp_path / "f").config["scaling"]["window"] == 33


@pytest.mark.parametrize(
    "name", ["parens", "sunspots", "co2", "python", "sentiment", "python-gru", "python-rnn"]
)
def test_shipped_checkpoints_reproduce_their_reported_metrics(name):
    bundle = load(shipped(name))
    m = bundle.metrics
    assert bundle.task == name.split("-")[0] and m  # python-gru: the python task
    if name == "parens":
        again = evaluate(bundle, max_tokens=6000)  # 100 of the 400 test sequences
        assert again["test_digit_accuracy"] == pytest.approx(m["test_digit_accuracy"], abs=0.02)
        assert again["test_digit_accuracy"] >= 0.999  # the LSTMVis check: digits = depth
    elif name in ("sunspots", "co2"):
        again = evaluate(bundle)  # the whole test split is small
        assert again["test_rmse"] == pytest.approx(m["test_rmse"], rel=1e-4)
        assert again["test_mae"] == pytest.approx(m["test_mae"], rel=1e-4)
        assert m["test_rmse"] < m["baseline_persistence_rmse"]
    elif name.startswith("python"):
        again = evaluate(bundle, max_tokens=30_000)
        check = m["check_bits_per_char_first_30000"]
        assert again["test_bits_per_char"] == pytest.approx(check, abs=1e-3)
        assert m["test_bits_per_char"] < m["baseline_unigram_bits_per_char"]
    else:
        again = evaluate(bundle)
        assert again["test_accuracy"] == pytest.approx(m["test_accuracy"], abs=1e-6)
        assert m["test_accuracy"] > m["baseline_majority_accuracy"] + 0.2
        assert m["test_macro_f1"] > m["baseline_majority_macro_f1"] + 0.3
