"""The quickstart behind ``workbench demo``: record a trained model on real text."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from workbench import names as _names


def _real_source(chars: int) -> tuple[str, str]:
    """A slice of real Python source from the interpreter's own standard library.

    ``calendar.py``'s command line: short string literals between code, what the
    string-literal cell is shown on.
    """
    path = Path(sysconfig.get_paths()["stdlib"]) / "calendar.py"
    text = path.read_text(encoding="utf-8")
    start = text.index("def main(")
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
    """Show the string-literal cell (:mod:`workbench.store._specialists`) under this text.

    The shipped python model's cell is the one chosen on training files; another model's is
    picked by the same rule on this text.
    """
    from workbench.data.python_source import annotate
    from workbench.store import _specialists as sp
    from workbench.store._runner import model_fingerprint

    n = int(trace.lengths[0])
    tracks = {k: v[:n] for k, v in annotate(text).items()}
    cell = sp.shipped_literal_cell(model_fingerprint(bundle.model), trace.names)
    where = "chosen on training files, held out:"
    if cell is None:
        states = {m: trace[m][0, :n].numpy() for m in trace.names if _names.quantity(m) == "cell"}
        cell = sp.literal_cell(states, tracks)
        where = "picked on this text:"
    if cell is None:
        return
    values = trace[cell.name][0, :n].numpy()[:, cell.unit]
    inside, code = tracks[sp.TRACK], tracks[sp.CONTRAST]
    console.print(
        f"\n[bold]the string-literal cell[/]: {cell.name} unit {cell.unit} ({where} "
        f"{cell.describe()}, {sp.TRACK} against {sp.CONTRAST}); mean value inside literals "
        f"{values[inside].mean():+.2f}, on code {values[code].mean():+.2f}. Under each character "
        "(red: nearer the literal mean, blue: nearer the code mean):"
        if inside.any() and code.any()
        else f"\n[bold]the string-literal cell[/]: {cell.name} unit {cell.unit} ({where} "
        f"{cell.describe()}); this text has no literal and code to compare:"
    )
    mid = (values[inside].mean() + values[code].mean()) / 2 if inside.any() and code.any() else 0
    lit_high = bool(inside.any() and code.any() and values[inside].mean() > values[code].mean())
    line = []
    for ch, v in zip(text, values, strict=False):
        shown = "⏎\n" if ch == "\n" else ch.replace("[", r"\[")
        literal_like = (v > mid) == lit_high
        line.append(f"[{'red' if literal_like else 'blue'}]{shown}[/]")
    console.print("".join(line[:240]))
