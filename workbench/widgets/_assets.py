"""The widgets' ESM and CSS (shipped in the wheel) and plotly.js from the installed package."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def static(name: str) -> str:
    """Text of ``workbench/widgets/static/<name>``."""
    return resources.files("workbench.widgets").joinpath("static", name).read_text("utf-8")


@cache
def plotly_js() -> bytes:
    """plotly.min.js of the installed ``plotly`` package, UTF-8 (sent once per page)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")
