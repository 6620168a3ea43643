"""queuetool: inspect, repair and reshape gearmand's persistent job queue.

The library API is plain functions over a `QueueStore`; the CLI in `queuetool.cli`
is a thin layer on top of it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import QueuetoolError
from .priority import Priority
from .table.check import CheckResult, check
from .table.filters import JobFilter
from .table.jobs import list_jobs
from .table.report import Report, report
from .table.store import QueueStore

__all__ = [
    "CheckResult",
    "JobFilter",
    "Priority",
    "QueueStore",
    "QueuetoolError",
    "Report",
    "__version__",
    "check",
    "list_jobs",
    "report",
]
