"""CLI commands of the explanation methods: ``workbench bench explain``."""

from __future__ import annotations

import typer


def bench_explain(
    tokens: int = typer.Option(64, help="Input length (tokens)."),
    repeats: int = typer.Option(3, help="Timed runs per method (the median is shown)."),
    planted: bool = typer.Option(
        True, help="Also train the planted-signal task and show top-1 hit rates per method."
    ),
    threads: int = typer.Option(0, help="torch threads (0: leave torch's default)."),
) -> None:
    """Time every method on the sentiment model (one input), as ratios to one forward."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from workbench.bench._timing import median_seconds
    from workbench.explainers import METHODS, explain

    if threads:
        torch.set_num_threads(threads)
    console = Console()
    model, ids, lengths, source = _sentiment_input(tokens)
    console.print(
        f"model: {source}; input: 1 x {ids.shape[1]} tokens; "
        f"torch threads: {torch.get_num_threads()}"
    )
    settings = {
        "lrp": ({}, 0.1),
        "integrated_gradients": ({"n_steps": 50}, 0.3),
        "lime": ({"n_samples": 1000}, 2.0),
        "shap": ({"max_evals": 500}, 2.0),
        "saliency": ({}, None),
        "input_x_gradient": ({}, None),
        "occlusion": ({}, None),
    }

    def timed(fn, n):
        return median_seconds(fn, n, warmup=1)

    with torch.no_grad():
        base = timed(lambda: model(ids, lengths), max(10, repeats))
    table = Table(title="workbench bench explain")
    for col in ("method", "settings", "seconds", "x forward", "budget", "ok"):
        table.add_column(col)
    table.add_row("forward (baseline)", "", f"{base:.4f}", "1", "", "")
    for name in sorted(METHODS, key=lambda n: list(settings).index(n) if n in settings else 99):
        kw, budget = settings.get(name, ({}, None))
        t = timed(
            lambda name=name, kw=kw: explain(model, ids, None, name, lengths=lengths, **kw), repeats
        )
        ok = "" if budget is None else ("yes" if t <= budget else "NO")
        table.add_row(
            name,
            ", ".join(f"{k}={v}" for k, v in kw.items()),
            f"{t:.3f}",
            f"{t / base:.0f}",
            "" if budget is None else f"<= {budget} s",
            ok,
        )
    console.print(table)
    if planted:
        _planted_table(console)


def _sentiment_input(tokens: int):
    import torch

    try:
        import workbench
        from workbench.models.checkpoint import shipped

        bundle = workbench.load(shipped("sentiment"))
        model = bundle.model.eval()
        text = (
            "the service was slow but the food was great and i would come back again "
            "with friends next week for sure"
        ) * 4
        ids, lengths = bundle.encode([text])
        ids = ids[:, :tokens]
        lengths = lengths.clamp(max=tokens)
        return model, ids, lengths, f"shipped sentiment model ({bundle.path})"
    except Exception as err:  # noqa: BLE001 - fall back, and say so
        torch.manual_seed(0)
        model = _FreshClassifier().eval()
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(2, 8000, (1, tokens), generator=g)
        lengths = torch.tensor([tokens])
        return (
            model,
            ids,
            lengths,
            (
                "FRESHLY INITIALISED classifier (embedding 128, 2-layer bidirectional LSTM 128, "
                f"attention pooling; the shipped sentiment model could not be loaded: {err})"
            ),
        )


def _FreshClassifier():  # noqa: N802 - a factory standing in for a class
    import torch
    from torch import nn

    class Fresh(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(8000, 128, padding_idx=0)
            self.rnn = nn.LSTM(128, 128, num_layers=2, bidirectional=True, batch_first=True)
            self.att = nn.Linear(256, 1)
            self.fc = nn.Linear(256, 3)

        def forward(self, ids, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(
                self.emb(ids), lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out, _ = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(
                out, batch_first=True, total_length=ids.shape[1]
            )
            mask = torch.arange(ids.shape[1])[None] < lengths[:, None]
            w = torch.softmax(self.att(out).squeeze(-1).masked_fill(~mask, -1e9), 1)
            return self.fc((w.unsqueeze(-1) * out).sum(1))

    return Fresh()


def _planted_table(console) -> None:
    import time

    from rich.table import Table

    from workbench.explainers.checks import hit_rates, planted_data, train_planted

    start = time.perf_counter()
    model, acc = train_planted()
    data = planted_data(200, seed=7)
    rates = hit_rates(model, data)
    table = Table(
        title=f"planted-signal task: top-1 hit rate on {len(data.ids)} test "
        f"sequences (model accuracy {acc:.3f})"
    )
    table.add_column("method")
    table.add_column("hit rate")
    table.add_column("required")
    need = {
        "lrp": 0.95,
        "integrated_gradients": 0.95,
        "occlusion": 0.95,
        "shap": 0.90,
        "lime": 0.90,
    }
    for name, r in sorted(rates.items(), key=lambda kv: -kv[1]):
        table.add_row(name, f"{r:.3f}", f">= {need[name]:.2f}" if name in need else "-")
    console.print(table)
    console.print(f"(trained and explained in {time.perf_counter() - start:.1f} s)")


def explain_command(
    model: str = typer.Option(..., "--model", "-m", help="Checkpoint folder or shipped name."),
    input: str = typer.Option(..., "--input", "-i", help="Text (or comma-separated series)."),
    methods: str = typer.Option("ig,lrp", help="Comma-separated methods (ig, lrp, shap, lime...)."),
    target: int = typer.Option(-1, help="Class / output index to explain (-1: the prediction)."),
    top: int = typer.Option(10, help="Tokens shown per method, most relevant first."),
    csv: str = typer.Option("", help="Also write every attribution to this CSV file."),
) -> None:
    """Explain MODEL's prediction on INPUT with each of METHODS; print the top tokens."""
    import pandas as pd
    import torch
    from rich.console import Console
    from rich.table import Table

    import workbench
    from workbench.explainers import explain
    from workbench.reports._cli import _inputs, _methods

    names = _methods(methods)
    bundle = workbench.load(model)
    args, kwargs, tokens = _inputs(bundle, input)
    console = Console()
    with torch.no_grad():
        out = bundle.model(*args, **kwargs)
    logits = out[0] if isinstance(out, tuple) else out
    if bundle.kind == "classifier":
        probs = torch.softmax(logits.float(), -1)[0]
        pred = int(probs.argmax())
        label = bundle.labels[pred] if bundle.labels else str(pred)
        console.print(f"prediction: [bold]{label}[/] (p = {float(probs[pred]):.3f})")
    elif bundle.kind == "forecaster":
        console.print(f"forecast (scaled): {logits.reshape(-1)[-1].item():.4g}")
    chosen = None if target < 0 else target
    frames = []
    for name in names:
        e = explain(bundle.model, args[0], chosen, name, tokens=tokens, **kwargs)
        delta = "" if e.delta is None else f", delta {float(e.delta[0]):.2e}"
        table = Table(title=f"{name}  (explained score {float(e.output[0]):.4g}{delta})")
        for col in ("rank", "position", "token", "relevance"):
            table.add_column(col)
        attr = e.attributions[0].detach().cpu().numpy()
        n = len(tokens[0])
        order = sorted(range(n), key=lambda i: -abs(float(attr[i])))[: max(1, top)]
        for rank, i in enumerate(order, 1):
            table.add_row(str(rank), str(i), repr(tokens[0][i]), f"{float(attr[i]):+.4f}")
        console.print(table)
        frames.append(pd.DataFrame({"method": name, "position": range(n), "token": tokens[0],
                                    "relevance": attr[:n]}))  # fmt: skip
    if csv:
        pd.concat(frames).to_csv(csv, index=False)
        console.print(f"wrote {csv}")
