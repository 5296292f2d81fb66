"""Training: truncated BPTT on a stream, the CLI command, and its errors."""

import json

import pytest
import torch
from typer.testing import CliRunner

from workbench.cli import app
from workbench.models.architectures import build
from workbench.models.checkpoint import load
from workbench.models.evaluate import lm_nats
from workbench.models.train import TrainSettings, fit_lm


def _flat(result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines


@pytest.mark.parametrize("arch", ["lstm", "peephole", "rnn"])
def test_a_few_bptt_steps_reduce_the_loss(arch):
    text = "def f(x):\n    return (x + 1)\n" * 60
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(c) + 2 for c in text])
    model = build("charlm", vocab=len(vocab) + 2, embed=8, hidden=24, layers=1, arch=arch)
    before = lm_nats(model, ids, bptt=16, batch=4)
    s = TrainSettings(arch=arch, epochs=4, batch=4, bptt=16, lr=2e-2, dropout=0.0, patience=9)
    stats = {}
    epochs = fit_lm(model, ids, ids, s, "toy", stats)
    after = lm_nats(model, ids, bptt=16, batch=4)
    assert epochs == 4 and not model.training
    assert stats["steps"] == 4 * ((len(ids) - 1) // 4 // 16)  # epochs x windows
    assert after < 0.5 * before


def test_train_command_writes_a_checkpoint_with_metrics_and_baselines(tmp_path):
    out = tmp_path / "parens"
    args = ["train", "parens", "--out", str(out), "--hidden", "8", "--epochs", "1"]
    result = CliRunner().invoke(app, [*args, "--max-train-tokens", "6030", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "test_digit_accuracy" in _flat(result)  # the metrics table
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["seed"] == 3 and config["training"]["hidden"] == 8
    assert config["data"]["corpus"] == "parens"
    assert {"test_digit_accuracy", "baseline_majority_digit_accuracy"} <= set(config["metrics"])
    bundle = load(out)
    assert bundle.kind == "charlm" and bundle.tokenizer.vocab[:2] == ["<pad>", "<unk>"]
    # continue training from the checkpoint: history grows
    more = [*args[:3], str(tmp_path / "again"), "--epochs", "1", "--init", str(out)]
    result = CliRunner().invoke(app, [*more, "--max-train-tokens", "3000"])
    assert result.exit_code == 0, result.output
    assert len(load(tmp_path / "again").config["history"]) == 2


def test_train_command_errors_are_clear(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "linux", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "unknown task" in _flat(result)
    result = runner.invoke(
        app, ["train", "sentiment", "--arch", "peephole", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "lstm, gru or rnn" in _flat(result)
    result = runner.invoke(
        app, ["train", "parens", "--init", str(tmp_path / "none"), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 1 and "no checkpoint folder" in _flat(result)


def test_train_on_your_own_data(tmp_path):
    import numpy as np

    runner = CliRunner()
    texts = tmp_path / "texts"
    texts.mkdir()
    for k in range(5):
        (texts / f"{k}.txt").write_text(f"for i in range({k}):\n    print(i)\n" * 20)
    small = ["--hidden", "8", "--epochs", "1", "--batch", "4", "--bptt", "32"]
    r = runner.invoke(app, ["train", "charlm", "--data", str(texts)])
    assert r.exit_code != 0 and "--out" in _flat(r)  # never overwrite a shipped model
    r = runner.invoke(
        app, ["train", "charlm", "--data", str(texts), "--out", str(tmp_path / "lm"), *small]
    )
    assert r.exit_code == 0, r.output
    lm = load(tmp_path / "lm")
    assert lm.task == "texts" and "user text folder" in lm.config["data"]["source"]
    assert lm.metrics["test_bits_per_char"] > 0

    rows = ["text,label"] + [f"good great fine {k},pos" for k in range(15)]
    rows += [f"bad awful poor {k},neg" for k in range(15)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    args = ["train", "classifier", "--data", str(tmp_path / "r.csv"), "--out", str(tmp_path / "c")]
    r = runner.invoke(app, [*args, "--hidden", "4", "--epochs", "2"])
    assert r.exit_code == 0, r.output
    clf = load(tmp_path / "c")
    assert clf.labels == ["neg", "pos"] and clf.kind == "classifier"

    np.save(tmp_path / "s.npy", np.sin(np.arange(120) * 2 * np.pi / 12))
    args = ["train", "forecaster", "--data", str(tmp_path / "s.npy"), "--out", str(tmp_path / "f")]
    r = runner.invoke(app, [*args, "--hidden", "4", "--epochs", "3", "--season", "12"])
    assert r.exit_code == 0, r.output
    m = load(tmp_path / "f").metrics
    assert m["baseline_seasonal_naive_12_rmse"] < 1e-6  # a pure sine repeats exactly

    r = runner.invoke(app, ["train", "forecaster", "--out", str(tmp_path / "g")])
    assert r.exit_code != 0 and "--data" in _flat(r)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    r = runner.invoke(
        app, ["train", "classifier", "--data", str(tmp_path / "bad.csv"), "--out", "x"]
    )
    assert r.exit_code == 1 and "no column" in _flat(r)
