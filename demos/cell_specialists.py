"""Interpretable cells of the shipped python char LM, chosen on training files, scored held out.

Run with ``.venv/bin/python demos/cell_specialists.py`` (about 2.5 minutes of CPU time, one
thread; ``--help`` for the sizes). It prints two tables:

1. The best single cell-state unit per concept: units are ranked on documents of the
   *training* split and the winner is scored on *held-out* (test split) documents, within
   a contrast (``in_literal`` against ``is_code``: comments and docstrings are left out), by
   AUC for yes/no tracks and by ``|r|`` for bracket depth on code characters. The parens
   model's depth unit is scored by ``|Spearman|``.
2. A causal check with :func:`workbench.intervene`: the best in-literal cell (and the best 3)
   zeroed (cell and hidden state) on held-out windows; the rise in bits per character of the
   characters inside literals and outside them, against the mean of 20 random draws of as
   many cells of the same layer. ``--causal-by ablation`` chooses those cells by what zeroing
   each alone costs inside literals on training windows instead of by AUC.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

#: ``(track, contrast, within, goal)`` per row of the first table; ``goal`` is on the held-out
#: score (AUC, or |r| for a numeric track), None where the issue sets none.
CONCEPTS = (
    ("in_literal", "is_code", None, 0.95),
    ("in_comment", "is_code", None, 0.95),
    ("in_docstring", "is_code", None, None),
    ("in_string", None, None, None),
    ("depth", None, "is_code", 0.8),
    ("depth_paren", None, "is_code", 0.8),
    ("depth_square", None, "is_code", None),
    ("depth_curly", None, "is_code", None),
)
QUANTITIES = ("rnn.0.fwd.cell", "rnn.1.fwd.cell")


def slice_docs(split: str, chars: int, per_doc: int):
    """Files of the python corpus's ``split`` in corpus order, each cut to ``per_doc`` chars.

    The tracks are those of the cut text (:func:`~workbench.data.python_source.annotate`
    reads a fragment too); many files, not the first few whole, are sampled this way.
    """
    from workbench.data import Document
    from workbench.data import python_source as ps

    out, total = [], 0
    for path in ps.stdlib_files():
        if total >= chars:
            break
        if ps.split_of(path) != split or (text := ps.read_source(path)) is None:
            continue
        text = text[: min(per_doc, chars - total)]
        out.append(Document(path.name, list(text), ps.annotate(text)))
        total += len(text)
    return out


def build_store(bundle, train_docs, test_docs, path: Path):
    """One store of the training documents then the held-out ones (one torch thread)."""
    import torch

    from workbench.store import StateStore

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return StateStore.build(bundle, train_docs + test_docs, path, progress=False)
    finally:
        torch.set_num_threads(threads)


def best_units(store, n_train: int, concepts=CONCEPTS, quantities=QUANTITIES, top: int = 3):
    """Per concept, the best unit over ``quantities``, chosen on the first ``n_train`` docs.

    Returns
    -------
    list of dict
        ``track, contrast, within, name, unit, method, select_score, score, strength, goal,
        top`` (``top``: the best ``top`` units of the winning quantity, in rank order).
    """
    train = list(range(n_train))
    rows = []
    for track, contrast, within, goal in concepts:
        best = None
        for name in quantities:
            frame = store.best_cells(
                name, track, top=top, contrast=contrast, within=within, select_on=train
            )
            first = frame.iloc[0]
            chosen = (
                abs(first.select_score - 0.5) * 2
                if first.method == "auc"
                else abs(first.select_score)
            )
            if best is None or chosen > best[0]:
                best = (chosen, name, frame)
        _, name, frame = best
        first = frame.iloc[0]
        rows.append(
            {
                "track": track,
                "contrast": contrast,
                "within": within,
                "name": name,
                "unit": int(first.unit),
                "method": first.method,
                "select_score": float(first.select_score),
                "score": float(first.score),
                "strength": float(first.strength),
                "goal": goal,
                "top": frame.unit.astype(int).tolist(),
            }
        )
    return rows


def windows(store, first_doc: int, n: int, length: int):
    """``(texts, in_literal [n, length])`` of ``n`` windows from the middle of held-out docs.

    Each window starts at a line start of its document and holds ``length`` characters.
    """
    texts, inside = [], []
    b = store.boundaries
    for d in range(first_doc, store.n_docs):
        lo, hi = int(b[d]), int(b[d + 1])
        if hi - lo < length + 2:
            continue
        tokens = store.tokens(lo, hi)
        mid = (hi - lo - length) // 2
        while mid > 0 and tokens[mid - 1] != "\n":
            mid -= 1
        texts.append("".join(tokens[mid : mid + length]))
        inside.append(np.asarray(store.meta("in_literal")[lo + mid : lo + mid + length], bool))
        if len(texts) == n:
            break
    if not texts:
        raise ValueError(f"no held-out document is longer than {length} characters")
    return texts, np.stack(inside)


def ablation_bits(bundle, texts, layer: str, masks: np.ndarray) -> np.ndarray:
    """Bits per predicted character with cells zeroed, every mask at once.

    Parameters
    ----------
    texts : list of str
        ``window`` texts of one length ``T``.
    layer : str
        ``rnn.L.fwd``: its cell and hidden state are zeroed where a mask is 0.
    masks : np.ndarray
        ``[config, units]`` 1 = kept, 0 = zeroed (from step 0 on).

    Returns
    -------
    np.ndarray
        ``[config, window, T - 1]`` bits of each next character (character ``t + 1`` given
        ``0..t``) under each configuration. Configurations ride the batch dimension: one
        :func:`workbench.intervene` run for all of them.
    """
    import torch

    import workbench

    ids, _ = bundle.encode(list(texts))
    n_cfg, n_win = masks.shape[0], ids.shape[0]
    batch = ids.repeat(n_cfg, 1)  # row = config * n_win + window
    keep = torch.as_tensor(np.repeat(masks, n_win, axis=0), dtype=torch.float32)

    def edit(value, step):
        return value * keep.to(value.dtype)

    edits = {f"{layer}.cell": edit, f"{layer}.hidden": edit}
    with torch.no_grad():
        trace = workbench.intervene(bundle.model, batch, edits=edits, names=f"{layer}.cell")
    logits = trace.output[0] if isinstance(trace.output, tuple) else trace.output
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    nll = -logp.gather(-1, batch[:, 1:, None])[..., 0]
    return (nll / np.log(2)).numpy().reshape(n_cfg, n_win, -1)


def causal_check(bundle, store, literal_row: dict, n_test_first: int, n_windows: int = 4,
                 length: int = 1000, draws: int = 20, seed: int = 0) -> dict:  # fmt: skip
    """The best in-literal cell (and the best 3) zeroed, against random draws of as many.

    Returns
    -------
    dict
        Per ``k`` in (1, 3): ``cells``, ``inside`` / ``outside`` (rise in bits per character
        with the best cells zeroed), ``random_inside`` / ``random_outside`` (``[draws]``
        rises with random cells of the same layer), ``ratio`` (inside rise over the random
        draws' mean), and the unedited ``base_inside`` / ``base_outside``.
    """
    layer = literal_row["name"].rsplit(".", 1)[0]
    units = int(store.manifest["units"][literal_row["name"]])
    texts, inside = windows(store, n_test_first, n_windows, length)
    target = inside[:, 1:]  # the predicted characters' track
    rng = np.random.default_rng(seed)
    configs, labels = [np.ones(units)], [("base", 0)]
    for k in (1, 3):
        chosen = literal_row["top"][:k]
        others = np.setdiff1d(np.arange(units), chosen)
        for tag, cells in [("best", chosen)] + [
            ("random", rng.choice(others, k, replace=False)) for _ in range(draws)
        ]:
            m = np.ones(units)
            m[list(cells)] = 0
            configs.append(m)
            labels.append((tag, k))
    bits = ablation_bits(bundle, texts, layer, np.stack(configs))
    ins = bits[:, target].mean(axis=1)
    out = bits[:, ~target].mean(axis=1)
    result = {"base_inside": float(ins[0]), "base_outside": float(out[0]), "layer": layer,
              "windows": len(texts), "chars": int(target.size),
              "literal_chars": int(target.sum())}  # fmt: skip
    for k in (1, 3):
        best = [i for i, lab in enumerate(labels) if lab == ("best", k)][0]
        rand = [i for i, lab in enumerate(labels) if lab == ("random", k)]
        rise_in, rise_out = ins - ins[0], out - out[0]
        mean_rand = float(rise_in[rand].mean())
        result[k] = {
            "cells": [int(u) for u in literal_row["top"][:k]],
            "inside": float(rise_in[best]),
            "outside": float(rise_out[best]),
            "random_inside": rise_in[rand],
            "random_outside": rise_out[rand],
            "ratio": float(rise_in[best] / mean_rand) if mean_rand > 0 else float("inf"),
        }
    return result


def ablation_ranking(bundle, store, layer: str, n_windows: int = 4, length: int = 1000,
                     block: int = 33, first_doc: int = 0) -> dict:  # fmt: skip
    """Units of ``layer`` ranked by what zeroing each alone costs inside literals.

    Measured on windows of the *training* documents (the store's first ones), so that cells
    chosen this way are scored on held-out windows by :func:`causal_check` like those chosen
    by AUC. The rank is by the rise in bits per character inside literals minus the rise
    outside (a specialist hurts inside, not everywhere).

    Returns
    -------
    dict
        ``units`` (best first), ``inside`` / ``outside`` ``[units]`` rises per unit.
    """
    units = int(store.manifest["units"][f"{layer}.cell"])
    texts, inside = windows(store, first_doc, n_windows, length)
    target = inside[:, 1:]
    masks = np.ones((units + 1, units))
    masks[np.arange(1, units + 1), np.arange(units)] = 0
    bits = np.concatenate([ablation_bits(bundle, texts, layer, masks[a : a + block])
                           for a in range(0, units + 1, block)])  # fmt: skip
    rise_in = bits[1:, target].mean(axis=1) - bits[0, target].mean()
    rise_out = bits[1:, ~target].mean(axis=1) - bits[0, ~target].mean()
    order = np.argsort(-(rise_in - rise_out), kind="stable")
    return {"units": [int(u) for u in order], "inside": rise_in, "outside": rise_out}


def parens_depth(train_tokens: int = 20_000, test_tokens: int = 20_000) -> dict:
    """The parens model's best depth unit: chosen on training docs by |r|, |Spearman| held out."""
    from scipy.stats import spearmanr

    import workbench
    from workbench.data import corpus
    from workbench.models.checkpoint import shipped

    bundle = workbench.load(shipped("parens"))
    train = corpus("parens", "train", max_tokens=train_tokens)
    test = corpus("parens", "test", max_tokens=test_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(bundle, train, test, Path(tmp) / "parens")
        names = [n for n in store.names if n.endswith((".cell", ".hidden"))]
        held = np.arange(store.n_tokens) >= store.boundaries[len(train)]
        best = None
        for name in names:
            row = store.best_cells(name, "depth", top=1, select_on=range(len(train))).iloc[0]
            if best is None or abs(row.select_score) > abs(best[1].select_score):
                best = (name, row)
        name, row = best
        x = store.states(name).rows(0, store.n_tokens, [int(row.unit)])[:, 0]
        rho = spearmanr(x[held], store.meta("depth")[held]).statistic
    return {"name": name, "unit": int(row.unit), "spearman": float(abs(rho)), "goal": 0.9}


def run(train_chars: int, test_chars: int, per_doc: int, n_windows: int, length: int,
        draws: int, parens: bool = True, quantities=QUANTITIES,
        causal_by: str = "auc") -> dict:  # fmt: skip
    """Everything the tables show (see the module docstring).

    ``causal_by="ablation"``: the cells of the causal check are ranked by
    :func:`ablation_ranking` on training windows (in the layer of ``quantities`` whose best
    unit's rise inside minus outside is largest), not by AUC.
    """
    import workbench
    from workbench.models.checkpoint import shipped

    bundle = workbench.load(shipped("python"))
    bundle.model.eval()
    train, test = slice_docs("train", train_chars, per_doc), slice_docs("test", test_chars, per_doc)
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(bundle, train, test, Path(tmp) / "python")
        rows = best_units(store, len(train), quantities=quantities)
        literal = next(r for r in rows if r["track"] == "in_literal")
        if causal_by == "ablation":  # the layer whose best unit costs most inside literals
            best = None
            for name in quantities:
                layer = name.rsplit(".", 1)[0]
                ranked = ablation_ranking(bundle, store, layer, n_windows, length)
                u = ranked["units"][0]
                gap = ranked["inside"][u] - ranked["outside"][u]
                if best is None or gap > best[0]:
                    best = (gap, name, ranked["units"][:3])
            literal = {**literal, "name": best[1], "top": best[2]}
        causal = causal_check(bundle, store, literal, len(train), n_windows, length, draws)
    out = {"rows": rows, "causal": causal, "causal_by": causal_by,
           "train_docs": len(train), "test_docs": len(test),
           "train_chars": sum(map(len, train)), "test_chars": sum(map(len, test))}  # fmt: skip
    if parens:
        out["parens"] = parens_depth()
    return out


def table(result: dict) -> str:
    """The two tables as Markdown."""
    lines = [
        f"Cells chosen on {result['train_docs']} training files ({result['train_chars']} chars), "
        f"scored on {result['test_docs']} held-out files ({result['test_chars']} chars).",
        "",
        "| concept | scored on | best unit | on training files | held out | goal |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        where = (f"vs {r['contrast']}" if r["contrast"] else
                 f"{r['within']} characters" if r["within"] else "all characters")  # fmt: skip
        what = "AUC" if r["method"] == "auc" else "abs r"
        sel = r["select_score"] if r["method"] == "auc" else abs(r["select_score"])
        held = r["score"] if r["method"] == "auc" else abs(r["score"])
        if r["method"] == "auc" and sel < 0.5:  # an off-inside unit: AUC of its negation
            sel, held = 1 - sel, 1 - held
        goal = "" if r["goal"] is None else (
            f">= {r['goal']} {'met' if held >= r['goal'] else 'NOT met'}")  # fmt: skip
        lines.append(
            f"| {r['track']} ({what}) | {where} | {r['name']} {r['unit']} | {sel:.3f} | "
            f"{held:.3f} | {goal} |"
        )
    if "parens" in result:
        p = result["parens"]
        ok = "met" if p["spearman"] >= p["goal"] else "NOT met"
        lines.append(
            f"| parens depth (abs Spearman) | all characters | {p['name']} {p['unit']} | | "
            f"{p['spearman']:.3f} | >= {p['goal']} {ok} |"
        )
    c = result["causal"]
    chosen = ("by single-unit ablation on training windows" if result.get("causal_by") ==
              "ablation" else "by AUC on training files")  # fmt: skip
    lines += [
        "",
        f"Ablation (cell and hidden state zeroed; cells chosen {chosen}) on "
        f"{c['windows']} held-out windows, "
        f"{c['chars']} predicted chars ({c['literal_chars']} inside literals); unedited: "
        f"{c['base_inside']:.3f} bits/char inside literals, {c['base_outside']:.3f} outside.",
        "",
        "| zeroed | rise inside literals | rise outside | random cells: rise inside (mean, max) "
        "| ratio to random | goal: ratio >= 3, outside < inside |",
        "|---|---|---|---|---|---|",
    ]
    for k in (1, 3):
        e = c[k]
        ok = e["ratio"] >= 3 and e["outside"] < e["inside"]
        lines.append(
            f"| best {k}: {c.get('layer', '')} {e['cells']} | {e['inside']:+.3f} | "
            f"{e['outside']:+.3f} | "
            f"{e['random_inside'].mean():+.3f}, {e['random_inside'].max():+.3f} | "
            f"{e['ratio']:.1f} | {'met' if ok else 'NOT met'} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--train-chars", type=int, default=100_000)
    p.add_argument("--test-chars", type=int, default=120_000)
    p.add_argument("--per-doc", type=int, default=12_000, help="characters kept per file")
    p.add_argument("--windows", type=int, default=4, help="held-out windows ablated")
    p.add_argument("--length", type=int, default=1000, help="characters per window")
    p.add_argument("--draws", type=int, default=20, help="random draws per cell count")
    p.add_argument("--causal-by", choices=("auc", "ablation"), default="ablation",
                   help="how the ablated cells are chosen on training files")  # fmt: skip
    a = p.parse_args()
    causal_by = a.__dict__.pop("causal_by")
    for name, v in vars(a).items():
        if not 1 <= v <= 1_000_000:
            p.error(f"--{name.replace('_', '-')} must be between 1 and 1000000, got {v}")
    start = time.perf_counter()
    result = run(a.train_chars, a.test_chars, a.per_doc, a.windows, a.length, a.draws,
                 causal_by=causal_by)  # fmt: skip
    print(table(result))
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
