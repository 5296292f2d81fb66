"""Report sections for analyses: selected cells and their corpus matches, perturbations.

Both return a :class:`~workbench.reports._sections.Section` that :func:`workbench.report`
accepts as an item next to traces and explanations::

    workbench.report([trace, matches_section(m, store, name=q),
                      perturbation_section(plain, edited, name=q)], "out.html")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench import names as _names
from workbench import viz
from workbench.reports._sections import Section, _fmt

#: Most unit rows of the difference heatmap (the units that moved most).
MAX_DIFF_UNITS = 32
#: Longest token text shown on one side of a matched span.
_MAX_CONTEXT_CHARS = 80


def _visible(tokens: Sequence[str]) -> str:
    """Tokens joined for a table cell, whitespace made visible (escaped by the template)."""
    shown = {" ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d"}
    return "".join(shown.get(str(t), str(t)) for t in tokens)


def matches_section(
    matches: Any,
    store: Any = None,
    *,
    name: str | None = None,
    threshold: float | None = None,
    pad: tuple[int, int] | None = None,
    context: int = 10,
    max_rows: int = 25,
    title: str = "Selected cells and their matches",
) -> Section:
    """The selected cells, their ranked corpus matches in context, and the span lengths.

    Parameters
    ----------
    matches : workbench.store.Matches
        From :meth:`StateStore.match` (or :func:`workbench.store.match`).
    store : StateStore, optional
        Gives the tokens around each span, document ids and the meta tracks averaged over
        the matched steps; without it the table shows global positions only.
    name : str, optional
        The recorded quantity searched (shown in the text).
    threshold, pad : optional
        The search settings (shown in the text).
    context : int
        Tokens shown on each side of a span (never across its document's edges).
    max_rows : int
        Matches listed.
    title : str
        Section title.

    Returns
    -------
    Section
        Text (cells, settings, candidates, meta shares), a table with one row per match
        (context cells are ``{"before", "span", "after"}`` and render with the span
        highlighted), and the length histogram of the candidates.
    """
    if not hasattr(matches, "spans") or not hasattr(matches, "intersection"):
        raise TypeError(
            "matches_section needs a Matches result (StateStore.match), got "
            f"{type(matches).__name__}"
        )
    cells = [int(c) for c in matches.cells]
    settings = []
    if name:
        settings.append(f"quantity {name}")
    if threshold is not None:
        settings.append(f"threshold {float(threshold):.4g}")
    if pad is not None:
        settings.append(f"pad before / after {int(pad[0])} / {int(pad[1])}")
    text = [
        f"{len(cells)} selected cell{'s' if len(cells) != 1 else ''}: "
        f"{', '.join(map(str, cells))}" + (f" ({'; '.join(settings)})." if settings else "."),
        f"{matches.n_candidates} candidate spans (co-activation level {matches.level}); the "
        f"{min(len(matches), max_rows)} best are listed: most selected cells showing the "
        "off-on-off pattern, then fewest other cells showing it, then longest (LSTMVis).",
    ]
    if store is not None and len(matches) and store.meta_tracks:
        shares = store.match_meta(matches)
        parts = [f"{k} {v['mean']:.3g}" for k, v in shares.items() if np.isfinite(v["mean"])]
        if parts:
            text.append("Mean of each meta track over the matched steps: " + ", ".join(parts) + ".")
    rows = []
    bounds = store.boundaries if store is not None else None
    for i, (s, e) in enumerate(matches.spans()[:max_rows]):
        d = int(matches.document[i])
        doc, pos, ctx = str(d), str(s), {"before": "", "span": "", "after": ""}
        if store is not None:
            lo, hi = int(bounds[d]), int(bounds[d + 1])
            a, b = max(lo, s - int(context)), min(hi, e + int(context))
            toks = store.tokens(a, b)
            doc, pos = str(store.doc_ids[d]), str(s - lo)
            ctx = {
                "before": _visible(toks[: s - a])[-_MAX_CONTEXT_CHARS:],
                "span": _visible(toks[s - a : e - a]),
                "after": _visible(toks[e - a :])[:_MAX_CONTEXT_CHARS],
            }
        rows.append(
            [str(i + 1), doc, pos, str(e - s), str(int(matches.intersection[i])),
             str(int(matches.union[i])), _fmt(float(matches.jaccard[i])), ctx]
        )  # fmt: skip
    sec = Section(title, text)
    sec.table = {
        "columns": ["#", "document", "start", "length", "cells shared", "union", "jaccard",
                    "context"],
        "rows": rows,
    }  # fmt: skip
    if len(matches):
        sec.figures.append(
            viz.length_histogram(matches.fuzzy_histogram, matches.strict_histogram,
                                 title="Candidate span lengths")
        )  # fmt: skip
    return sec


def _output(trace: Any, index: int) -> np.ndarray:
    out = trace.output if hasattr(trace, "output") else trace
    while isinstance(out, tuple | list):
        out = out[0]
    if out is None:
        raise ValueError("the trace holds no model output; record it with workbench.record")
    arr = out.detach().cpu().double().numpy() if hasattr(out, "detach") else np.asarray(out, float)
    return arr[index]


def prediction_rows(
    before: np.ndarray,
    after: np.ndarray,
    labels: Sequence[str] | None = None,
    *,
    probabilities: bool | None = None,
    top: int = 5,
) -> tuple[list[str], np.ndarray, np.ndarray, str]:
    """Outputs of one sequence before and after, as comparable values.

    ``[classes]`` logits become softmax probabilities, ``[time, vocab]`` language-model
    logits the probabilities at the last step of the ``top`` outputs the original ranks
    highest; a single output (a forecast) stays as it is.

    Returns
    -------
    (labels, before, after, value name)
    """
    b, a = np.asarray(before, float), np.asarray(after, float)
    if b.ndim == 2:  # [time, vocab]: the next-token distribution at the last step
        b, a = b[-1], a[-1]
    b, a = b.reshape(-1), a.reshape(-1)
    if b.shape != a.shape:
        raise ValueError(f"original output {b.shape} and perturbed output {a.shape} differ")
    if probabilities is None:
        probabilities = b.size > 1
    value = "output"
    if probabilities:
        b, a = _softmax(b), _softmax(a)
        value = "probability"
    names = [str(x) for x in labels] if labels is not None else [str(i) for i in range(b.size)]
    if len(names) < b.size:
        raise ValueError(f"{len(names)} labels for {b.size} outputs: pass one label per output")
    keep = np.arange(b.size)
    if b.size > max(top, 10):
        keep = np.argsort(-b, kind="stable")[:top]
    return [names[i] for i in keep], b[keep], a[keep], value


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def perturbation_section(
    original: Any,
    perturbed: Any,
    *,
    name: str | None = None,
    labels: Sequence[str] | None = None,
    index: int = 0,
    probabilities: bool | None = None,
    description: str | None = None,
    top_units: int = 10,
    title: str = "Perturbation results",
) -> Section:
    """Original vs perturbed prediction and the per-unit change of one recorded quantity.

    Parameters
    ----------
    original, perturbed : Trace
        The plain run (:func:`workbench.record`) and the perturbed one (an edited input
        recorded the same way, or :func:`workbench.intervene` with edits on cells).
    name : str, optional
        Recorded quantity compared (default: the last ``*.hidden`` both traces hold).
    labels : sequence of str, optional
        ``[outputs]`` names (class labels, vocabulary); default the output indices.
    index : int
        Sequence of the batch.
    probabilities : bool, optional
        Softmax the outputs (default: when there is more than one output).
    description : str, optional
        What was perturbed (shown first).
    top_units : int
        Units listed as the ones that moved most.
    title : str
        Section title.

    Returns
    -------
    Section
        Text, a prediction table (output, original, perturbed, change), the output bars,
        and the change heatmap of the units that moved most (perturbed minus original over
        the steps both runs have; NaN past the shorter one).
    """
    for t, what in ((original, "original"), (perturbed, "perturbed")):
        if not (hasattr(t, "names") and hasattr(t, "lengths_for")):
            raise TypeError(f"{what} must be a Trace (workbench.record / workbench.intervene)")
    common = [n for n in original.names if n in perturbed.names and not _names.is_attention(n)]
    if name is None:
        hidden = [n for n in common if _names.quantity(n) == "hidden"]
        if not (hidden or common):
            raise ValueError("the two traces share no recorded state to compare")
        name = (hidden or common)[-1]
    if name not in common:
        raise ValueError(f"{name!r} is not recorded in both traces; pick one of {common}")
    n0 = int(original.lengths_for(name)[index])
    n1 = int(perturbed.lengths_for(name)[index])
    s0 = original[name][index, :n0].detach().cpu().double().numpy()
    s1 = perturbed[name][index, :n1].detach().cpu().double().numpy()
    diff = np.full_like(s0, np.nan)
    n = min(n0, n1)
    diff[:n] = s1[:n] - s0[:n]
    names, before, after, value = prediction_rows(
        _output(original, index), _output(perturbed, index), labels, probabilities=probabilities
    )
    tokens = list(original.tokens[index])[:n0] if original.tokens is not None else None
    peak = np.nanmax(np.abs(diff), axis=0) if n else np.zeros(s0.shape[1])
    order = np.argsort(-np.nan_to_num(peak, nan=-1.0), kind="stable")
    moved = [int(u) for u in order[:top_units] if peak[u] > 0]
    text = [description] if description else []
    text.append(
        f"{name}: largest change {float(peak.max()) if peak.size else 0.0:.4g}; units that "
        "moved most (max |change|): "
        + (", ".join(f"{u} ({peak[u]:.3g})" for u in moved) if moved else "none")
        + "."
    )
    if n0 != n1:
        text.append(
            f"The runs have {n0} and {n1} steps; the change is shown position by position over "
            f"the first {n} (blank after)."
        )
    sec = Section(title, text)
    sec.table = {
        "columns": ["output", f"original {value}", f"perturbed {value}", "change"],
        "rows": [
            [lab, _fmt(float(b)), _fmt(float(a)), f"{float(a - b):+.4g}"]
            for lab, b, a in zip(names, before, after, strict=True)
        ],
    }
    sec.figures.append(viz.output_change(names, before, after, value=value, title="Prediction"))
    rows = [int(u) for u in order[: min(MAX_DIFF_UNITS, len(order))]]
    sec.figures.append(
        viz.difference_heatmap(diff, tokens, units=rows, name=name.rsplit(".", 1)[-1],
                               title=f"Change of {name} (perturbed - original), "
                               f"{len(rows)} units that moved most")
    )  # fmt: skip
    return sec
