"""queuetool: inspect, repair and reshape gearmand's persistent job queue.

The library API is plain functions over a `QueueStore` that return result objects;
the command line (`queuetool.cli`) only parses, calls one of them and renders:

    from queuetool import JobFilter, Priority, Reprioritise, apply_edits, open_store, report

    store = open_store("sqlite:////var/lib/gearman/queue.db")
    print(report(store).total().count)
    edit = Reprioritise(JobFilter(functions=("copyFiles*",)), Priority.HIGH)
    result = apply_edits(store, [edit])  # snapshot first; refused while gearmand runs

The names are imported on first use (PEP 562): `import queuetool` stays cheap (no
SQLAlchemy), which the command line's start-up relies on.
"""

from __future__ import annotations

import importlib

# typing.TYPE_CHECKING without importing typing: the `queuetool` command's Ctrl-C guard
# (queuetool.__main__) is in place only once this package is imported, so it stays tiny.
TYPE_CHECKING = False

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    # the queue table
    "QueueStore": ".table.store",
    "open_store": ".table.store",
    "JobFilter": ".table.filters",
    "Report": ".table.report",
    "report": ".table.report",
    "CheckResult": ".table.check",
    "check": ".table.check",
    "list_jobs": ".table.jobs",
    # the daemon
    "Status": ".daemon.status",
    "status": ".daemon.status",
    "StartResult": ".daemon.start",
    "StopResult": ".daemon.stop",
    "start": ".daemon.start",
    "stop": ".daemon.stop",
    # changes with undo
    "EditResult": ".changes.apply",
    "Plan": ".changes.dryrun",
    "Purge": ".changes.kinds",
    "Repair": ".changes.kinds",
    "Reprioritise": ".changes.kinds",
    "Reschedule": ".changes.kinds",
    "apply_edits": ".changes.apply",
    "plan": ".changes.dryrun",
    "load_plan": ".changes.planfile",
    "EditRequest": ".changes.prepare",
    "RestoreRequest": ".changes.prepare",
    "prepare_edits": ".changes.prepare",
    "prepare_restore": ".changes.prepare",
    "restore_dry_run": ".changes.prepare",
    "SnapshotInfo": ".changes.snapshot",
    "list_snapshots": ".changes.snapshot",
    "take": ".changes.snapshot",
    "verify": ".changes.snapshot",
    "RestoreResult": ".changes.restore",
    "restore": ".changes.restore",
    "WindowResult": ".changes.window",
    "edit_window": ".changes.window",
    "restore_window": ".changes.window",
    # migration
    "MigrateOptions": ".migrate.copy",
    "MigrationResult": ".migrate.copy",
    "migrate_queue": ".migrate.window",
    # shared
    "QueuetoolError": ".errors",
    "Priority": ".priority",
    "when": ".timeparse",
}

__all__ = [
    "CheckResult",
    "EditRequest",
    "EditResult",
    "JobFilter",
    "MigrateOptions",
    "MigrationResult",
    "Plan",
    "Priority",
    "Purge",
    "QueueStore",
    "QueuetoolError",
    "Repair",
    "Report",
    "Reprioritise",
    "Reschedule",
    "RestoreRequest",
    "RestoreResult",
    "SnapshotInfo",
    "StartResult",
    "Status",
    "StopResult",
    "WindowResult",
    "__version__",
    "apply_edits",
    "check",
    "edit_window",
    "list_jobs",
    "list_snapshots",
    "load_plan",
    "migrate_queue",
    "open_store",
    "plan",
    "prepare_edits",
    "prepare_restore",
    "report",
    "restore",
    "restore_dry_run",
    "restore_window",
    "start",
    "status",
    "stop",
    "take",
    "verify",
    "when",
]

if TYPE_CHECKING:
    from typing import Any

    from .changes.apply import EditResult, apply_edits
    from .changes.dryrun import Plan, plan
    from .changes.kinds import Purge, Repair, Reprioritise, Reschedule
    from .changes.planfile import load_plan
    from .changes.prepare import (
        EditRequest,
        RestoreRequest,
        prepare_edits,
        prepare_restore,
        restore_dry_run,
    )
    from .changes.restore import RestoreResult, restore
    from .changes.snapshot import SnapshotInfo, list_snapshots, take, verify
    from .changes.window import WindowResult, edit_window, restore_window
    from .daemon.start import StartResult, start
    from .daemon.status import Status, status
    from .daemon.stop import StopResult, stop
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
    """Import a public name's module on first use and keep the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
