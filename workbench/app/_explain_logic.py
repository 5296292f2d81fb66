"""Computation behind the Explain page: parse an input, predict, explain, check, compare.

Pure functions of a :class:`~workbench.models.checkpoint.Bundle` and plain values, so tests
call them without a browser and the page only arranges their results. Mistakes a user can
make (empty text, only unknown tokens, too long, a bad series value) raise
:class:`InputError` with a message the page shows as it is.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

#: Longest input the app explains or perturbs (tokens, characters or series steps).
MAX_STEPS = 300
#: Cheap methods run by default; the others are opt-in.
DEFAULT_METHODS = ("saliency", "integrated_gradients", "lrp", "occlusion")
#: Settings the app runs each method with (small sample counts keep callbacks responsive).
APP_SETTINGS: dict[str, dict] = {
    "integrated_gradients": {"n_steps": 32},
    "shap": {"max_evals": 200},
    "lime": {"n_samples": 200},
}
#: Methods too slow for the default selection.
SLOW_METHODS = ("shap", "lime")
#: Relative completeness delta of integrated gradients above which the page warns.
IG_DELTA_WARN = 0.05
#: Integration steps of integrated gradients a user may ask for.
IG_STEPS_RANGE = (4, 512)


class InputError(ValueError):
    """An input the user typed that the model cannot take; the message says the fix."""


@dataclass
class Prepared:
    """One input ready for the model.

    Attributes
    ----------
    args : tuple
        Positional forward arguments: ids ``[1, time]`` or scaled values ``[1, time, 1]``.
    kwargs : dict
        Keyword forward arguments (``lengths`` for classifiers).
    tokens : list of str
        ``[time]`` display tokens (series values as typed).
    values : np.ndarray or None
        ``[time]`` raw series values (forecasters only).
    shift : float
        What the forecaster's scaled output is relative to (the last scaled value for
        ``relative`` models, else 0).
    unknown : int
        How many tokens the vocabulary does not know (mapped to UNK).
    """

    args: tuple
    kwargs: dict
    tokens: list[str]
    values: np.ndarray | None = None
    shift: float = 0.0
    unknown: int = 0

    @property
    def inputs(self) -> torch.Tensor:
        """The explained input tensor (``args[0]``)."""
        return self.args[0]

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class MethodResult:
    """What one method produced: its explanation and checks, or the error it raised."""

    method: str
    explanation: Any = None
    error: str | None = None
    seconds: float = 0.0
    curve: dict | None = None
    curve_error: str | None = None
    checks: dict = field(default_factory=dict)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the method ran and produced an explanation."""
        return self.error is None and self.skipped is None


# ------------------------------------------------------------------------------- inputs
def joiner(bundle) -> str:
    """How tokens of this model are joined back into text (``""``, ``" "`` or ``", "``)."""
    if bundle.tokenizer is None:
        return ", "
    return "" if bundle.tokenizer.level == "char" else " "


def parse_series(text: str) -> np.ndarray:
    """Comma-, semicolon- or whitespace-separated numbers -> ``[time]`` float array.

    Raises
    ------
    InputError
        For an empty series or a value that is not a finite number.
    """
    parts = [p for p in re.split(r"[,;\s]+", text or "") if p]
    if not parts:
        raise InputError("the series is empty: type numbers separated by commas")
    values = []
    for i, p in enumerate(parts):
        try:
            v = float(p)
        except ValueError:
            raise InputError(
                f"value {i} of the series, {p[:20]!r}, is not a number; type numbers separated "
                "by commas, e.g. 12.5, 30, 41.2"
            ) from None
        if not math.isfinite(v):
            raise InputError(f"value {i} of the series is {p!r}; use finite numbers")
        values.append(v)
    return np.asarray(values, dtype=np.float64)


