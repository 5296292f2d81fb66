"""Optional extras: the app, widgets and some methods need packages the lean core does not.

``pip install 'rnn-workbench[app]'`` (or ``[widgets]``, ``[shap]``, ``[lime]``, ``[dask]``,
``[umap]``, ``[all]``) installs them; without one, the feature that needs it raises
:class:`MissingExtraError`, one line naming the extra to install.
"""

from __future__ import annotations

import importlib.util

#: The distribution name on PyPI (the import package is ``workbench``).
DISTRIBUTION = "rnn-workbench"

#: extra -> (what it enables, the modules it installs)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "app": ("the web app (workbench serve)", ("dash", "waitress")),
    "widgets": ("the Jupyter widgets", ("anywidget",)),
    "shap": ("the shap explanation method", ("shap",)),
    "lime": ("the lime explanation method", ("lime",)),
    "dask": ("building a store on a dask cluster (engine='dask')", ("distributed",)),
    "umap": ("the UMAP projection", ("umap",)),
}


class MissingExtraError(ImportError, ValueError):
    """An optional package is missing; the message names the extra that installs it.

    Also a ``ValueError``, so every place that shows a user's mistake as one line (the command
    line, the app's error panels) shows this one the same way.
    """


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(extra: str) -> None:
    """Check that the modules of ``extra`` are installed (without importing them).

    Parameters
    ----------
    extra : str
        A key of :data:`EXTRAS`.

    Raises
    ------
    MissingExtraError
        If one of its modules is not installed; the message names the extra to install.
    """
    what, modules = EXTRAS[extra]
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingExtraError(
                f"{what} needs {name}, which is not installed: {install_hint(extra)}"
            )
