"""CLI commands of the state store: ``record``, ``export``, ``import``, ``bench store``."""

from __future__ import annotations

from pathlib import Path

import typer


def _load_model(model: str):
    import workbench
    from workbench.models.checkpoint import SHIPPED, shipped

    path = Path(model)
    if not path.exists() and model in SHIPPED:
        path = shipped(model)
    if not path.exists():
        raise typer.BadParameter(f"no checkpoint folder or shipped model named {model!r}")
    return workbench.load(path)


def _load_corpus(corpus: str, split: str, max_tokens: int | None, level: str = "char"):
    """A shipped corpus, or a folder's text split as the model reads it (``level``)."""
    from workbench.data import CORPORA, from_text_folder
    from workbench.data import corpus as shipped_corpus

    if corpus in CORPORA:
        return shipped_corpus(corpus, split, max_tokens=max_tokens)
    path = Path(corpus)
    if path.is_dir():
        return from_text_folder(path, max_tokens=max_tokens, level=level)
    raise typer.BadParameter(
        f"corpus {corpus!r} is neither a shipped corpus ({', '.join(CORPORA)}) nor a folder"
    )


def record(
    model: str = typer.Option(..., help="Checkpoint folder or shipped model name."),
    corpus: str = typer.Option(..., help="Shipped corpus name or a folder of .txt files."),
    out: Path = typer.Option(..., help="Store folder (an interrupted build resumes)."),
    split: str = typer.Option("test", help="Corpus split."),
    max_tokens: int = typer.Option(None, help="Stop after this many tokens."),
    names: list[str] = typer.Option(None, help="Names or globs to keep (default all)."),
    dtype: str = typer.Option("float16", help="float16 or float32."),
    engine: str = typer.Option(None, help="'dask' for a local dask.distributed cluster."),
    chunk_tokens: int = typer.Option(8192, help="Tokens per chunk."),
) -> None:
    """Record a whole corpus into a state store (zarr), resumable."""
    from workbench.store import StateStore
    from workbench.store._build import check_settings
    from workbench.store._limits import check_size

    check_settings(dtype, engine, chunk_tokens, None, 256, 32, None)
    if max_tokens is not None:
        check_size("max_tokens", max_tokens)
    bundle = _load_model(model)
    level = getattr(bundle.tokenizer, "level", None) or "char"
    docs = _load_corpus(corpus, split, max_tokens, level)
    store = StateStore.build(
        bundle,
        docs,
        out,
        names=names or None,
        dtype=dtype,
        engine=engine,
        chunk_tokens=chunk_tokens,
        corpus_name=corpus,
    )
    typer.echo(f"{store}: {', '.join(store.names)}")


def export(
    store: Path = typer.Argument(..., help="State store folder."),
    out: Path = typer.Option(..., help="Output folder."),
    format: str = typer.Option("lstmvis", help="Export format (lstmvis)."),
) -> None:
    """Export a store (LSTMVis project: HDF5 states, word ids, .dict, lstm.yml)."""
    from workbench.store import StateStore

    folder = StateStore.open(store).export(out, format=format)
    typer.echo(f"wrote {folder}")


def import_(
    project: Path = typer.Argument(..., help="LSTMVis project folder (with lstm.yml)."),
    out: Path = typer.Option(..., help="New store folder."),
    dtype: str = typer.Option(
        None, help="float16 or float32 (default: the project's, float64 read as float32)."
    ),
) -> None:
    """Import an LSTMVis project into a state store."""
    from workbench.store import StateStore

    store = StateStore.from_lstmvis(project, out, dtype=dtype)
    typer.echo(f"{store}")


def bench_store(
    parts: str = typer.Option("match,build,umap", help="Comma list of match, build, umap."),
    tokens: int = typer.Option(20_000, help="Python-source tokens for the build case."),
    strategy: str = typer.Option("auto", help="Recorder strategy for the build."),
    pairs: int = typer.Option(3, help="Interleaved (plain forward, build) pairs for the build."),
    quick: bool = typer.Option(False, help="Tiny sizes, for a smoke test."),
) -> None:
    """Store speed: match 1M / 10M x 650, build vs plain forward, UMAP 100k cold / warm."""
    from rich.console import Console
    from rich.table import Table

    from workbench.bench.store import run

    rows = run(tuple(p.strip() for p in parts.split(",")), quick, tokens, strategy, pairs)
    table = Table(title="workbench bench store")
    for col in ("case", "baseline", "baseline time", "time", "ratio", "target", "note"):
        table.add_column(col, justify="left" if col in ("case", "baseline", "note") else "right")
    for r in rows:
        table.add_row(
            r.case,
            r.baseline,
            _fmt(r.baseline_s),
            _fmt(r.measured_s),
            f"{r.ratio:.2f}x",
            r.target,
            r.note,
        )
    Console().print(table)


def _fmt(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.1f} s"
