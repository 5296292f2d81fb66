"""Self-contained HTML reports: :func:`report` writes one file that works offline.

:func:`report` is also exported as ``workbench.report``; this package is ``workbench.reports``
(with the sections :func:`matches_section`, :func:`perturbation_section`,
:func:`memory_section`, :func:`comparison_section` and :func:`attention_section`).
"""

from workbench.reports._analysis import matches_section, perturbation_section
from workbench.reports._attention_section import attention_section
from workbench.reports._builder import ReportResult, report
from workbench.reports._compare import comparison_section
from workbench.reports._memory_section import memory_section

__all__ = [
    "ReportResult",
    "attention_section",
    "comparison_section",
    "matches_section",
    "memory_section",
    "perturbation_section",
    "report",
]
