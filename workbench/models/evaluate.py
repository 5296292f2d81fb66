"""Held-out metrics of the demo models, shared by training and by the checks of shipped models.

:func:`evaluate` recomputes a loaded checkpoint's test metric (on a subset when asked), so a
user (and the test suite) can confirm the figures a checkpoint reports.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from workbench.models.tokenizer import Tokenizer


def stream(docs, tok: Tokenizer) -> torch.Tensor:
    """Concatenated token ids of documents ``[time]``."""
    ids: list[int] = []
    for d in docs:
        ids.extend(tok.encode(d.tokens))
    return torch.tensor(ids, dtype=torch.long)


def lm_nats(model: nn.Module, ids: torch.Tensor, bptt: int = 128, batch: int = 32) -> float:
    """Mean next-token cross-entropy (nats) over a stream, carrying state across windows.

    Parameters
    ----------
    model : nn.Module
        ``model(ids [batch, time], state) -> (logits [batch, time, vocab], state)``.
    ids : torch.Tensor
        ``[time]`` token ids, cut into ``batch`` contiguous rows; or ``[batch, time]``
        independent sequences, each read from a zero state.
    """
    if ids.dim() == 2:
        return _rows_nats(model, ids)
    batch = max(1, min(batch, (len(ids) - 1) // max(bptt, 1)))
    n = (len(ids) - 1) // batch * batch
    if n <= 0:
        raise ValueError("evaluation stream too short (need at least 2 tokens)")
    x = ids[:n].view(batch, -1)
    y = ids[1 : n + 1].view(batch, -1)
    total, count, state = 0.0, 0, None
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, x.shape[1], bptt):
            logits, state = model(x[:, i : i + bptt], state)
            target = y[:, i : i + bptt]
            total += nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum"
            ).item()
            count += target.numel()
    model.train(was_training)
    return total / count


def _rows_nats(model: nn.Module, rows: torch.Tensor, chunk: int = 256) -> float:
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(rows), chunk):
            x = rows[i : i + chunk]
            logits, _ = model(x[:, :-1])
            total += nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum"
            ).item()
    model.train(was_training)
    return total / (rows.shape[0] * (rows.shape[1] - 1))


def parens_metrics(model: nn.Module, tok: Tokenizer, docs) -> dict:
    """Digit accuracy: where the next token is a digit, the likeliest digit must be the depth."""
    from workbench.models import baselines

    digits = [tok.encode([str(d)])[0] for d in range(5)]
    hit = total = 0
    with torch.no_grad():
        for d in docs:
            ids = torch.tensor([tok.encode(d.tokens)])
            logits, _ = model(ids[:, :-1])
            guess = logits[0][:, digits].argmax(-1).tolist()
            for t, nxt in enumerate(d.tokens[1:]):
                if nxt.isdigit():
                    hit += guess[t] == int(nxt)
                    total += 1
    return {
        "test_digit_accuracy": hit / total,
        "baseline_majority_digit_accuracy": baselines.majority_digit(docs),
    }


def batches(docs, tok: Tokenizer, batch: int, rng=None, max_len: int = 64):
    """``(ids [batch, time], lengths [batch], labels [batch])``, shuffled when ``rng`` is given."""
    order = rng.permutation(len(docs)) if rng is not None else np.arange(len(docs))
    for i in range(0, len(docs), batch):
        chunk = [docs[j] for j in order[i : i + batch]]
        enc = [tok.encode(d.tokens[:max_len]) for d in chunk]
        lengths = torch.tensor([len(e) for e in enc])
        ids = torch.zeros(len(enc), int(lengths.max()), dtype=torch.long)
        for k, e in enumerate(enc):
            ids[k, : len(e)] = torch.tensor(e)
        yield ids, lengths, torch.tensor([d.label for d in chunk])


def classifier_metrics(model: nn.Module, tok: Tokenizer, docs) -> dict:
    """Accuracy and macro-F1 of a classifier on labelled documents."""
    from sklearn.metrics import f1_score

    preds = []
    with torch.no_grad():
        for ids, lengths, _ in batches(docs, tok, 256):
            preds.append(model(ids, lengths).argmax(-1))
    pred = torch.cat(preds).numpy()
    y = np.array([d.label for d in docs])
    return {
        "test_accuracy": float((pred == y).mean()),
        "test_macro_f1": float(f1_score(y, pred, average="macro")),
    }


def forecaster_metrics(model: nn.Module, series, window: int, relative: bool) -> dict:
    """Test RMSE / MAE of a one-step forecaster in the series' original units."""
    x, y = series.windows("test", window, relative=relative)
    _, y_abs = series.windows("test", window)
    shift = (y_abs - y)[:, 0]  # zero unless relative
    with torch.no_grad():
        pred = (model(torch.from_numpy(x)).numpy()[:, 0] + shift) * series.std + series.mean
    truth = y_abs[:, 0] * series.std + series.mean
    return {
        "test_rmse": float(np.sqrt(np.mean((pred - truth) ** 2))),
        "test_mae": float(np.mean(np.abs(pred - truth))),
    }


def evaluate(bundle, max_tokens: int | None = None) -> dict:
    """Recompute a shipped-corpus checkpoint's held-out test metric.

    Parameters
    ----------
    bundle : Bundle
        From :func:`workbench.load`, trained on a shipped corpus.
    max_tokens : int, optional
        Evaluate on the first tokens (characters, tweets' words) of the test split only.

    Returns
    -------
    dict
        ``test_bits_per_char`` (python), ``test_digit_accuracy`` (parens),
        ``test_accuracy`` / ``test_macro_f1`` (sentiment) or ``test_rmse`` / ``test_mae``.
    """
    from workbench.data import CORPORA, corpus

    if bundle.task not in CORPORA:
        raise ValueError(f"evaluate() knows the shipped corpora {CORPORA}, not {bundle.task!r}")
    model = bundle.model.eval()
    if bundle.task == "python":
        docs = corpus("python", "test", max_tokens or 400_000)
        bptt = bundle.config.get("training", {}).get("bptt", 128)
        nats = lm_nats(model, stream(docs, bundle.tokenizer), bptt)
        return {"test_bits_per_char": nats / math.log(2)}
    if bundle.task == "parens":
        return parens_metrics(model, bundle.tokenizer, corpus("parens", "test", max_tokens))
    if bundle.task == "sentiment":
        return classifier_metrics(model, bundle.tokenizer, corpus("sentiment", "test", max_tokens))
    from workbench.data import series as series_mod

    sc = bundle.config["scaling"]
    ser = getattr(series_mod, bundle.task)()
    return forecaster_metrics(model, ser, sc["window"], sc.get("relative", False))
