"""``workbench report``: record, explain and write one self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

#: Short method names accepted on the command line.
ALIASES = {"ig": "integrated_gradients", "ixg": "input_x_gradient", "grad": "saliency"}


def _methods(spec: str) -> list[str]:
    from workbench.explainers import METHODS

    names = [ALIASES.get(m.strip(), m.strip()) for m in spec.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown method(s) {unknown}; choose from {sorted(METHODS)} "
            f"(short names: {', '.join(f'{k}={v}' for k, v in ALIASES.items())})"
        )
    return names


#: Longest input of ``workbench explain`` / ``report`` (tokens or series steps).
MAX_INPUT_TOKENS = 10_000


def _check_length(n: int) -> None:
    if n > MAX_INPUT_TOKENS:
        raise typer.BadParameter(
            f"the input has {n:,} tokens; the limit is {MAX_INPUT_TOKENS:,} for explain and "
            "report (each method runs the model many times). Shorten it, or record a long "
            "text into a store with `workbench record`"
        )


def _inputs(bundle, text: str):
    """``(args, kwargs, tokens)`` of one forward pass on ``text``."""
    import math

    import torch

    if bundle.tokenizer is None:
        try:
            values = [float(x) for x in text.replace(";", ",").split(",") if x.strip()]
        except ValueError:
            raise typer.BadParameter(
                f"the {bundle.task} model takes a series: pass --input '1.0, 2.5, ...'"
            ) from None
        if not all(math.isfinite(v) for v in values):
            raise typer.BadParameter("the series holds NaN or infinite values; pass numbers")
        _check_length(len(values))
        x = torch.tensor(values, dtype=torch.float32)[None, :, None]
        return (x,), {}, [[f"{v:g}" for v in values]]
    if not text:
        raise typer.BadParameter("--input is empty: pass some text")
    _check_length(len(bundle.tokenize(text)))
    ids, lengths = bundle.encode([text])
    tokens = [bundle.tokenize(text)[: int(lengths[0])]]
    kwargs = {"lengths": lengths} if bundle.kind == "classifier" else {}
    return (ids,), kwargs, tokens


def report_command(
    model: str = typer.Option(..., "--model", "-m", help="Checkpoint folder or shipped name."),
    input: str = typer.Option(..., "--input", "-i", help="Text (or comma-separated series)."),
    methods: str = typer.Option("ig,lrp", help="Comma-separated methods (ig, lrp, shap, lime...)."),
    output: Path = typer.Option(Path("report.html"), "--output", "-o", help="HTML file."),
    plotly: str = typer.Option("embed", help="embed plotly.js, or 'link' to write it beside."),
    curves: bool = typer.Option(True, help="Add deletion curves (AOPC) per method."),
) -> None:
    """Record MODEL on INPUT, explain it with METHODS, and write one HTML report."""
    import torch

    import workbench
    from workbench.explainers import explain
    from workbench.explainers.metrics import perturbation_curve

    names = _methods(methods)
    bundle = workbench.load(model)
    args, kwargs, tokens = _inputs(bundle, input)
    with torch.no_grad():
        trace = workbench.record(bundle.model, *args, **kwargs)
    trace.tokens = tokens
    explanations = [explain(bundle.model, args[0], None, m, tokens=tokens, **kwargs) for m in names]
    summary = {
        "title": "Model and data",
        "text": [f"{bundle.kind} model on {bundle.task!r} from {bundle.path}"],
        "table": {
            "columns": ["name", "value"],
            "rows": [["input length", len(tokens[0])], ["parameters",
                     sum(p.numel() for p in bundle.model.parameters())]]
            + [[f"arch: {k}", v] for k, v in sorted(bundle.config.get("arch", {}).items())]
            + [[f"metric: {k}", v] for k, v in sorted(bundle.metrics.items())
               if isinstance(v, int | float | str)],
        },
    }  # fmt: skip
    if bundle.kind == "classifier" and bundle.labels:
        logits = trace.output[0] if isinstance(trace.output, tuple) else trace.output
        probs = torch.softmax(logits.float(), -1)[0]
        summary["table"]["rows"] += [[f"P({lab})", float(p)] for lab, p in
                                     zip(bundle.labels, probs, strict=False)]  # fmt: skip
    items = [summary, *explanations]
    if curves:
        items.append(
            {
                "title": "Faithfulness",
                "text": "Deletion curves: the explained score as the most relevant tokens are "
                "removed first (a faster fall is a more faithful explanation; AOPC in the legend).",
                "curves": {e.method: perturbation_curve(bundle.model, args[0], e, **kwargs)
                           for e in explanations},
            }
        )  # fmt: skip
    items.append(trace)
    res = workbench.report(items, output, title=f"workbench report: {bundle.task}", plotly=plotly)
    typer.echo(f"wrote {res}")
