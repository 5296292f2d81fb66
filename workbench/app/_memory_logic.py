"""Memory page logic, without Dash: bounded connectivity runs and time-scale views."""

from __future__ import annotations

import numbers

import numpy as np

#: What one request may ask for (a click runs in the request: keep it to seconds).
APP_MAX_WINDOWS = 500
APP_MAX_STEPS = 256
AC_TOKENS = 20_000  # tokens the model-free autocorrelation estimate reads


class MemoryViewError(ValueError):
    """A request the page cannot answer; the message names the fix."""


def bounded_request(windows, steps) -> tuple[int, int, str]:
    """``(windows, steps, note)``: numbers capped to the page's limits, the note says so."""
    out, notes = [], []
    for value, name, low, high in (
        (windows, "windows", 2, APP_MAX_WINDOWS),
        (steps, "steps", 2, APP_MAX_STEPS),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise MemoryViewError(f"{name} must be a number between {low} and {high}")
        v = int(value)
        if v > high:
            notes.append(f"{name} capped at {high} (use workbench.memory in a notebook for more)")
        out.append(min(max(v, low), high))
    return out[0], out[1], "; ".join(notes)


def default_steps(store, want: int = 64) -> int:
    """``want`` steps, or fewer when the store's longest document is shorter."""
    if store is None or store.n_docs == 0:
        return want
    return max(2, min(want, int(np.diff(store.boundaries).max()) - 1))


def is_language_model(bundle) -> bool:
    return bundle.kind == "charlm" and bundle.tokenizer is not None


def connectivity_view(ctx, model: str, windows: int, steps: int):
    """``(curves by label, horizons text)`` for a served char LM (cached per request)."""
    from workbench import memory

    bundle = ctx.bundle(model)
    if not is_language_model(bundle):
        raise MemoryViewError(
            f"{model} is a {bundle.kind}: memory curves need a language model (python, parens)"
        )
    store = ctx.store(model)
    if store is None:
        raise MemoryViewError(f"no state store for {model}; start the app with workbench serve")

    def compute():
        w = memory.from_store(store, windows, steps)
        curves = {"input gradient": memory.connectivity(bundle, w)["gradient"]}
        state = memory.state_gradients(bundle, w[: min(windows, 100)])
        return curves, state

    return ctx.cached(("memory", model, windows, steps), compute)


def horizon_text(curves) -> str:
    parts = []
    for label, c in curves.items():
        h = c.horizon(0.1)
        parts.append(
            f"{label}: horizon {h if h is not None else '> ' + str(len(c.lags) - 1)} steps "
            f"(10 % of peak), decay x{c.rate():.3f} per step, {c.windows} windows"
        )
    return "; ".join(parts)


def time_scale_view(ctx, model: str, gate: str | None):
    """``(all keep gates' TimeScales, chosen gate, its e-folding lags)`` of a store."""
    from workbench import memory
    from workbench.memory._time_scales import efold_lag, store_autocorrelation

    store = ctx.store(model)
    if store is None:
        raise MemoryViewError(f"no state store for {model}")
    gates = memory.keep_gates(store.names)
    if not gates:
        raise MemoryViewError(f"the {model} store holds no forget or update gates")
    scales = [
        ctx.cached(("tau", model, g), lambda g=g: memory.time_scales(store, g)) for g in gates
    ]
    gate = gate if gate in gates else gates[-1]
    try:
        acf = ctx.cached(
            ("acf", model, gate), lambda: store_autocorrelation(store, gate, AC_TOKENS, 100)
        )
        efold = efold_lag(acf)
    except memory.MeasureError:
        efold = None
    return scales, gate, efold


def ranking_rows(scales, efold, top: int = 10) -> list[dict]:
    """Rows of the longest-memory table."""
    q = scales.quantiles((0.1, 0.9))
    rows = []
    for rank, u in enumerate(scales.ranked(top)):
        rows.append(
            {
                "rank": rank + 1,
                "unit": int(u),
                "tau": float(scales.tau[u]),
                "tau 10-90 %": f"{q[0, u]:.3g} - {q[1, u]:.3g}",
                "autocorrelation 1/e lag": None if efold is None else float(efold[u]),
            }
        )
    return rows


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "inf" if np.isinf(v) else f"{v:.3g}"
    return str(v)
