"""Self-contained HTML reports: :func:`report` writes one file that works offline.

``workbench.report`` is both this package and the function: calling it writes a report.
"""

import sys
import types
from typing import Any

from workbench.report._analysis import matches_section, perturbation_section
from workbench.report._builder import ReportResult, report
from workbench.report._memory_section import memory_section

__all__ = [
    "ReportResult",
    "matches_section",
    "memory_section",
    "perturbation_section",
    "report",
]


class _CallableModule(types.ModuleType):
    """Calling the package calls :func:`report`."""

    def __call__(self, *args: Any, **kwargs: Any) -> ReportResult:
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
