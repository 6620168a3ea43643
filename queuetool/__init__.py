"""queuetool: inspect, repair and reshape gearmand's persistent job queue.

The library API is plain functions over a `QueueStore` that return result objects;
the CLI in `queuetool.cli` only parses, calls one of them and renders the result:

    from queuetool import QueueStore, report
    store = QueueStore("sqlite:////var/lib/gearman/queue.db")
    print(report(store).total().count)

The names below are imported on first use (PEP 562): `import queuetool` stays cheap
(no SQLAlchemy), which the command line's start-up relies on.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "QueuetoolError": ".errors",
    "Priority": ".priority",
    "CheckResult": ".table.check",
    "check": ".table.check",
    "JobFilter": ".table.filters",
    "list_jobs": ".table.jobs",
    "Report": ".table.report",
    "report": ".table.report",
    "QueueStore": ".table.store",
    "open_store": ".table.store",
    "load_plan": ".changes.planfile",
    "EditRequest": ".changes.prepare",
    "prepare_edits": ".changes.prepare",
    "RestoreRequest": ".changes.prepare",
    "prepare_restore": ".changes.prepare",
    "when": ".timeparse",
    "Status": ".daemon.status",
    "MigrateOptions": ".migrate.copy",
    "MigrationResult": ".migrate.copy",
    "migrate_queue": ".migrate.window",
    "status": ".daemon.status",
}

__all__ = [
    "CheckResult",
    "EditRequest",
    "JobFilter",
    "MigrateOptions",
    "MigrationResult",
    "Priority",
    "QueueStore",
    "QueuetoolError",
    "Report",
    "RestoreRequest",
    "Status",
    "__version__",
    "check",
    "list_jobs",
    "load_plan",
    "migrate_queue",
    "open_store",
    "prepare_edits",
    "prepare_restore",
    "report",
    "status",
    "when",
]

if TYPE_CHECKING:
    from .changes.planfile import load_plan
    from .changes.prepare import EditRequest, RestoreRequest, prepare_edits, prepare_restore
    from .daemon.status import Status, status
    from .errors import QueuetoolError
    from .migrate.copy import MigrateOptions, MigrationResult
    from .migrate.window import migrate_queue
    from .priority import Priority
    from .table.check import CheckResult, check
    from .table.filters import JobFilter
    from .table.jobs import list_jobs
    from .table.report import Report, report
    from .table.store import QueueStore, open_store
    from .timeparse import when


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and cache the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
