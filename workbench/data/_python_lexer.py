"""The pieces of Python's lexical grammar the meta tracks need beyond :mod:`tokenize`.

- :func:`string_kind` and :func:`fstring_fields`: a string token's quotes and, in an
  f-string, the replacement fields (``{expr!r:spec}``), which are code, not literal text
  (Python 3.11's :mod:`tokenize` returns a whole f-string as one ``STRING`` token).
- :func:`scan`: a small lexer for what :mod:`tokenize` could not read (a file with an
  indentation error, an unterminated string): strings, comments and brackets only.
"""

from __future__ import annotations

from collections.abc import Iterator

_PREFIX = set("rRbBfFuU")
_OPEN, _CLOSE = "([{", ")]}"


def string_kind(token: str) -> tuple[str, bool]:
    """``(prefix, triple)`` of a string token such as ``rb'''x'''`` (``("rb", True)``)."""
    i = 0
    while i < len(token) and token[i] in _PREFIX:
        i += 1
    return token[:i], token[i : i + 3] in ('"""', "'''")


def fstring_fields(token: str) -> list[tuple[int, int]]:
    """``[start, end)`` offsets of the replacement fields of an f-string token.

    Each field runs from its ``{`` to its matching ``}`` (a format spec's nested fields are
    inside it); doubled braces ``{{`` / ``}}`` are literal text. Empty when ``token`` is not an
    f-string.
    """
    prefix, triple = string_kind(token)
    if "f" not in prefix.lower():
        return []
    q = 3 if triple else 1
    body_start, body_end = len(prefix) + q, max(len(prefix) + q, len(token) - q)
    fields, i = [], body_start
    while i < body_end:
        ch = token[i]
        if ch in "{}" and token[i + 1 : i + 2] == ch:  # {{ or }}: a literal brace
            i += 2
        elif ch == "{":
            end = _field_end(token, i, body_end)
            fields.append((i, end))
            i = end
        else:
            i += 1
    return fields


def _field_end(token: str, start: int, limit: int) -> int:
    """End (exclusive) of the replacement field opening at ``token[start] == "{"``."""
    depth, i = 0, start
    while i < limit:
        ch = token[i]
        if ch in "'\"":  # a string inside the expression (a different quote in 3.11)
            close = token.find(ch, i + 1, limit)
            i = limit if close < 0 else close + 1
            continue
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return limit


def scan(text: str, start: int = 0) -> Iterator[tuple[str, int, int]]:
    """Strings, comments and brackets of ``text[start:]``, for text :mod:`tokenize` refuses.

    Yields
    ------
    (kind, a, b) : tuple of str, int, int
        ``kind`` is ``"string"``, ``"comment"`` or ``"op"`` (one bracket character), over
        ``text[a:b]``. An unterminated short string ends at its line's end, an
        unterminated triple-quoted string at the end of the text.
    """
    n, i = len(text), start
    while i < n:
        ch = text[i]
        if ch == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
            yield "comment", i, end
            i = end
        elif ch in "'\"":
            a = i
            while a > start and text[a - 1] in _PREFIX and i - a < 2:
                a -= 1
            if a > start and (text[a - 1].isalnum() or text[a - 1] == "_"):
                a = i  # letters of a name before the quote, not a prefix
            end = _string_end(text, i)
            yield "string", a, end
            i = end
        elif ch in _OPEN or ch in _CLOSE:
            yield "op", i, i + 1
            i += 1
        elif ch.isalnum() or ch == "_":  # a name (a prefix is found from its quote)
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
        else:
            i += 1


def _string_end(text: str, i: int) -> int:
    """End (exclusive) of the string whose opening quote is at ``text[i]``."""
    quote = text[i] * 3 if text[i : i + 3] in ('"""', "'''") else text[i]
    j, n = i + len(quote), len(text)
    while j < n:
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if len(quote) == 1 and ch == "\n":
            return j
        if text.startswith(quote, j):
            return j + len(quote)
        j += 1
    return n
