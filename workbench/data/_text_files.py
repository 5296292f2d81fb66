"""Reading a folder of text files safely: regular files inside the folder, bounded reads."""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Callable
from pathlib import Path

from workbench.data._document import DataError, Document

_FIRST_READ = 1 << 16  # bytes read first from a file when a token limit applies


def read_text_files(
    root: Path, pattern: str, max_tokens: int | None, tokenize: Callable[[str], list[str]]
) -> list[Document]:
    """Documents of the files under ``root`` matching ``pattern``, sorted by name.

    Each file is checked before it is read: it must be a regular file (a FIFO would block
    the read forever) and, when reached through a symbolic link, lie inside ``root``.
    With ``max_tokens`` the files are read only as far as the limit needs.

    Raises
    ------
    DataError
        For no matching file, a file that is not regular, a link leading out of ``root``,
        a binary, non-UTF-8 or empty file.
    """
    files = sorted(root.rglob(pattern))
    if not files:
        raise DataError(f"{root} holds no file matching {pattern!r}")
    inside = root.resolve()
    docs: list[Document] = []
    total = 0
    for f in files:
        if max_tokens is not None and total >= max_tokens:
            break
        try:
            target = f.resolve(strict=True)
        except (OSError, RuntimeError):  # a dangling link or a loop of links
            raise DataError(
                f"{f} is a link that leads nowhere (dangling, or a loop); remove it"
            ) from None
        if target != inside and inside not in target.parents:
            raise DataError(
                f"{f} links to {target}, outside the corpus folder {root}; "
                "copy the file into the folder or remove the link"
            )
        left = None if max_tokens is None else max_tokens - total
        tokens = _read_tokens(f, left, tokenize)
        if tokens is None:  # a folder whose name matches the pattern: its files are listed
            continue
        docs.append(Document(str(f.relative_to(root)), tokens, {}))
        total += len(tokens)
    return docs


def _read_tokens(f: Path, left: int | None, tokenize) -> list[str] | None:
    """Tokens of file ``f`` (at most ``left``); None for a directory."""
    nonblock = getattr(os, "O_NONBLOCK", 0)  # POSIX: opening a FIFO must not wait for a writer
    try:
        fd = os.open(f, os.O_RDONLY | nonblock)
    except IsADirectoryError:
        return None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if stat.S_ISDIR(mode):
            return None
        if not stat.S_ISREG(mode):
            raise DataError(
                f"{f} is not a regular file (it is a {_kind(mode)}); a corpus folder may hold "
                "only regular text files: move it out of the folder"
            )
        if nonblock:
            os.set_blocking(handle.fileno(), True)
        decoder = codecs.getincrementaldecoder("utf-8")()
        text, size, seen = "", _FIRST_READ, 0
        while True:
            raw = handle.read() if left is None else handle.read(size)
            end = left is None or len(raw) < size
            start = seen - len(decoder.getstate()[0])  # byte offset of what is decoded now
            seen += len(raw)
            if b"\x00" in raw:
                raise DataError(
                    f"{f} looks binary (it contains NUL bytes); remove it or convert it"
                )
            try:
                text += decoder.decode(raw, final=end)
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{f} is not UTF-8 text ({exc.reason} at byte {start + exc.start})"
                ) from None
            tokens = tokenize(text)
            if end or len(tokens) > left:  # past the limit: the kept tokens are whole
                break
            size *= 2
    if not text.strip():
        raise DataError(f"{f} is empty")
    return tokens if left is None else tokens[:left]


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"
