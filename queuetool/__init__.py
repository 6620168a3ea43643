"""queuetool: inspect, repair and reshape gearmand's persistent job queue.

The library API is plain functions over a `QueueStore`; the CLI in `queuetool.cli`
is a thin layer on top of it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .check import CheckResult, check  # noqa: E402
from .errors import QueuetoolError  # noqa: E402
from .filters import JobFilter  # noqa: E402
from .jobs import list_jobs  # noqa: E402
from .priority import Priority  # noqa: E402
from .report import Report, report  # noqa: E402
from .store import QueueStore  # noqa: E402

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
