"""Characters of real Python source: the interpreter's own standard library.

Each character is annotated with Python's :mod:`tokenize` (meta tracks, LSTMVis style): inside
a string literal, a triple-quoted string, a short string's literal text, a comment, or code;
bracket nesting depth (any kind and per kind), indentation level, column, start of a line,
inside a keyword / name / number (see :func:`annotate`). These are the ground truth for finding
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

from workbench.data._python_lexer import fstring_fields, scan, string_kind

# flags (bool) and levels (int16); every character is in exactly one of in_docstring,
# in_literal, in_comment and is_code
FLAGS = (
    "in_string",
    "in_docstring",
    "in_literal",
    "in_comment",
    "is_code",
    "line_start",
    "in_keyword",
    "in_name",
    "in_number",
)
LEVELS = ("depth", "depth_paren", "depth_square", "depth_curly", "indent", "column")
TRACKS = (
    "in_string",
    "in_docstring",
    "in_literal",
    "in_comment",
    "is_code",
    "depth",
    "depth_paren",
    "depth_square",
    "depth_curly",
    "indent",
    "column",
    "line_start",
    "in_keyword",
    "in_name",
    "in_number",
)
# bump when the tracks or how they are computed change: cached demo stores are keyed on it
TRACKS_VERSION = 2
_DEPTH_OF = {"(": "depth_paren", ")": "depth_paren", "[": "depth_square", "]": "depth_square"}
_DEPTH_OF.update({"{": "depth_curly", "}": "depth_curly"})


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

    - ``in_string``: inside any string literal, quotes and prefix included (an f-string's
      replacement fields too: LSTMVis's "inside the quotes").
    - ``in_docstring``: inside a triple-quoted string (docstrings, mostly).
    - ``in_literal``: inside a short (not triple-quoted) string, except an f-string's
      replacement fields ``{expr}``, which are code.
    - ``in_comment``: a ``#`` comment; ``is_code``: none of the three above (whitespace and
      newlines between tokens included). Each character is in exactly one of
      ``in_docstring``, ``in_literal``, ``in_comment``, ``is_code``.
    - ``depth``: bracket nesting depth (any kind; brackets inside strings do not count) and
      ``depth_paren`` / ``depth_square`` / ``depth_curly`` per kind. An opening bracket is
      counted from the character after it, a closing one from itself.
    - ``indent`` (4-space levels), ``column``, ``line_start``, ``in_keyword``, ``in_name``,
      ``in_number``.

    Parameters
    ----------
    text : str
        Python source. It may be a fragment or not tokenize: from where :mod:`tokenize`
        stops, strings, comments and brackets come from a small lexer of their own
        (:func:`workbench.data._python_lexer.scan`; names, keywords and numbers stay off).

    Returns
    -------
    dict of str to np.ndarray
        One ``[time]`` array per name in :data:`TRACKS`: bool for :data:`FLAGS`, int16 for
        :data:`LEVELS`.
    """
    n = len(text)
    tracks = {name: np.zeros(n, dtype=bool) for name in FLAGS}
    line_offsets = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            line_offsets.append(i + 1)

    def offset(row: int, col: int) -> int:
        return line_offsets[row - 1] + col if row - 1 < len(line_offsets) else n

    delta = {name: np.zeros(n + 1, dtype=np.int32) for name in ("depth", *_DEPTH_OF.values())}

    def bracket(ch: str, start: int, end: int) -> None:
        at, step = (end, 1) if ch in "([{" else (start, -1)
        delta["depth"][at] += step
        delta[_DEPTH_OF[ch]][at] += step

    done = 0  # end of the text tokenize has read
    fstring_start_type = getattr(tokenize, "FSTRING_START", -1)  # Python >= 3.12:
    fstring_end_type = getattr(tokenize, "FSTRING_END", -1)  # an f-string is many tokens
    open_fstrings, fstring_start = 0, 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            start, end = offset(*tok.start), offset(*tok.end)
            if tok.type == fstring_start_type:
                if open_fstrings == 0:
                    fstring_start = start
                open_fstrings += 1
            elif tok.type == fstring_end_type:
                open_fstrings -= 1
                if open_fstrings == 0:
                    _mark_string(tracks, text, fstring_start, end)
            elif open_fstrings:  # inside an f-string: its fields are read from its text
                pass
            elif tok.type == tokenize.STRING:
                _mark_string(tracks, text, start, end)
            elif tok.type == tokenize.COMMENT:
                tracks["in_comment"][start:end] = True
            elif tok.type == tokenize.NUMBER:
                tracks["in_number"][start:end] = True
            elif tok.type == tokenize.NAME:
                name = "in_keyword" if keyword.iskeyword(tok.string) else "in_name"
                tracks[name][start:end] = True
            elif tok.type == tokenize.OP and tok.string in _DEPTH_OF:
                bracket(tok.string, start, end)
            done = max(done, end)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        for kind, a, b in scan(text, done):
            if kind == "string":
                _mark_string(tracks, text, a, b)
            elif kind == "comment":
                tracks["in_comment"][a:b] = True
            else:
                bracket(text[a], a, b)
    tracks["is_code"] = ~(tracks["in_docstring"] | tracks["in_literal"] | tracks["in_comment"])
    for name, d in delta.items():
        tracks[name] = np.clip(np.cumsum(d[:n]), 0, None).astype(np.int16)
    for name in ("indent", "column"):
        tracks[name] = np.zeros(n, dtype=np.int16)
    for start in line_offsets:
        end = text.find("\n", start)
        end = n if end < 0 else end + 1
        line = text[start:end]
        spaces = len(line) - len(line.lstrip(" "))
        tracks["indent"][start:end] = spaces // 4
        tracks["column"][start:end] = np.arange(end - start)
        if start < n:
            tracks["line_start"][start] = True
    return {name: tracks[name] for name in TRACKS}


def _mark_string(tracks: dict, text: str, start: int, end: int) -> None:
    """Mark the string token ``text[start:end]`` in the string tracks."""
    token = text[start:end]
    tracks["in_string"][start:end] = True
    _, triple = string_kind(token)
    if triple:
        tracks["in_docstring"][start:end] = True
        return
    tracks["in_literal"][start:end] = True
    for a, b in fstring_fields(token):
        tracks["in_literal"][start + a : start + b] = False
