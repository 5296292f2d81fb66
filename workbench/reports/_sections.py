"""Turn report items (Trace, Explanation, dict, Figure) into template sections."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench import names as _names
from workbench import viz
from workbench.names import QuantityName

_MAX_HEATMAP_UNITS = 64
_MAX_HEATMAP_STEPS = 400


@dataclass
class Section:
    """One report section: title, paragraphs, a table, figures and trajectory widgets."""

    title: str
    text: list[str] = field(default_factory=list)
    table: dict | None = None  # {"columns": [...], "rows": [[...], ...]}
    figures: list[Any] = field(default_factory=list)
    widgets: list[dict] = field(default_factory=list)


def _is_trace(item: Any) -> bool:
    return (
        hasattr(item, "names")
        and hasattr(item, "tokens")
        and callable(getattr(item, "items", None))
    )


def _is_explanation(item: Any) -> bool:
    return hasattr(item, "attributions") and hasattr(item, "method")


def _is_figure(item: Any) -> bool:
    return hasattr(item, "to_plotly_json")


def _table(rows: Any) -> dict:
    """A table from a list of dicts, a DataFrame, or ``{"columns", "rows"}``."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        rows = rows.to_dict("records")
    if isinstance(rows, Mapping) and "columns" in rows:
        columns = [str(c) for c in rows["columns"]]
        return {"columns": columns, "rows": [[_fmt(c) for c in r] for r in rows["rows"]]}
    if isinstance(rows, Mapping):
        return {"columns": ["name", "value"], "rows": [[str(k), _fmt(v)] for k, v in rows.items()]}
    rows = list(rows)
    columns: list[str] = []
    for r in rows:
        columns += [str(k) for k in r if str(k) not in columns]
    return {"columns": columns, "rows": [[_fmt(r.get(c, "")) for c in columns] for r in rows]}


def _fmt(v: Any) -> str:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        v = v.item() if v.size == 1 else np.round(v.astype(float), 4).tolist()
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    return str(v)


def dict_section(item: Mapping) -> Section:
    """A plain section: ``title`` plus any of ``text``, ``table``, ``figures``, ``curves``."""
    if "title" not in item:
        raise ValueError("a dict section needs a 'title' (and text, table, figures or curves)")
    unknown = set(item) - {"title", "text", "table", "figures", "curves"}
    if unknown:
        raise ValueError(f"unknown keys in a dict section: {sorted(unknown)}")
    text = item.get("text", [])
    sec = Section(str(item["title"]), [text] if isinstance(text, str) else [str(t) for t in text])
    if item.get("table") is not None:
        sec.table = _table(item["table"])
    sec.figures = list(item.get("figures", []))
    if item.get("curves"):
        sec.figures.append(viz.deletion_curve(item["curves"], title="Deletion curves"))
    return sec


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(x, float)


def _layer_of(name: str) -> str:
    parsed = QuantityName.parse(name)
    return f"{parsed.group}.{parsed.direction}" if parsed.is_recurrent else parsed.module


def trace_sections(trace: Any, *, index: int, quantity: str | None, threshold: float,
                   pad: tuple[int, int]) -> list[Section]:  # fmt: skip
    """States (interactive trajectories), gates (heatmaps, saturation), attention."""
    names = list(trace.names)
    if not names:
        raise ValueError("the trace is empty: nothing was recorded")
    tokens = list(trace.tokens[index]) if trace.tokens is not None else None
    recurrent = [n for n in names if QuantityName.parse(n).kind != "attention"]
    summary = Section("Recorded quantities")
    summary.table = {
        "columns": ["name", "shape [batch, time, units]"],
        "rows": [[n, str(tuple(trace[n].shape))] for n in names],
    }
    for key, value in sorted(getattr(trace, "meta", {}).items()):
        if isinstance(value, int | float | str):
            summary.table["rows"].append([f"meta: {key}", _fmt(value)])
    out = [summary]
    if recurrent:
        out.append(_states(trace, recurrent, tokens, index, quantity, threshold, pad))
        gates = _gates(trace, recurrent, tokens, index)
        if gates is not None:
            out.append(gates)
    # [batch, heads, query, key] maps only (a HookPoint named "weights" may be [batch, time, 1])
    attention = [n for n in names if _names.is_attention(n) and len(trace[n].shape) == 4]
    if attention:
        sec = Section("Attention")
        for n in attention:
            w = _numpy(trace[n])[index]
            for h in range(w.shape[0]):
                q = tokens[: w.shape[1]] if tokens else None
                k = tokens[: w.shape[2]] if tokens else None
                sec.figures.append(viz.attention_heatmap(w[h], q, k, title=f"{n} head {h}"))
        out.append(sec)
    return out


