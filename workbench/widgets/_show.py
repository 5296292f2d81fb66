"""``workbench.show(obj)``: the right notebook widget for a Trace, Explanation, store or match."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workbench import names as _names

#: Steps of a store shown when no ``end`` is given.
DEFAULT_STORE_STEPS = 2000


def _default_name(names: Sequence[str], name: str | None, what: str) -> str:
    names = list(names)
    if name is None:
        hidden = [n for n in names if _names.quantity(n) == "hidden"]
        quantities = [n for n in names if not _names.is_attention(n)]
        if not (hidden or quantities):
            raise ValueError(f"the {what} holds no recurrent state to show; it has {names}")
        return (hidden or quantities)[-1]
    if name not in names:
        raise ValueError(f"{name!r} is not in the {what}; pick one of {names}")
    return name


def _is_curves(obj: Any) -> bool:
    """A :class:`workbench.memory.Curve` or a dict of them."""
    if hasattr(obj, "lags") and hasattr(obj, "horizon"):
        return True
    return isinstance(obj, Mapping) and bool(obj) and all(_is_curves(v) for v in obj.values())


def _is_decode(obj: Any) -> bool:
    """A decode of one word (:mod:`workbench.models.g2p_decode`)."""
    return isinstance(obj, Mapping) and {"word", "chars", "phonemes", "attention"} <= set(obj)


def _is_trace(obj: Any) -> bool:
    return hasattr(obj, "names") and hasattr(obj, "lengths_for") and hasattr(obj, "tokens")


def _is_explanation(obj: Any) -> bool:
    return hasattr(obj, "attributions") and hasattr(obj, "method")


def show(
    obj: Any,
    *,
    name: str | None = None,
    index: int = 0,
    tokens: Sequence[Any] | None = None,
    store: Any = None,
    start: int = 0,
    end: int | None = None,
    threshold: float = 0.3,
    pad: tuple[int, int] = (1, 0),
    brush: tuple[int, int] | None = None,
    **kwargs: Any,
):
    """An interactive notebook widget for ``obj`` (JupyterLab 4, Notebook 7, VS Code, Colab).

    Parameters
    ----------
    obj : Trace, Explanation, list of Explanation, StateStore, DocumentView, Matches,
          dict of str to array-like, array-like or plotly Figure
        - a :class:`~workbench.Trace`, a store or one of its documents (``store.document(i)``),
          a ``store.slice(...)`` dict, or a ``[time, units]`` array: a
          :class:`TrajectoryWidget` (threshold + brush selection, ``selected_cells``);
        - one or more :class:`~workbench.Explanation`: the token relevance heatmap, one row per
          method, as a :class:`FigureWidget`;
        - a :class:`~workbench.store.Matches` (``store.match(...)``): a :class:`MatchesWidget`;
        - a plotly Figure (any :mod:`workbench.viz` function): a :class:`FigureWidget`;
        - a :class:`workbench.memory.Curve` or a dict of them (``memory.connectivity(...)``):
          the connectivity-over-lag figure as a :class:`FigureWidget`;
        - a :class:`~workbench.compare.Comparison`: its CKA heatmap as a :class:`FigureWidget`;
        - a decode of one word (:func:`workbench.models.g2p_decode.decode_word` or
          :func:`~workbench.models.g2p_decode.what_if`): its attention matrix
          (:func:`workbench.viz.seq2seq_attention`) as a :class:`FigureWidget`.
    name : str, optional
        Recorded quantity (default: the last ``*.hidden``).
    index : int
        Sequence of the batch (Trace, Explanation).
    tokens : sequence of str, optional
        Tokens of a plain array or slice dict.
    store : StateStore, optional
        Tokens and document ids for a Matches table.
    start, end : int
        Global token range of a StateStore (default the first 2,000 tokens).
    threshold, pad, brush
        Initial selection of a trajectory widget.
    **kwargs
        Passed to the widget (``window=`` for trajectories, ``context=`` for matches).

    Returns
    -------
    TrajectoryWidget, FigureWidget or MatchesWidget
        Displayed when it is the last expression of a cell; keep it to read its state.
    """
    from workbench.widgets._figure import FigureWidget
    from workbench.widgets._matches import MatchesWidget
    from workbench.widgets._trajectory import TrajectoryWidget

    def trajectory(values, toks, label):
        return TrajectoryWidget(values, toks, name=label, threshold=threshold, pad=pad,
                                brush=brush, **kwargs)  # fmt: skip

    if hasattr(obj, "to_plotly_json"):
        return FigureWidget(obj, **kwargs)
    if hasattr(obj, "cka") and hasattr(obj, "names_a"):  # a workbench.compare.Comparison
        from workbench.viz import cka_heatmap

        return FigureWidget(cka_heatmap(obj.cka, obj.names_a, obj.names_b, title="linear CKA"))
    if _is_curves(obj):  # workbench.memory results: connectivity over lag
        from workbench import viz

        curves = {"curve": obj} if hasattr(obj, "lags") else dict(obj)
        return FigureWidget(viz.memory_curves(curves), **kwargs)
    if _is_trace(obj):
        q = _default_name(obj.names, name, "trace")
        n = int(obj.lengths_for(q)[index])
        toks = list(obj.tokens[index])[:n] if obj.tokens is not None else None
        return trajectory(obj[q][index, :n], toks, q)
    if _is_explanation(obj) or (
        isinstance(obj, list | tuple) and obj and all(_is_explanation(e) for e in obj)
    ):
        from workbench import viz

        explanations = [obj] if _is_explanation(obj) else list(obj)
        fig = viz.attribution_heatmap(explanations, tokens, index=index)
        return FigureWidget(fig, **kwargs)
    if hasattr(obj, "spans") and hasattr(obj, "intersection"):
        return MatchesWidget(obj, store, **kwargs)
    if hasattr(obj, "doc_id") and hasattr(obj, "states"):  # a StateStore document
        q = _default_name(obj.store.names, name, "store")
        return trajectory(obj.states(q), obj.tokens, f"{q} ({obj.doc_id})")
    if hasattr(obj, "manifest") and hasattr(obj, "states"):  # a StateStore
        q = _default_name(obj.names, name, "store")
        stop = min(obj.n_tokens, start + DEFAULT_STORE_STEPS) if end is None else int(end)
        if not 0 <= start < stop <= obj.n_tokens:
            raise ValueError(
                f"[{start}, {stop}) is not a token range of the store (0 to {obj.n_tokens})"
            )
        return trajectory(obj.states(q).rows(start, stop), obj.tokens(start, stop),
                          f"{q} [{start}, {stop})")  # fmt: skip
    if _is_decode(obj):  # workbench.models.g2p_decode: decode_word(...) or what_if(...)
        from workbench.viz import seq2seq_attention

        fig = seq2seq_attention(
            obj["attention"],
            obj["phonemes"],
            obj["chars"],
            forced=obj.get("forced"),
            title=f"attention: {obj['word']}",
        )
        return FigureWidget(fig, **kwargs)  # fmt: skip
    if isinstance(obj, Mapping):
        q = _default_name(list(obj), name, "slice")
        return trajectory(obj[q], tokens, q)
    if hasattr(obj, "shape") or isinstance(obj, list | tuple | np.ndarray):
        return trajectory(obj, tokens, name or "states")
    raise TypeError(
        f"cannot show a {type(obj).__name__}: pass a Trace, Explanation (or a list of them), "
        "StateStore, store.document(i), store.slice(...) dict, Matches, [time, units] array "
        "or plotly Figure"
    )
