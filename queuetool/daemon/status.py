"""Is the queue's gearmand up, and does it hold what its table holds?

`status()` asks the daemon (pid, version, per function its queued/running/workers and
per priority its `prioritystatus`) and sets that beside the table's rows per function
and priority, so a difference shows where the two disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import DaemonUnreachable
from ..priority import label
from ..table.report import report
from ..table.store import QueueStore
from ..timeparse import format_epoch
from .admin import AdminClient, version_tuple
from .discover import DaemonInfo
from .process import uptime
from .stop import find_daemon
from .version import FIXED_IN


@dataclass
class DaemonState:
    """What the daemon said about itself (`up` False: it did not answer, or no address)."""

    up: bool = False
    pid: int | None = None
    version: str | None = None
    uptime_seconds: float | None = None
    error: str | None = None  # why it did not answer (it may have answered in part)

    def as_dict(self) -> dict[str, Any]:
        """The keys `status --format json` has always printed, only those it knew."""
        out: dict[str, Any] = {"up": self.up, "pid": self.pid}
        if self.up:
            out["version"] = self.version
        if self.error is not None:
            out["error"] = self.error
        if self.up and self.pid:
            out["uptime_seconds"] = self.uptime_seconds
        return out


@dataclass
class PriorityDifference:
    """One priority of a function whose table count is not the daemon's."""

    priority: str
    table: int
    daemon: int

    def as_dict(self) -> dict[str, Any]:
        """priority, table and daemon, as printed."""
        return {"priority": self.priority, "table": self.table, "daemon": self.daemon}


@dataclass
class FunctionLine:
    """One function: the daemon's counts beside the table's rows."""

    function: str
    daemon_queued: int
    running: int
    workers: int
    table_rows: int
    difference: int = 0  # table rows - daemon queued (0 when the daemon is down)
    priority_differences: list[PriorityDifference] = field(default_factory=list)
    # Due jobs gearmand before 2.0.0 hands to no worker, and the last time above them.
    blocked: int = 0
    blocked_until: int | None = None

    def record(self, with_blocked: bool = False) -> dict[str, Any]:
        """The row as `status` prints it (priority differences as dicts); the blocked
        columns when any function of the queue has blocked jobs."""
        out: dict[str, Any] = {
            "function": self.function,
            "daemon queued": self.daemon_queued,
            "running": self.running,
            "workers": self.workers,
            "table rows": self.table_rows,
            "difference": self.difference,
            "priority differences": [d.as_dict() for d in self.priority_differences],
        }
        if with_blocked:
            out["blocked"] = self.blocked
            out["blocked until"] = format_epoch(self.blocked_until) if self.blocked else ""
        return out


@dataclass
class Status:
    """The daemon, its functions beside the table, and what that means."""

    daemon: DaemonState
    functions: list[FunctionLine]
    address: str | None  # the admin address asked (None: none was known)
    found: DaemonInfo | None  # the local gearmand whose command line names this queue

    @property
    def held_in_memory(self) -> bool:
        """The daemon runs with --store-queue-on-shutdown: its table is not its queue meanwhile."""
        return bool(self.daemon.up and self.found and self.found.options.store_queue_on_shutdown)

    @property
    def blocked(self) -> bool:
        """Some function has due jobs that gearmand before 2.0.0 blocks."""
        return any(line.blocked for line in self.functions)

    @property
    def differs(self) -> bool:
        """The table and the daemon disagree on some function or priority."""
        return any(line.difference or line.priority_differences for line in self.functions)


def status(
    store: QueueStore,
    address: str | None = None,
    *,
    found: DaemonInfo | None = None,
    timeout: float = 5.0,
) -> Status:
    """Ask the queue's gearmand at `address` (default: the address of the local daemon
    found for this queue) and compare its counts with the table's.

    `found` is that local daemon when the caller has looked it up already. A daemon that
    does not answer is reported as down with the reason, not raised.
    """
    if found is None:
        found = find_daemon(store, address)
    if address is None and found is not None:
        address = str(found.options.address)
    daemon = DaemonState(pid=found.pid if found else None)
    funcs: dict[str, tuple[int, int, int]] = {}  # function -> queued, running, workers
    queued: dict[tuple[str, int], int] = {}  # the daemon's (function, priority) counts
    if address:
        try:
            with AdminClient(address, timeout) as client:
                pid, version = client.getpid(), client.version()
                daemon.up, daemon.pid, daemon.version = True, pid, version
                for s in client.status():
                    funcs[s.function] = (s.total, s.running, s.workers)
                for cell in client.priority_status():
                    for priority, count in enumerate(cell.counts):
                        queued[(cell.function, priority)] = count
        except DaemonUnreachable as exc:
            daemon.error = str(exc)
    if daemon.up and daemon.pid:
        daemon.uptime_seconds = uptime(daemon.pid)
    # gearmand 1.1.x's rules (also when the version is unknown): lower lists can be blocked.
    rules = daemon.version is None or version_tuple(daemon.version) < FIXED_IN
    rep = report(store, blocking=rules)
    rows: dict[str, int] = {}
    cells: dict[tuple[str, int], int] = {}
    for g in rep.by("function,priority"):
        name = g.function or ""
        rows[name] = rows.get(name, 0) + g.count
        cells[(name, int(g.priority or 0))] = g.count
    blocked = {g.function or "": (g.blocked, g.blocked_until) for g in rep.by("function")}
    lines = []
    for name in sorted(set(funcs) | set(rows)):
        on_daemon, running, workers = funcs.get(name, (0, 0, 0))
        line = FunctionLine(name, on_daemon, running, workers, rows.get(name, 0))
        line.blocked, line.blocked_until = blocked.get(name, (0, None))
        if daemon.up:
            line.difference = line.table_rows - line.daemon_queued
            line.priority_differences = priority_differences(name, cells, queued, running)
        lines.append(line)
    return Status(daemon, lines, address, found)


def priority_differences(
    function: str,
    table: dict[tuple[str, int], int],
    daemon: dict[tuple[str, int], int],
    running: int,
) -> list[PriorityDifference]:
    """Every priority of `function` whose table count is not the daemon's.

    Equal totals prove nothing (a priority edited behind the daemon's back keeps them).
    A job a worker holds is still a row but no longer in `prioritystatus`: when every
    difference is rows the daemon lacks, adding up to its running jobs, nothing differs.
    """
    priorities = sorted({p for f, p in [*table, *daemon] if f == function})
    diffs = [
        (p, table.get((function, p), 0), daemon.get((function, p), 0))
        for p in priorities
        if table.get((function, p), 0) != daemon.get((function, p), 0)
    ]
    if diffs and all(t > d for _, t, d in diffs) and sum(t - d for _, t, d in diffs) == running:
        return []
    return [PriorityDifference(label(p), t, d) for p, t, d in diffs]