def _length(trace: Any, name: str, index: int) -> int:
    lengths = trace.lengths_for(name) if hasattr(trace, "lengths_for") else None
    return int(lengths[index]) if lengths is not None else int(trace[name].shape[1])


def _states(trace, recurrent, tokens, index, quantity, threshold, pad) -> Section:
    if quantity is None:
        hidden = [n for n in recurrent if _names.quantity(n) == "hidden"]
        quantity = (hidden or recurrent)[-1]
    if quantity not in trace.names:
        raise ValueError(f"quantity {quantity!r} was not recorded; pick one of {recurrent}")
    n = _length(trace, quantity, index)
    values = _numpy(trace[quantity])[index, :n]
    sec = Section(
        f"States: {quantity}",
        [
            "Drag across the tokens to brush a range; a unit is selected when it is at or "
            "above the threshold on every brushed step and below it on the padding steps "
            "before / after (LSTMVis). Selected units are coloured and listed."
        ],
    )
    sec.widgets.append(
        {
            "name": quantity,
            "tokens": [str(t) for t in tokens[:n]] if tokens else [str(i) for i in range(n)],
            "threshold": float(threshold),
            "pad": [int(pad[0]), int(pad[1])],
        }
    )
    sec.widgets[-1]["values"] = values
    return sec


def _gates(trace, recurrent, tokens, index) -> Section | None:
    gate_names = [n for n in recurrent if QuantityName.parse(n).is_gate]
    if not gate_names:
        return None
    sec = Section("Gates")
    last_layer = _layer_of(gate_names[-1])
    saturation = {}
    for name in gate_names:
        lengths = trace.lengths_for(name) if hasattr(trace, "lengths_for") else None
        v = _numpy(trace[name])
        if lengths is not None:
            mask = np.arange(v.shape[1])[None, :] < np.asarray(lengths)[:, None]
            saturation[name] = v[mask]
        else:
            saturation[name] = v.reshape(-1, v.shape[-1])
        if _layer_of(name) == last_layer:
            n = min(_length(trace, name, index), _MAX_HEATMAP_STEPS)
            units = min(v.shape[-1], _MAX_HEATMAP_UNITS)
            sec.figures.append(
                viz.gate_heatmap(v[index, :n], tokens[:n] if tokens else None,
                                 gate=QuantityName.parse(name).quantity, units=range(units),
                                 title=f"{name} (units 0-{units - 1}, steps 0-{n - 1})")
            )  # fmt: skip
    sec.figures.insert(0, viz.saturation_scatter(saturation, title="Gate saturation"))
    return sec


def explanation_sections(explanations: Sequence[Any], *, index: int) -> list[Section]:
    """Prediction, attributions per method, and agreement between methods."""
    pred = Section("Prediction")
    rows = []
    for e in explanations:
        out = _numpy(e.output).reshape(-1)
        delta = getattr(e, "delta", None)
        rows.append(
            [
                str(e.method),
                _fmt(_target(e.target, index)),
                f"{out[index]:.4g}" if out.size > index else "",
                f"{_numpy(delta).reshape(-1)[index]:.3g}" if delta is not None else "n/a",
            ]
        )
    pred.table = {"columns": ["method", "target", "explained score", "delta"], "rows": rows}
    attr = Section("Attributions", ["Hover a cell for its raw relevance; colours are scaled "
                                    "per method (red supports, blue opposes)."])  # fmt: skip
    attr.figures.append(viz.attribution_heatmap(list(explanations), index=index))
    out = [pred, attr]
    if len(explanations) >= 2:
        out.append(_agreement(explanations, index))
    return out


def _target(target: Any, index: int) -> Any:
    if hasattr(target, "detach") or isinstance(target, list | tuple | np.ndarray):
        t = _numpy(target).reshape(-1)
        return int(t[index]) if t.size > index else t.tolist()
    return target


def _agreement(explanations: Sequence[Any], index: int) -> Section:
    from scipy.stats import spearmanr

    methods = [str(e.method) for e in explanations]
    rows = []
    for e in explanations:
        a = _numpy(e.attributions)[index]
        n = int(e.lengths[index]) if getattr(e, "lengths", None) is not None else a.shape[0]
        rows.append(a[:n])
    n = min(len(r) for r in rows)
    k = len(rows)
    m = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            rho = spearmanr(rows[i][:n], rows[j][:n]).statistic if n > 1 else np.nan
            m[i, j] = m[j, i] = 0.0 if np.isnan(rho) else float(rho)
    sec = Section("Agreement between methods",
                  ["Spearman rank correlation of the token relevances."])  # fmt: skip
    sec.figures.append(viz.agreement_heatmap(m, methods))
    return sec
