"""Computation behind the Perturb page: original vs edited input, and cell interventions.

Two causal tools, pure functions of a :class:`~workbench.models.checkpoint.Bundle`:

- :func:`compare` records the model on an input and on an edited copy (tokens edited,
  deleted, inserted, or series values changed) and aligns the two state trajectories.
  Inputs of equal length are compared position by position; otherwise the tokens that
  :class:`difflib.SequenceMatcher` matches are paired and the rest (insertions, deletions)
  stay blank, which keeps the positions after an insertion comparable.
- :func:`ablate` reruns the input with selected cells zeroed, clamped, set to a value or to
  their corpus mean through :func:`workbench.intervene`, and reports the output change.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import torch

from workbench import names as _names
from workbench.app._explain_logic import InputError, Prepared, joiner, predict, prepare

#: Ways to intervene on the selected cells.
ABLATIONS = ("zero", "mean", "clamp", "set", "scale")


@dataclass
class Comparison:
    """Original vs perturbed input: predictions and state change.

    Attributes
    ----------
    name : str
        The recorded quantity compared.
    original, perturbed : Prepared
    prediction, perturbed_prediction : dict
        From :func:`workbench.app._explain_logic.predict`.
    states, perturbed_states : np.ndarray
        ``[time, units]`` and ``[time', units]`` values of ``name``.
    pairs : list of (int, int)
        Aligned positions (original, perturbed).
    diff : np.ndarray
        ``[time, units]`` perturbed minus original on the original's time axis; NaN at
        original positions without a partner (deleted or replaced tokens when lengths
        differ).
    alignment : str
        ``"position"`` or ``"matched tokens"``.
    output_change : np.ndarray
        ``[outputs]`` perturbed minus original (probabilities of classifiers and of the
        original's top next tokens, the forecast in series units).
    """

    name: str
    original: Prepared
    perturbed: Prepared
    prediction: dict
    perturbed_prediction: dict
    states: np.ndarray
    perturbed_states: np.ndarray
    pairs: list
    diff: np.ndarray
    alignment: str
    output_change: np.ndarray

    def moved(self, top: int = 10) -> list[tuple[int, float, int]]:
        """The units that moved most: ``(unit, max |change|, step of that max)``, largest first."""
        return moved_units(self.diff, top)


def moved_units(diff: np.ndarray, top: int = 10) -> list[tuple[int, float, int]]:
    """Rank units by their largest absolute change over aligned steps.

    Parameters
    ----------
    diff : np.ndarray
        ``[time, units]`` change, NaN where undefined.
    top : int
        How many units.

    Returns
    -------
    list of (unit, max |change|, step)
    """
    a = np.abs(np.nan_to_num(np.asarray(diff, dtype=np.float64), nan=0.0))
    if a.size == 0:
        return []
    peak = a.max(0)
    order = np.argsort(-peak, kind="stable")[:top]
    return [(int(u), float(peak[u]), int(a[:, u].argmax())) for u in order]


def align(a: list[str], b: list[str]) -> tuple[list[tuple[int, int]], str]:
    """Pairs of positions of ``a`` and ``b`` that correspond, and how they were found.

    Equal lengths pair every position (an edit in place); otherwise only tokens matched by
    :class:`difflib.SequenceMatcher` are paired.
    """
    if len(a) == len(b):
        return [(i, i) for i in range(len(a))], "position"
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    pairs = [(blk.a + k, blk.b + k) for blk in sm.get_matching_blocks() for k in range(blk.size)]
    return pairs, "matched tokens"


def default_name(names: list[str]) -> str:
    """The quantity shown by default: the last layer's forward cell state, else hidden."""
    for q in ("cell", "hidden"):
        parsed = {n: _names.recurrent(n) for n in names}
        found = [n for n, p in parsed.items() if p and (p.direction, p.quantity) == ("fwd", q)]
        if found:
            return found[-1]
    return names[-1]


def _record(bundle, prepared: Prepared):
    import workbench

    with torch.no_grad():
        return workbench.record(bundle.model, *prepared.args, **prepared.kwargs)


def _values(trace, name: str) -> np.ndarray:
    if name not in trace.names:
        raise InputError(f"{name!r} is not recorded for this model; choose one of the list")
    return trace[name][0].detach().double().cpu().numpy()


def _output_change(bundle, before: dict, after: dict) -> np.ndarray:
    if bundle.kind == "forecaster":
        return np.array([after["forecast"] - before["forecast"]])
    if bundle.kind == "classifier":
        return np.asarray(after["probs"]) - np.asarray(before["probs"])
    # language model: probabilities of the original's top next tokens
    logits = torch.tensor(after["raw"])
    ids = bundle.tokenizer.encode(before["labels"])
    p = torch.softmax(logits, -1)[ids].numpy()
    return p - np.asarray(before["probs"])


def compare(bundle, text: str, perturbed_text: str, name: str | None = None) -> Comparison:
    """Record the model on ``text`` and ``perturbed_text`` and compare them.

    Parameters
    ----------
    bundle : Bundle
    text, perturbed_text : str
        Original and edited input (series: numbers separated by commas).
    name : str, optional
        Recorded quantity to compare (default :func:`default_name`).

    Returns
    -------
    Comparison

    Raises
    ------
    InputError
        For a bad input, or an unknown ``name``.
    """
    try:
        original = prepare(bundle, text)
    except InputError as err:
        raise InputError(f"original input: {err}") from None
    try:
        perturbed = prepare(bundle, perturbed_text)
    except InputError as err:
        raise InputError(f"perturbed input: {err}") from None
    t0, t1 = _record(bundle, original), _record(bundle, perturbed)
    name = name or default_name(t0.names)
    v0, v1 = _values(t0, name), _values(t1, name)
    pairs, how = align(original.tokens, perturbed.tokens)
    diff = np.full_like(v0, np.nan)
    if pairs:
        i, j = np.array(pairs).T
        diff[i] = v1[j] - v0[i]
    before, after = predict(bundle, original), predict(bundle, perturbed)
    return Comparison(
        name, original, perturbed, before, after, v0, v1, pairs, diff, how,
        _output_change(bundle, before, after),
    )  # fmt: skip


# ------------------------------------------------------------------------------ token edits
def edit_tokens(bundle, text: str, position: int, op: str, replacement: str = "") -> str:
    """Edit one token of ``text`` and join the tokens back.

    Parameters
    ----------
    bundle : Bundle
    text : str
    position : int
        Token (or series step) index; negative counts from the end.
    op : {"replace", "delete", "insert"}
        Replace the token with ``replacement``, delete it, or insert ``replacement`` before it.
    replacement : str
        The new token (or series value).

    Returns
    -------
    str
        The edited text (word tokens joined by spaces, characters directly, values by
        ``", "``).
    """
    from workbench.app._explain_logic import parse_series

    if bundle.tokenizer is None:
        tokens = [f"{v:g}" for v in parse_series(text)]
    else:
        tokens = bundle.tokenize(text or "")
    if not tokens:
        raise InputError("there is no token to edit: type some text first")
    try:
        position = int(position)
    except (TypeError, ValueError):
        raise InputError("the position must be a whole number") from None
    n = len(tokens)
    if not -n <= position < n + (op == "insert"):
        raise InputError(f"position {position} is outside the input's {n} tokens (0..{n - 1})")
    position %= n + (op == "insert")
    if op in ("replace", "insert"):
        if replacement is None or replacement == "":
            raise InputError(f"type the new token to {op}")
        if bundle.tokenizer is None:
            replacement = f"{parse_series(replacement)[0]:g}"
    if op == "replace":
        tokens[position] = replacement
    elif op == "delete":
        del tokens[position]
    elif op == "insert":
        tokens.insert(position, replacement)
    else:
        raise InputError(f"unknown edit {op!r}; use replace, delete or insert")
    return joiner(bundle).join(tokens)


# ----------------------------------------------------------------------------- ablation
@dataclass
class Ablation:
    """The input run plainly and with cells edited.

    Attributes
    ----------
    name : str
    cells : list of int
    mode : str
    values : list of float or None
        The values the cells were set to (``mean`` / ``set``).
    mean_source : str or None
        Where the means came from.
    prediction, edited_prediction : dict
    output_change : np.ndarray
    states, edited_states : np.ndarray
        ``[time, units]`` of ``name`` without and with the edit.
    edited_output : torch.Tensor
        What the model returned under the edit (first element of tuples).
    """

    name: str
    cells: list
    mode: str
    values: list | None
    mean_source: str | None
    prediction: dict
    edited_prediction: dict
    output_change: np.ndarray
    states: np.ndarray
    edited_states: np.ndarray
    edited_output: torch.Tensor


def cell_means(store, name: str, cells, fallback: np.ndarray | None = None):
    """Per-cell means ``[cells]`` over the corpus store, or over ``fallback`` ``[time, units]``.

    Returns
    -------
    means : np.ndarray
    source : str
        ``"corpus store (N tokens)"`` or ``"this input (no store)"``.
    """
    cells = [int(c) for c in cells]
    if store is not None and name in store.names:
        arr = store.states(name)
        total = np.zeros(len(cells))
        step = 65_536
        for lo in range(0, arr.shape[0], step):
            total += arr.rows(lo, lo + step, cells).astype(np.float64).sum(0)
        return total / max(1, arr.shape[0]), f"corpus store ({arr.shape[0]:,} tokens)"
    if fallback is None:
        raise InputError(f"no store holds {name!r} to take cell means from")
    return np.asarray(fallback)[:, cells].mean(0), "this input (no corpus store built)"


def make_edit(mode: str, cells, *, values=None, low=None, high=None, factor=None, start=0,
              stop=None):  # fmt: skip
    """The :mod:`workbench.recorder.edits` function for an ablation ``mode``."""
    from workbench.recorder import edits

    cells = [int(c) for c in cells]
    if mode == "zero":
        return edits.zero(cells, start, stop)
    if mode in ("mean", "set"):
        if values is None:
            raise InputError(f"{mode} needs a value for the cells")
        return edits.set_to(cells, torch.as_tensor(values, dtype=torch.float32), start, stop)
    if mode == "clamp":
        if low is None and high is None:
            raise InputError("clamp needs a low or a high bound")
        return edits.clamp(cells, low, high, start, stop)
    if mode == "scale":
        return edits.scale(cells, 0.0 if factor is None else float(factor), start, stop)
    raise InputError(f"unknown ablation {mode!r}; use one of {', '.join(ABLATIONS)}")


def ablate(
    bundle, text: str, name: str, cells, mode: str = "zero", *, value=None, low=None,
    high=None, factor=None, start: int = 0, stop: int | None = None, store=None,
) -> Ablation:  # fmt: skip
    """Run ``text`` with ``cells`` of ``name`` edited and compare with the plain run.

    Parameters
    ----------
    bundle : Bundle
    text : str
    name : str
        An editable recurrent quantity, e.g. ``"rnn.1.fwd.cell"``.
    cells : sequence of int
    mode : {"zero", "mean", "clamp", "set", "scale"}
        ``mean`` sets the cells to their mean over ``store`` (or over this input).
    value : float, optional
        For ``set``.
    low, high : float, optional
        For ``clamp``.
    factor : float, optional
        For ``scale``.
    start, stop : int
        Steps ``[start, stop)`` edited (the recurrence continues from the edited state).
    store : StateStore, optional

    Returns
    -------
    Ablation
    """
    import workbench
    from workbench.recorder import RecordingError

    prepared = prepare(bundle, text)
    cells = sorted({int(c) for c in (cells or [])})
    if not cells:
        raise InputError("no cells chosen: select cells on the States page or type them")
    plain = _record(bundle, prepared)
    states = _values(plain, name)
    bad = [c for c in cells if not 0 <= c < states.shape[1]]
    if bad:
        raise InputError(f"cells {bad} out of range: {name} has {states.shape[1]} units")
    values, source = None, None
    if mode == "mean":
        means, source = cell_means(store, name, cells, states)
        values = means.tolist()
    elif mode == "set":
        if value is None:
            raise InputError("type the value to set the cells to")
        values = [float(value)] * len(cells)
    fn = make_edit(mode, cells, values=values, low=low, high=high, factor=factor, start=start,
                   stop=stop)  # fmt: skip
    try:
        edited = workbench.intervene(
            bundle.model, *prepared.args, edits={name: fn}, **prepared.kwargs
        )
    except RecordingError as err:
        raise InputError(str(err)) from None
    out = edited.output
    while isinstance(out, (tuple, list)):
        out = out[0]
    before = predict(bundle, prepared)
    after = _prediction_from(bundle, prepared, out)
    return Ablation(
        name, cells, mode, values, source, before, after,
        _output_change(bundle, before, after), states, _values(edited, name), out.detach(),
    )  # fmt: skip


def _prediction_from(bundle, prepared: Prepared, out: torch.Tensor) -> dict:
    """:func:`predict`'s dict for an output the model already returned."""

    class _Fixed(torch.nn.Module):
        def forward(self, *args, **kwargs):
            return out

    shim = type(bundle)(_Fixed(), bundle.kind, bundle.task, bundle.tokenizer, bundle.config)
    return predict(shim, prepared)
