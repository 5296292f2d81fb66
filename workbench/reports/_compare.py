"""The report section of a model comparison (:func:`workbench.compare.compare_stores`)."""

from __future__ import annotations

from workbench.reports._sections import Section


def comparison_section(comparison, label_a: str = "A", label_b: str = "B", bpc=None) -> Section:
    """A report section with the Compare page's figures.

    Parameters
    ----------
    comparison : workbench.compare.Comparison
    label_a, label_b : str
        The models' names.
    bpc : sequence of (label, bits_per_char), optional
        Held-out bits per character to show as bars.
    """
    from workbench import viz

    c = comparison
    figures = [viz.bpc_bars(bpc, title="test bits per character")] if bpc else []
    figures += [
        viz.cka_heatmap(c.cka, c.names_a, c.names_b, label_a, label_b, title="linear CKA"),
        viz.unit_match_table(c.matches, label_a, label_b, title="best-matched units"),
        viz.cell_counterparts_table(c.cells, label_a, label_b, title="interpretable cells"),
        viz.saturation_side_by_side([c.saturation_a, c.saturation_b], [label_a, label_b],
                                    title="gate saturation"),
    ]  # fmt: skip
    text = (
        f"{c.steps:,} common steps. SVCCA of {c.pair[0]} vs {c.pair[1]}: "
        f"{c.svcca.similarity:.3f} ({c.svcca.dims_x} and {c.svcca.dims_y} directions)."
    )
    return Section(f"Compare {label_a} and {label_b}", [text], figures=figures)