def prepare(bundle, text: str, max_steps: int = MAX_STEPS) -> Prepared:
    """Parse ``text`` for ``bundle``'s model.

    Parameters
    ----------
    bundle : Bundle
        A loaded checkpoint.
    text : str
        Text for token models; numbers separated by commas for forecasters (in the series'
        own units, e.g. sunspot numbers or ppm).
    max_steps : int
        Longest accepted input.

    Returns
    -------
    Prepared

    Raises
    ------
    InputError
        Empty, too long, only unknown tokens, or a bad series value.
    """
    text = text if isinstance(text, str) else ""
    if bundle.tokenizer is None:
        values = parse_series(text)
        if len(values) > max_steps:
            raise InputError(
                f"the series has {len(values)} values; the app's limit is {max_steps}. "
                "Shorten it (the model was trained on windows of "
                f"{_window(bundle)} values)"
            )
        sc = bundle.config.get("scaling") or {}
        mean, std = float(sc.get("mean", 0.0)), float(sc.get("std", 1.0)) or 1.0
        z = (values - mean) / std
        shift = float(z[-1]) if sc.get("relative") else 0.0
        x = torch.tensor(z - shift, dtype=torch.float32)[None, :, None]
        return Prepared((x,), {}, [f"{v:g}" for v in values], values=values, shift=shift)
    if not text or (bundle.tokenizer.level != "char" and not text.strip()):
        raise InputError("the text is empty: type some text or pick an example")
    tokens = bundle.tokenize(text)
    if not tokens:
        raise InputError("the text holds no token the model reads: type some text")
    if len(tokens) > max_steps:
        raise InputError(
            f"the text has {len(tokens)} tokens; the app's limit is {max_steps} (each method "
            "runs the model many times). Shorten it"
        )
    ids = bundle.tokenizer.encode(tokens)
    unk = bundle.tokenizer.unk_id
    unknown = sum(1 for i in ids if i == unk)
    if unknown == len(ids):
        raise InputError(
            f"none of the {len(ids)} token(s) is in the model's vocabulary (all map to <unk>); "
            "type words the model knows, e.g. one of the examples"
        )
    x = torch.tensor([ids], dtype=torch.long)
    lengths = torch.tensor([len(ids)])
    kwargs = {"lengths": lengths} if bundle.kind == "classifier" else {}
    return Prepared((x,), kwargs, list(tokens), unknown=unknown)


def _window(bundle) -> int:
    return int((bundle.config.get("scaling") or {}).get("window", 32))


