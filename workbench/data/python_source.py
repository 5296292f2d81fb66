"""Characters of real Python source: the interpreter's own standard library.

Each character is annotated with Python's :mod:`tokenize` (meta tracks, LSTMVis style): inside
a string literal, inside a comment, bracket nesting depth, indentation level, column, start of
a line, inside a keyword / name / number. These are the ground truth for finding
interpretable cells (Karpathy et al. 2015).
"""

from __future__ import annotations

import hashlib
import io
import keyword
import sysconfig
import tokenize
from pathlib import Path

import numpy as np

TRACKS = (
    "in_string",
    "in_comment",
    "depth",
    "indent",
    "column",
    "line_start",
    "in_keyword",
    "in_name",
    "in_number",
)
_OPEN, _CLOSE = "([{", ")]}"


def stdlib_files() -> list[Path]:
    """The standard library's ``.py`` files in a fixed order (no site-packages, no tests)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if rel[0] in ("site-packages", "test", "idlelib", "lib2to3", "tkinter", "turtledemo"):
            continue
        if any(p in ("tests", "test") for p in rel[:-1]):
            continue
        files.append(path)
    return files


def split_of(path: Path) -> str:
    """Fixed train/valid/test split by file (80/10/10, from a hash of the relative path)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    key = str(path.relative_to(root)).encode()
    bucket = int(hashlib.sha1(key).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else ("valid" if bucket == 1 else "train")


def read_source(path: Path) -> str | None:
    """A file's text if it is UTF-8 and tokenizes, else None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    return text if text.strip() else None


def annotate(text: str) -> dict[str, np.ndarray]:
    """Per-character meta tracks of Python source.

    Parameters
    ----------
    text : str
        Python source (it may be a fragment; tokenizing stops quietly at an error and the
        rest keeps the tracks derived from the text alone).

    Returns
    -------
    dict of str to np.ndarray
        One ``[time]`` array per name in :data:`TRACKS` (int8/int16).
    """
    n = len(text)
    tracks = {name: np.zeros(n, dtype=np.int16) for name in TRACKS}
    line_offsets = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            line_offsets.append(i + 1)

    def offset(row: int, col: int) -> int:
        return line_offsets[row - 1] + col if row - 1 < len(line_offsets) else n

    kinds = {
        tokenize.STRING: "in_string",
        tokenize.COMMENT: "in_comment",
        tokenize.NUMBER: "in_number",
    }
    fstring_types = {
        getattr(tokenize, t)
        for t in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
        if hasattr(tokenize, t)
    }
    depth = np.zeros(n + 1, dtype=np.int16)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            start, end = offset(*tok.start), offset(*tok.end)
            if tok.type in kinds:
                tracks[kinds[tok.type]][start:end] = 1
            elif tok.type in fstring_types:
                tracks["in_string"][start:end] = 1
            elif tok.type == tokenize.NAME:
                name = "in_keyword" if keyword.iskeyword(tok.string) else "in_name"
                tracks[name][start:end] = 1
            elif tok.type == tokenize.OP and tok.string in _OPEN:
                depth[end:] += 1
            elif tok.type == tokenize.OP and tok.string in _CLOSE:
                depth[start:] -= 1
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    tracks["depth"] = np.clip(depth[:n], 0, None)
    for start in line_offsets:
        end = text.find("\n", start)
        end = n if end < 0 else end + 1
        line = text[start:end]
        spaces = len(line) - len(line.lstrip(" "))
        tracks["indent"][start:end] = spaces // 4
        tracks["column"][start:end] = np.arange(end - start)
        if start < n:
            tracks["line_start"][start] = 1
    return tracks
