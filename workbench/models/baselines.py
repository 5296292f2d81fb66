"""Simple baselines computed on the same splits as the recurrent models."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


def ngram_bits_per_char(train_docs, test_docs, n: int = 5) -> float:
    """Bits per character of an interpolated Witten-Bell character n-gram model.

    P(c | h) = (C(h c) + T(h) P(c | h')) / (C(h) + T(h)), with T(h) the number of distinct
    characters seen after h and h' the context shortened by one; the order-0 model is add-one
    smoothed over the training alphabet plus one unknown symbol. Contexts do not cross
    document boundaries.
    """
    texts = ["".join(d.tokens) for d in train_docs]
    alphabet = {c for t in texts for c in t}
    V = len(alphabet) + 1
    grams = []  # grams[k]: counts of (k+1)-grams
    ctx_total, ctx_types = [], []
    for k in range(n):
        counts = Counter()
        for t in texts:
            counts.update(t[i : i + k + 1] for i in range(len(t) - k))
        total, types = Counter(), Counter()
        for g, c in counts.items():
            total[g[:-1]] += c
            types[g[:-1]] += 1
        grams.append(counts)
        ctx_total.append(total)
        ctx_types.append(types)
    uni_total = ctx_total[0][""]

    bits, count = 0.0, 0
    for d in test_docs:
        t = "".join(d.tokens)
        for i, ch in enumerate(t):
            p = (grams[0].get(ch, 0) + 1) / (uni_total + V)
            for k in range(1, n):
                if i - k < 0:
                    break
                h = t[i - k : i]
                c_h = ctx_total[k].get(h, 0)
                if c_h == 0:
                    break
                T = ctx_types[k][h]
                p = (grams[k].get(h + ch, 0) + T * p) / (c_h + T)
            bits -= math.log2(p)
            count += 1
    return bits / count


def sentiment_baselines(train, test) -> dict:
    """Majority class and TF-IDF (uni+bigram) logistic regression on the same split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    y_tr = np.array([d.label for d in train])
    y_te = np.array([d.label for d in test])
    majority = np.bincount(y_tr).argmax()
    vec = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, token_pattern=None, tokenizer=str.split, lowercase=False
    )
    x_tr = vec.fit_transform([" ".join(d.tokens) for d in train])
    x_te = vec.transform([" ".join(d.tokens) for d in test])
    clf = LogisticRegression(max_iter=2000, C=4.0).fit(x_tr, y_tr)
    pred = clf.predict(x_te)
    return {
        "baseline_majority_accuracy": float((y_te == majority).mean()),
        "baseline_majority_macro_f1": float(
            f1_score(y_te, np.full_like(y_te, majority), average="macro")
        ),
        "baseline_tfidf_logreg_accuracy": float((pred == y_te).mean()),
        "baseline_tfidf_logreg_macro_f1": float(f1_score(y_te, pred, average="macro")),
    }


def forecast_baselines(series, window: int, season: int | None = None) -> dict:
    """Persistence and seasonal-naive forecasts of the same test targets (original units).

    ``season`` defaults to the shipped series' cycle (11 years, 52 weeks); for a user's series
    without one only persistence is computed.
    """
    from workbench.data.series import SEASON

    season = season or SEASON.get(series.name)
    v = series.values
    lo = max(window, series.cuts[1])
    targets = np.arange(lo, len(v))
    truth = v[targets]
    persistence = v[targets - 1]

    def rmse(p):
        return float(np.sqrt(np.mean((p - truth) ** 2)))

    out = {
        "baseline_persistence_rmse": rmse(persistence),
        "baseline_persistence_mae": float(np.mean(np.abs(persistence - truth))),
    }
    if season:
        seasonal = v[targets - season]
        out[f"baseline_seasonal_naive_{season}_rmse"] = rmse(seasonal)
        out[f"baseline_seasonal_naive_{season}_mae"] = float(np.mean(np.abs(seasonal - truth)))
    return out


def majority_digit(docs) -> float:
    """Accuracy of always answering the most frequent digit."""
    digits = [int(t) for d in docs for t in d.tokens if t.isdigit()]
    counts = np.bincount(digits)
    return float(counts.max() / counts.sum())
