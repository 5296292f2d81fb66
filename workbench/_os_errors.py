"""One line for an OSError a user can cause: what failed, on which path, and the fix."""

from __future__ import annotations

_OS_HINTS = {
    "ENOSPC": "the disk is full: free some space or pick a path on another disk",
    "EDQUOT": "the disk quota is used up: free some space or pick a path on another disk",
    "EFBIG": "a file outgrew the size limit (ulimit -f, or the file system's): raise it",
    "EROFS": "the file system is read-only: pick a writable path",
    "EACCES": "pick a writable path, or fix its permissions",
    "EPERM": "pick a writable path, or fix its permissions (read-only, immutable?)",
    "EEXIST": "it exists already: pick a new path",
    "ENOTEMPTY": "the folder is not empty: pick a new path",
}


def os_error_line(exc: OSError) -> str:
    """One line for an OSError: what failed, on which path, and the fix where one is known."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    what = exc.strerror or str(exc) or type(exc).__name__
    line = f"{what} ({name})" if name else what
    if where:
        line += f" on {where}"
    hint = _OS_HINTS.get(name)
    return f"{line}; {hint}" if hint else line
