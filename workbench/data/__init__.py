"""Corpora that install with a package (no downloads), their meta tracks, and user data.

``corpus(name, split)`` returns a list of :class:`Document` for the shipped corpora
``python`` (stdlib source characters), ``sentiment`` (tweets), ``parens`` (LSTMVis language),
``sunspots`` and ``co2`` (one document holding the whole split of the series).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.data._document import DataError, Document

__all__ = [
    "CORPORA",
    "DataError",
    "Document",
    "corpus",
    "corpus_version",
    "from_csv",
    "from_text_folder",
    "split_documents",
]

CORPORA = ("python", "sentiment", "parens", "sunspots", "co2")


def corpus(name: str, split: str = "test", max_tokens: int | None = None) -> list[Document]:
    """Documents of a shipped corpus.

    Parameters
    ----------
    name : str
        One of :data:`CORPORA`.
    split : {"train", "valid", "test"}
        Deterministic split.
    max_tokens : int, optional
        Stop after this many tokens (documents are kept whole, the last one cut).
    """
    if split not in ("train", "valid", "test"):
        raise DataError(f"split must be train, valid or test, got {split!r}")
    if name == "python":
        docs = _python_docs(split, max_tokens)
    elif name == "sentiment":
        from workbench.data import sentiment

        docs = sentiment.load(split)
    elif name == "parens":
        from workbench.data import parens

        docs = parens.generate(
            {"train": 4000, "valid": 400, "test": 400}[split],
            seed={"train": 0, "valid": 1, "test": 2}[split],
        )
    elif name in ("sunspots", "co2"):
        from workbench.data import series

        s = getattr(series, name)()
        lo, hi = {"train": (0, s.cuts[0]), "valid": s.cuts, "test": (s.cuts[1], len(s.values))}[
            split
        ]
        z = s.scaled()[lo:hi].astype(np.float32)
        tokens = [f"{v:.3g}" for v in s.values[lo:hi]]
        docs = [Document(f"{name}/{split}", tokens, {"step": np.arange(lo, hi)}, None, z[:, None])]
    else:
        raise DataError(f"unknown corpus {name!r}; shipped corpora: {', '.join(CORPORA)}")
    return _cap(docs, max_tokens)


def corpus_version(name: str) -> int:
    """Version of a shipped corpus's documents and meta tracks (1 until they first changed).

    Stores built from a corpus are cached under a key holding it, so a store built before
    the tracks changed is not served with tracks missing.
    """
    if name == "python":
        from workbench.data import python_source

        return python_source.TRACKS_VERSION
    return 1


def _cap(docs: list[Document], max_tokens: int | None) -> list[Document]:
    if max_tokens is None:
        return docs
    out, total = [], 0
    for d in docs:
        if total >= max_tokens:
            break
        keep = min(len(d), max_tokens - total)
        if keep < len(d):
            d = Document(
                d.doc_id,
                d.tokens[:keep],
                {k: v[:keep] for k, v in d.meta.items()},
                d.label,
                None if d.values is None else d.values[:keep],
            )
        out.append(d)
        total += keep
    return out


def _python_docs(split: str, max_tokens: int | None) -> list[Document]:
    from workbench.data import python_source as ps

    docs, total = [], 0
    for path in ps.stdlib_files():
        if ps.split_of(path) != split:
            continue
        text = ps.read_source(path)
        if text is None:
            continue
        docs.append(Document(str(path.name), list(text), ps.annotate(text)))
        total += len(text)
        if max_tokens is not None and total >= max_tokens:
            break
    return docs


def from_text_folder(
    path: str | Path, pattern: str = "*.txt", max_tokens: int | None = None, level: str = "char"
) -> list[Document]:
    """Documents from a folder of UTF-8 text files (sorted by name).

    Parameters
    ----------
    path : str or Path
        The folder; files matching ``pattern`` in it and its subfolders are read. Only
        regular files are read, and a symbolic link must point inside the folder.
    pattern : str
        Glob of the files to read.
    max_tokens : int, optional
        Stop after this many tokens (the last document cut; files past it are not read, and a
        file is read only as far as the limit needs).
    level : {"char", "word"}
        One token per character (a char LM's corpus), or words as
        :func:`workbench.data.sentiment.tokenize` splits text (a word classifier's).

    Raises
    ------
    DataError
        If the folder does not exist, holds no matching file, or a file is binary/empty, not
        a regular file (a FIFO, a device), or a link leading out of the folder.
    """
    from workbench.data._text_files import read_text_files

    if level not in ("char", "word"):
        raise DataError(f"level must be 'char' or 'word', got {level!r}")
    if max_tokens is not None and int(max_tokens) < 1:
        raise DataError(f"max_tokens must be >= 1, got {max_tokens}")
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"no folder at {root}: give a folder of text files")
    if level == "char":
        return read_text_files(root, pattern, max_tokens, list)
    from workbench.data.sentiment import tokenize

    return read_text_files(root, pattern, max_tokens, tokenize)


def from_csv(
    path: str | Path, text: str = "text", label: str | None = "label"
) -> tuple[list[Document], list[str]]:
    """Word documents from a CSV with a text column and (optionally) a label column.

    Returns
    -------
    docs : list of Document
    labels : list of str
        Class names, sorted; ``Document.label`` indexes into it.
    """
    import pandas as pd

    from workbench.data.sentiment import tokenize

    path = Path(path)
    if not path.exists():
        raise DataError(f"no CSV file at {path}")
    try:
        frame = pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"{path} is not a readable CSV ({exc})") from None
    missing = [c for c in (text, label) if c is not None and c not in frame]
    if missing:
        raise DataError(f"{path} has no column(s) {missing}; columns are {list(frame)}")
    labels = sorted(frame[label].astype(str).unique()) if label else []
    docs = []
    for i, row in frame.iterrows():
        tokens = tokenize(str(row[text]))
        if not tokens:
            continue
        y = labels.index(str(row[label])) if label else None
        docs.append(Document(f"{path.stem}/{i}", tokens, {}, y))
    if not docs:
        raise DataError(f"{path}: no row with text in column {text!r}")
    return docs, labels


def split_documents(docs: list[Document], split: str) -> list[Document]:
    """A user's documents cut deterministically into train / valid / test (80/10/10).

    With three documents or more, whole documents go to one split each, ordered by a hash of
    their ``doc_id`` (at least one document in valid and in test). With fewer, every document
    is cut by position (first 80% train, next 10% valid, last 10% test).
    """
    import hashlib

    if split not in ("train", "valid", "test"):
        raise DataError(f"split must be train, valid or test, got {split!r}")
    if not docs:
        raise DataError("no documents to split")
    if len(docs) >= 3:
        ranked = sorted(docs, key=lambda d: hashlib.sha1(d.doc_id.encode()).hexdigest())
        n_small = max(1, round(0.1 * len(ranked)))
        parts = {
            "test": ranked[:n_small],
            "valid": ranked[n_small : 2 * n_small],
            "train": ranked[2 * n_small :],
        }
        return sorted(parts[split], key=lambda d: d.doc_id)
    out = []
    for d in docs:
        a, b = int(len(d) * 0.8), int(len(d) * 0.9)
        lo, hi = {"train": (0, a), "valid": (a, b), "test": (b, len(d))}[split]
        if hi - lo < 2:
            raise DataError(f"{d.doc_id} is too short to split into train/valid/test")
        out.append(
            Document(
                f"{d.doc_id}[{lo}:{hi}]",
                d.tokens[lo:hi],
                {k: v[lo:hi] for k, v in d.meta.items()},
                d.label,
                None if d.values is None else d.values[lo:hi],
            )
        )
    return out
