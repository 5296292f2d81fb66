"""The quickstart behind ``workbench demo``: record a trained model on real text."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from workbench import names as _names


def _real_source(chars: int) -> tuple[str, str]:
    """A slice of real Python source from the interpreter's own standard library."""
    path = Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py"
    text = path.read_text(encoding="utf-8")
    start = text.index("def wrap(")
    return text[start : start + chars], str(path)


def run_demo(model: str = "python", chars: int = 400) -> None:
    """Record every gate and cell of the shipped char LM on real code and print a summary.

    Parameters
    ----------
    model : str
        A shipped model name (``python``) or a checkpoint folder.
    chars : int
        Number of characters of source code to record.
    """
    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    import workbench
    from workbench.models.checkpoint import shipped

    console = Console()
    path = Path(model) if Path(model).is_dir() else shipped(model)
    bundle = workbench.load(path)
    text, source = _real_source(chars)
    ids, lengths = bundle.encode([text])
    console.print(f"[bold]model[/] {path} ({bundle.kind}, {bundle.task})")
    console.print(f"[bold]input[/] {len(text)} characters of {source}")
    trace = workbench.record(bundle.model, ids)
    logits = trace.output[0] if isinstance(trace.output, tuple) else trace.output
    predicted = logits[0, :-1].argmax(-1)
    accuracy = (predicted == ids[0, 1:]).float().mean().item()
    nll = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]).item()

    table = Table(title=f"recorded: {len(trace.names)} quantities, batch x time x units")
    for col in ("name", "shape", "mean", "std", "min", "max"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for row in trace.summary().itertuples():
        table.add_row(
            row.name,
            row.shape,
            f"{row.mean:+.3f}",
            f"{row.std:.3f}",
            f"{row.min:+.3f}",
            f"{row.max:+.3f}",
        )
    console.print(table)
    for site, ex in trace.meta.get("exactness", {}).items():
        console.print(
            f"exactness of {site} against the fused kernel ({ex['checked']}): hidden max abs "
            f"error {ex.get('max_abs_error_hidden', 0):.1e}; cell max abs error "
            f"{ex.get('max_abs_error_cell', 0):.1e} on cells up to |c| = "
            f"{ex.get('cell_scale', 1):.0f}, relative {ex.get('max_rel_error_cell', 0):.1e}"
        )
    console.print(
        f"next-character accuracy on this text {accuracy:.1%}, {nll / np.log(2):.2f} bits/char"
    )
    _print_string_cell(console, bundle, trace, text)


def _print_string_cell(console, bundle, trace, text: str) -> None:
    """Show the cell that best tracks 'inside a string literal' on this text."""
    import numpy as np

    try:
        from workbench.data.python_source import annotate
    except ImportError:  # pragma: no cover - data module not present
        return
    tracks = annotate(text)
    inside = np.asarray(tracks["in_string"], dtype=float)[: trace.lengths[0]]
    if inside.std() == 0:
        return
    best = None
    for name in trace.names:
        if _names.quantity(name) != "cell":
            continue
        values = trace[name][0, : len(inside)].numpy()
        corr = np.nan_to_num(
            [np.corrcoef(values[:, u], inside)[0, 1] for u in range(values.shape[1])]
        )
        u = int(np.abs(corr).argmax())
        if best is None or abs(corr[u]) > abs(best[2]):
            best = (name, u, corr[u], values[:, u])
    if best is None:
        return
    name, unit, corr, values = best
    console.print(
        f"\n[bold]the cell that best tracks 'inside a string'[/]: {name} unit {unit} "
        f"(correlation {corr:+.2f}); its value under each character (red > 0, blue < 0):"
    )
    line = []
    for ch, v in zip(text, values, strict=False):
        shown = "⏎\n" if ch == "\n" else ch.replace("[", r"\[")
        colour = "red" if v > 0.3 else ("blue" if v < -0.3 else "white")
        line.append(f"[{colour}]{shown}[/]")
    console.print("".join(line[:240]))