# ------------------------------------------------------------------------------ examples
@functools.lru_cache(maxsize=16)
def examples(corpus_name: str | None, window: int = 32, n: int = 5) -> tuple[str, ...]:
    """A few real inputs from the test split of a shipped corpus, as the page's text.

    Parameters
    ----------
    corpus_name : str or None
        ``python``, ``sentiment``, ``parens``, ``sunspots`` or ``co2``.
    window : int
        Series window length (forecasters).
    n : int
        How many examples.

    Returns
    -------
    tuple of str
        Empty for an unknown corpus.
    """
    from workbench.data import CORPORA, corpus

    if corpus_name not in CORPORA:
        return ()
    if corpus_name in ("sunspots", "co2"):
        from workbench.data import series

        s = getattr(series, corpus_name)()
        test = s.values[s.cuts[1] :]
        stride = max(1, (len(test) - window) // max(1, n))
        starts = list(range(0, max(1, len(test) - window + 1), stride))[:n]
        return tuple(", ".join(f"{v:.6g}" for v in test[a : a + window]) for a in starts)
    if corpus_name == "python":
        docs = corpus("python", "test", max_tokens=40_000)
        found = [snip for d in docs for snip in _snippets("".join(d.tokens))]
        out = found[:: max(1, len(found) // n)][:n]
        return tuple(out)
    docs = corpus(corpus_name, "test", max_tokens=None if corpus_name == "sentiment" else 2000)
    glue = "" if corpus_name == "parens" else " "
    picked = [glue.join(d.tokens) for d in docs if 4 <= len(d.tokens) <= 60]
    return tuple(picked[:n])


def _snippets(text: str, low: int = 50, high: int = 140):
    """Runs of whole, non-blank code lines (no comment) of ``low..high`` characters."""
    lines, size = [], 0
    for line in text.split("\n"):
        if not line.strip() or line.lstrip().startswith(("#", '"', "'")):
            lines, size = [], 0
            continue
        lines.append(line)
        size += len(line) + 1
        if size > high:
            lines, size = [], 0
        elif size >= low:
            yield "\n".join(lines)
            lines, size = [], 0


def examples_for(bundle, corpus_name: str | None, n: int = 5) -> tuple[str, ...]:
    """:func:`examples` for a model (its series window); never raises."""
    try:
        return examples(corpus_name, _window(bundle), n)
    except Exception:  # noqa: BLE001 - examples are a convenience; the page still works
        return ()


# ---------------------------------------------------------------------------- prediction
@torch.no_grad()
def predict(bundle, prepared: Prepared, top: int = 5) -> dict:
    """The model's prediction on one prepared input.

    Returns
    -------
    dict
        ``kind``; ``summary`` (one line of text); ``labels`` and ``probs`` ``[classes]``
        for classifiers, or the ``top`` next tokens for language models (at the last step);
        ``forecast`` in the series' units for forecasters; ``raw`` ``[outputs]`` scores.
    """
    out = bundle.model(*prepared.args, **prepared.kwargs)
    while isinstance(out, (tuple, list)):
        out = out[0]
    out = out.detach().double()
    if bundle.kind == "forecaster":
        sc = bundle.config.get("scaling") or {}
        mean, std = float(sc.get("mean", 0.0)), float(sc.get("std", 1.0)) or 1.0
        scaled = float(out.reshape(-1)[0])
        forecast = (scaled + prepared.shift) * std + mean
        return {
            "kind": "forecaster",
            "raw": [scaled],
            "forecast": forecast,
            "summary": f"next value forecast: {forecast:.4g}",
        }
    logits = out[0, -1] if out.dim() == 3 else out[0]
    probs = torch.softmax(logits, -1)
    if bundle.kind == "classifier":
        labels = bundle.labels or [str(i) for i in range(len(probs))]
        k = int(probs.argmax())
        return {
            "kind": "classifier",
            "raw": logits.tolist(),
            "labels": labels,
            "probs": probs.tolist(),
            "predicted": k,
            "summary": f"prediction: {labels[k]} (p = {float(probs[k]):.3f})",
        }
    p, idx = probs.topk(min(top, len(probs)))
    names = bundle.tokenizer.decode(idx.tolist())
    shown = ", ".join(f"{tok!r} {float(q):.2f}" for tok, q in zip(names, p, strict=True))
    return {
        "kind": "charlm",
        "raw": logits.tolist(),
        "labels": list(names),
        "probs": p.tolist(),
        "predicted": int(idx[0]),
        "summary": f"next token: {shown}",
    }


# ------------------------------------------------------------------------------- targets
def target_from(spec: Any, selection: dict | None = None):
    """The ``target`` for :func:`workbench.explain` from the page's target choice.

    Parameters
    ----------
    spec : str or None
        ``"prediction"`` (or None), ``"class:K"`` or ``"cells"``.
    selection : dict, optional
        ``{"name", "cells", "step"}`` for ``"cells"``.

    Returns
    -------
    None, int or workbench.Target

    Raises
    ------
    InputError
        ``"cells"`` without a usable selection.
    """
    from workbench.explainers import Target

    if spec in (None, "", "prediction"):
        return None
    if isinstance(spec, str) and spec.startswith("class:"):
        try:
            return int(spec.split(":", 1)[1])
        except ValueError:
            return None
    if spec == "cells":
        sel = selection or {}
        cells = [int(c) for c in sel.get("cells") or []]
        if not sel.get("name") or not cells:
            raise InputError(
                "no cells are selected: brush cells on the States page (or pass name= and "
                "cells= in the URL), then press 'Explain these cells'"
            )
        return Target(str(sel["name"]), tuple(cells), int(sel.get("step", -1)))
    return None


# ------------------------------------------------------------------------------- methods
def unsupported(bundle, target_spec: Any, selection: dict | None) -> dict[str, str]:
    """Methods that cannot explain the chosen target, each with the reason (one line).

    Every method explains outputs; of unit targets (``"cells"``), LRP explains the hidden
    and cell units of ``nn.LSTM`` / ``nn.GRU`` layers but not gates (they get no relevance
    under its rules).

    Returns
    -------
    dict of str to str
        Method name -> why it cannot; empty when all can.
    """
    sel = selection or {}
    if target_spec != "cells" or not sel.get("name"):
        return {}
    from workbench.explainers.lrp import can_explain

    reason = can_explain(bundle.model, str(sel["name"]))
    return {"lrp": reason} if reason else {}


def ig_steps(value: Any) -> int:
    """The integration steps a user asked for, checked against :data:`IG_STEPS_RANGE`.

    Raises
    ------
    InputError
        For a value that is not a whole number in the range.
    """
    lo, hi = IG_STEPS_RANGE
    if value in (None, ""):
        return APP_SETTINGS["integrated_gradients"]["n_steps"]
    try:
        n = float(value)
    except (TypeError, ValueError):
        n = float("nan")
    if not (math.isfinite(n) and n == int(n) and lo <= n <= hi):
        raise InputError(f"IG steps must be a whole number from {lo} to {hi}, got {value!r}")
    return int(n)


def more_steps(n: int) -> int:
    """The step count the page offers after a large completeness delta (4x, capped)."""
    return min(IG_STEPS_RANGE[1], max(4 * int(n), 64))


def run_methods(
    bundle,
    prepared: Prepared,
    methods,
    target=None,
    settings: dict | None = None,
    skip: dict | None = None,
) -> dict[str, MethodResult]:
    """Explain ``prepared`` with every method; a failing method keeps its error, not raise.

    Parameters
    ----------
    bundle : Bundle
    prepared : Prepared
    methods : sequence of str
        Registry names (:data:`workbench.explainers.METHODS`).
    target : None, int or Target
    settings : dict, optional
        Method -> settings, overriding :data:`APP_SETTINGS`.
    skip : dict, optional
        Method -> reason it is not run (from :func:`unsupported`).

    Returns
    -------
    dict of str to MethodResult
        In the order of ``methods``.
    """
    import time

    from workbench.explainers import explain

    settings = {**APP_SETTINGS, **(settings or {})}
    skip = skip or {}
    results = {}
    for m in methods:
        if m in skip:
            results[m] = MethodResult(m, skipped=skip[m])
            continue
        start = time.perf_counter()
        try:
            e = explain(
                bundle.model,
                prepared.inputs,
                target,
                m,
                tokens=[prepared.tokens],
                **settings.get(m, {}),
                **prepared.kwargs,
            )
            results[m] = MethodResult(m, e, seconds=time.perf_counter() - start)
            results[m].checks = checks(e)
        except Exception as err:  # noqa: BLE001 - shown in the method's own panel
            results[m] = MethodResult(
                m, error=f"{type(err).__name__}: {err}", seconds=time.perf_counter() - start
            )
    return results


def checks(explanation) -> dict:
    """Completeness numbers of one explanation, for display.

    Returns
    -------
    dict
        ``output`` (the explained score), ``sum`` of the relevance; for integrated
        gradients ``delta`` and ``relative_delta`` (``|delta| / |F(x) - F(baseline)|``);
        for LRP ``delta`` (conservation: output minus relevance minus initial-state
        relevance) and ``initial_state_relevance``.
    """
    from workbench.explainers.metrics import completeness

    e = explanation
    out = {"output": float(e.output[0]), "sum": float(e.attributions[0].double().sum())}
    if e.delta is not None:
        out["delta"] = float(e.delta[0])
        try:
            out["relative_delta"] = float(completeness(e)[0])
        except Exception:  # noqa: BLE001 - a display nicety
            pass
    if "baseline_output" in e.extras:
        out["baseline_output"] = float(torch.as_tensor(e.extras["baseline_output"]).flatten()[0])
    isr = e.extras.get("initial_state_relevance")
    if isr is not None:
        out["initial_state_relevance"] = float(torch.as_tensor(isr).double().flatten()[0])
    return out


def add_curves(bundle, prepared: Prepared, results: dict, points: int = 11) -> None:
    """Fill each successful result's deletion ``curve`` (or ``curve_error``) in place."""
    from workbench.explainers.metrics import perturbation_curve

    for r in results.values():
        if not r.ok:
            continue
        try:
            r.curve = perturbation_curve(
                bundle.model,
                prepared.inputs,
                r.explanation,
                mode="deletion",
                points=min(points, len(prepared) + 1),
                **prepared.kwargs,
            )
        except Exception as err:  # noqa: BLE001 - shown beside the method
            r.curve_error = f"{type(err).__name__}: {err}"


def agreement(results: dict) -> tuple[list[str], np.ndarray]:
    """Pairwise Spearman rank correlation of the successful methods.

    Returns
    -------
    methods : list of str
    matrix : np.ndarray
        ``[methods, methods]``; NaN where undefined (a constant attribution row).
    """
    from workbench.explainers.metrics import rank_agreement

    ok = [r for r in results.values() if r.ok]
    names = [r.method for r in ok]
    m = np.eye(len(ok))
    for i in range(len(ok)):
        for j in range(i + 1, len(ok)):
            rho = float(rank_agreement(ok[i].explanation, ok[j].explanation)["spearman"][0])
            m[i, j] = m[j, i] = rho
    return names, m


def explain_all(
    bundle,
    text: str,
    methods,
    target_spec=None,
    selection=None,
    curves: bool = True,
    settings: dict | None = None,
) -> dict:
    """Everything the Explain page shows for one input, as plain results.

    Methods that cannot explain the target (:func:`unsupported`) are not run; their result
    says why (``skipped``). ``settings`` (method -> settings) override :data:`APP_SETTINGS`.

    Returns
    -------
    dict
        ``prepared``, ``prediction``, ``target`` (what was explained), ``results``
        (method -> :class:`MethodResult`), ``agreement`` ``(methods, matrix)``.

    Raises
    ------
    InputError
        For a bad input or target choice.
    """
    prepared = prepare(bundle, text)
    target = target_from(target_spec, selection)
    prediction = predict(bundle, prepared)
    skip = unsupported(bundle, target_spec, selection)
    results = run_methods(bundle, prepared, list(methods), target, settings, skip)
    if curves:
        add_curves(bundle, prepared, results)
    return {
        "prepared": prepared,
        "prediction": prediction,
        "target": target,
        "results": results,
        "agreement": agreement(results),
    }


# ------------------------------------------------------------------------------ selection
def selection_input(store, selection: dict, context: int = 40, max_steps: int = MAX_STEPS):
    """The corpus window of a States-page selection as input text, and the target step.

    The window is the brushed range ``[start, end)`` plus up to ``context`` tokens before it,
    never crossing the start of its document, cut to ``max_steps``; the explained step is
    the last brushed token.

    Returns
    -------
    tokens : list of str
    step : int
        Position of the last brushed token inside ``tokens``.
    """
    start, end = int(selection.get("start", 0)), int(selection.get("end", 0))
    n = store.n_tokens
    if not 0 <= start < end <= n:
        raise InputError(f"the selected range [{start}, {end}) is outside the store ({n} tokens)")
    bounds = store.boundaries
    doc_start = int(bounds[np.searchsorted(bounds, start, side="right") - 1])
    lo = max(doc_start, start - context, end - max_steps)
    return store.tokens(lo, end), end - 1 - lo
