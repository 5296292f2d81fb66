"""``workbench.report``: one self-contained HTML file from traces, explanations and sections."""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

PLOTLY_FILE = "plotly.min.js"


@dataclass(frozen=True)
class ReportResult:
    """What :func:`report` wrote.

    Attributes
    ----------
    path : Path
        The HTML file.
    size : int
        Its size in bytes (without ``plotly.min.js`` in ``"link"`` mode).
    sections : list of str
        Section titles, in order.
    plotly_path : Path or None
        The ``plotly.min.js`` written next to it in ``"link"`` mode.
    """

    path: Path
    size: int
    sections: list[str]
    plotly_path: Path | None = None

    def __str__(self) -> str:
        return f"{self.path} ({self.size / 1e6:.2f} MB, {len(self.sections)} sections)"


def _static(name: str) -> str:
    return resources.files("workbench.reports").joinpath("static", name).read_text("utf-8")


def _collect(items: Any, index: int, quantity: str | None, threshold: float, pad) -> list:
    from workbench.reports._analysis import matches_section
    from workbench.reports._sections import (
        Section,
        _is_explanation,
        _is_figure,
        _is_trace,
        dict_section,
        explanation_sections,
        trace_sections,
    )

    def _is_matches(x: Any) -> bool:
        return hasattr(x, "spans") and hasattr(x, "intersection")

    single = (_is_trace, _is_explanation, _is_figure, _is_matches)
    if any(f(items) for f in single) or isinstance(items, dict | Section):
        items = [items]
    sections: list = []
    explanations: list[Any] = []
    slot = None
    for item in items:
        if _is_explanation(item):
            if slot is None:
                slot = len(sections)
            explanations.append(item)
        elif _is_trace(item):
            sections += trace_sections(item, index=index, quantity=quantity,
                                       threshold=threshold, pad=pad)  # fmt: skip
        elif isinstance(item, dict):
            sections.append(dict_section(item))
        elif _is_figure(item):
            sections.append(Section("Figure", figures=[item]))
        elif isinstance(item, Section):  # matches_section, perturbation_section, ...
            sections.append(item)
        elif _is_matches(item):  # without a store: global positions, no tokens
            sections.append(matches_section(item))
        else:
            raise TypeError(
                f"cannot put a {type(item).__name__} in a report: pass Trace, Explanation, "
                "plotly Figure, Matches, a section (workbench.reports.matches_section, "
                "perturbation_section, memory_section) or dict(title=..., text=..., "
                "table=..., figures=...) items"
            )
    if explanations:
        sections[slot:slot] = explanation_sections(explanations, index=index)
    if not sections:
        raise ValueError("nothing to report: pass at least one item")
    return sections


def _render(sections: list, title: str, plotly_tag: str) -> str:
    from jinja2 import Environment, PackageLoader
    from markupsafe import Markup

    from workbench.reports._embed import figure_spec, quantise, script_json

    env = Environment(
        loader=PackageLoader("workbench.reports", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
    )
    views, figure_n, widget_n = [], 0, 0
    for s_i, sec in enumerate(sections):
        figs, widgets = [], []
        for fig in sec.figures:
            figs.append({"id": f"wb-fig-{figure_n}", "json": Markup(script_json(figure_spec(fig)))})
            figure_n += 1
        for w in sec.widgets:
            data = {k: v for k, v in w.items() if k != "values"} | quantise(w["values"])
            widgets.append({"id": f"wb-traj-{widget_n}", "json": Markup(script_json(data))})
            widget_n += 1
        views.append({"anchor": f"section-{s_i}", "section": sec, "figures": figs,
                      "widgets": widgets})  # fmt: skip
    return env.get_template("report.html.j2").render(
        title=title,
        views=views,
        css=Markup(_static("report.css")),
        js=Markup(_static("report.js")),
        plotly_tag=Markup(plotly_tag),
    )


def report(
    items: Any,
    path: str | Path,
    *,
    title: str | None = None,
    plotly: str = "embed",
    index: int = 0,
    quantity: str | None = None,
    threshold: float = 0.3,
    pad: tuple[int, int] = (1, 0),
) -> ReportResult:
    """Write one self-contained HTML report.

    The file references no external URL: plotly.js is embedded once (``plotly="embed"``)
    or written next to the file as ``plotly.min.js`` (``plotly="link"``); it opens with
    networking off. The trajectory views keep their threshold and brush selection alive in
    the browser on the embedded (uint8-quantised) states. The same inputs give the same
    bytes.

    Parameters
    ----------
    items : Trace, Explanation, Figure, dict, Section, Matches, or an iterable of them
        A :class:`workbench.Trace` gives the recorded quantities, the interactive
        trajectories of ``quantity`` and the gate views; :class:`workbench.Explanation`
        objects (one per method) give the prediction, the token heatmap and, from two
        methods, their agreement; a ``dict(title=..., text=..., table=..., figures=...,
        curves=...)`` gives a plain section (``curves``: method -> deletion curve, see
        :func:`workbench.viz.deletion_curve`); a plotly Figure a figure section; a section
        from :func:`~workbench.reports.matches_section` (selected cells and their corpus
        matches; a bare ``Matches`` gives it without tokens) or
        :func:`~workbench.reports.perturbation_section` (original vs perturbed run).
    path : str or Path
        The HTML file to write (parent folders are created).
    title : str, optional
        Page title.
    plotly : {"embed", "link"}
        Embed plotly.js, or write ``plotly.min.js`` beside the file and reference it.
    index : int
        Which sequence of the batch to show.
    quantity : str, optional
        Recorded name for the trajectory view (default: the last ``*.hidden``).
    threshold : float
        Initial threshold of the trajectory view.
    pad : (int, int)
        Initial off-steps before / after the brush (LSTMVis zero brush).

    Returns
    -------
    ReportResult
        Path, size in bytes and section titles.
    """
    if plotly not in ("embed", "link"):
        raise ValueError(f"plotly must be 'embed' or 'link', got {plotly!r}")
    from plotly.offline import get_plotlyjs

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sections = _collect(items, int(index), quantity, float(threshold), tuple(pad))
    plotly_js = get_plotlyjs()
    plotly_path = None
    if plotly == "embed":
        tag = "<script>" + plotly_js.replace("</script", "<\\/script") + "</script>"
    else:
        plotly_path = path.parent / PLOTLY_FILE
        plotly_path.write_text(plotly_js, encoding="utf-8")
        tag = f'<script src="{html.escape(PLOTLY_FILE)}"></script>'
    text = _render(sections, title or "Workbench report", tag)
    path.write_text(text, encoding="utf-8", newline="\n")
    return ReportResult(path, path.stat().st_size, [s.title for s in sections], plotly_path)
