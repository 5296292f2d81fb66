"""What the Compare page shows, computed without a browser: two models' states side by side.

The two models' stores must hold the same text with the same tokenizer; their common leading
steps (at most :data:`MAX_STEPS`) are compared once and cached for the life of the app.
"""

from __future__ import annotations

from workbench.app._states_logic import ViewError

#: Most common steps one comparison reads (the demo stores hold 100k-300k).
MAX_STEPS = 100_000
#: Rows of the unit matching table.
MATCH_ROWS = 20


def comparable(ctx) -> list[str]:
    """Served models that are char LMs or have a store (the pickers' options)."""
    return [m for m in ctx.model_names() if ctx.bundle(m).kind == "charlm"]


def defaults(ctx, a=None, b=None) -> tuple[str | None, str | None, str | None]:
    """``(a, b, problem)``: the picked models, or defaults, and what was wrong with the query."""
    names = comparable(ctx) or ctx.model_names()
    problem = None
    bad = [x for x in (a, b) if x is not None and x not in names]
    if bad:
        problem = f"unknown model {bad[0]!r}; pick one of {', '.join(names)}"
    if a not in names:
        a = names[0] if names else None
    if b not in names:
        b = next((m for m in names if m != a), a)
    return a, b, problem


def comparison(ctx, a: str, b: str):
    """The cached :class:`~workbench.compare.Comparison` of models ``a`` and ``b``.

    Raises
    ------
    ViewError
        A model unknown or without a store, different tokenizers or texts (one line each).
    """
    from workbench.compare import compare_stores

    for m in (a, b):
        if m not in ctx.models:
            raise ViewError(f"unknown model {m!r}; served: {', '.join(ctx.model_names())}")
    stores = [ctx.store(m) for m in (a, b)]
    for m, s in zip((a, b), stores, strict=True):
        if s is None:
            raise ViewError(
                f"No state store for {m}: start the app with `workbench serve` to build the "
                "demo stores, or serve a store of it"
            )
    if ctx.bundle(a).tokenizer is None or ctx.bundle(b).tokenizer is None:
        raise ViewError("only models with a tokenizer (char LMs) can be compared here")
    if ctx.bundle(a).tokenizer.vocab != ctx.bundle(b).tokenizer.vocab:
        raise ViewError(
            f"{a} and {b} use different tokenizers; compare models trained on the same "
            "vocabulary (python, python-gru, python-rnn)"
        )

    def compute():
        try:
            return compare_stores(stores[0], stores[1], steps=MAX_STEPS)
        except ValueError as exc:
            raise ViewError(str(exc)) from None

    return ctx.cached(("compare", a, b), compute)


def bits_per_char(ctx, name: str) -> float | None:
    """Held-out test bits per character from the checkpoint's metrics, if it has them."""
    return ctx.bundle(name).metrics.get("test_bits_per_char")


def figures(ctx, a: str, b: str) -> dict:
    """Every figure of the page: ``bpc, cka, matches, cells, saturation`` and a ``summary``."""
    from workbench import viz

    res = comparison(ctx, a, b)
    label_a, label_b = (a, b) if a != b else (f"{a} (A)", f"{b} (B)")
    rows = [(m, bits_per_char(ctx, m)) for m in dict.fromkeys((a, b))]
    return {
        "summary": (
            f"{res.steps:,} common steps compared. SVCCA of {res.pair[0]} vs {res.pair[1]}: "
            f"{res.svcca.similarity:.3f} (mean of {len(res.svcca.correlations)} canonical "
            f"correlations; {res.svcca.dims_x} and {res.svcca.dims_y} directions keep 99% "
            "of the variance)."
        ),
        "bpc": viz.bpc_bars(rows, title="test bits per character (lower is better)"),
        "cka": viz.cka_heatmap(
            res.cka, res.names_a, res.names_b, label_a, label_b, title="linear CKA, layer x layer"
        ),  # fmt: skip
        "matches": viz.unit_match_table(
            res.matches,
            label_a,
            label_b,
            top=MATCH_ROWS,
            title=f"best-matched units: {res.pair[0]} vs {res.pair[1]}",
        ),  # fmt: skip
        "cells": viz.cell_counterparts_table(
            res.cells, label_a, label_b, title="interpretable cells and their counterparts"
        ),
        "saturation": viz.saturation_side_by_side(
            [res.saturation_a, res.saturation_b],
            [label_a, label_b],
            title="gate saturation (every gate unit of every layer)",
        ),  # fmt: skip
    }
