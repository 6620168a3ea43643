"""The queue a --store-queue-on-shutdown gearmand holds in memory, by its own counts.

Such a daemon writes the jobs submitted to it only at a clean shutdown (seen on
1.1.20: a finished job's row is deleted at once, a new job's row is written at the
stop): while it runs, its table holds what it started with (empty at first), never
its queue. Its `prioritystatus` tells the queue: jobs waiting per function
and priority. That is all the admin protocol tells; which unique keys or times those
jobs have is only known once the daemon has stopped and written them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from ..priority import Priority, label
from ..table.filters import JobFilter
from ..table.report import COUNT_COLUMNS, GROUPINGS, cell_order
from ..table.store import QueueStore
from .admin import AdminClient
from .discover import DaemonInfo
from .guard import running_daemons
from .reload import Cell, daemon_cells

ADMIN_TIMEOUT = 5.0


def holding_daemon(store: QueueStore) -> DaemonInfo | None:
    """The running gearmand of this queue that holds it in memory
    (--store-queue-on-shutdown), or None: while it runs the table is not its queue."""
    for daemon in running_daemons(store):
        if daemon.options.store_queue_on_shutdown:
            return daemon
    return None


@dataclass
class HeldQueue:
    """A holding daemon's counts, narrowed to what a filter can be judged on."""

    pid: int | None
    address: str
    cells: dict[Cell, int] = field(default_factory=dict)  # waiting jobs per (function, priority)
    running: dict[str, int] = field(default_factory=dict)  # per function, not in `cells`
    #: The parts of the filter the counts cannot tell (unique keys, times): the counts
    #: are of every job of the named functions and priorities.
    unjudged: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.cells.values())

    def functions(self) -> list[str]:
        return sorted({f for f, _ in self.cells} | set(self.running))

    def count(self, function: str | None = None, priority: int | None = None) -> int:
        return sum(
            n
            for (f, p), n in self.cells.items()
            if (function is None or f == function) and (priority is None or p == priority)
        )

    def by(self, grouping: str) -> list[tuple[str | None, int | None, int]]:
        """(function, priority, count) rolled up as `report --by` does (None: all)."""
        cells: dict[tuple[str | None, int | None], int] = {}
        for (f, p), n in self.cells.items():
            key = (f if "function" in grouping else None, p if "priority" in grouping else None)
            cells[key] = cells.get(key, 0) + n
        return [(f, p, n) for (f, p), n in sorted(cells.items(), key=cell_order)]

    def table(self) -> Iterator[dict[str, object]]:
        """A row per function: HIGH NORMAL LOW waiting, total, running; then TOTAL."""
        for name in [*self.functions(), None]:
            row: dict[str, object] = {"function": "TOTAL" if name is None else name}
            for p in Priority:
                row[p.name] = self.count(name, int(p))
            row["total"] = self.count(name)
            row["running"] = sum(n for f, n in self.running.items() if name in (None, f))
            yield row

    def records(self, grouping: str, total: bool = False) -> list[dict[str, object]]:
        """Rows as `report --by grouping` has them; scheduled, due and bytes unknown (None)
        until the daemon stops. `total` adds a TOTAL row (the first grouping key says so)."""
        keys = GROUPINGS[grouping]
        unknown = dict.fromkeys(COUNT_COLUMNS[1:])
        rows: list[dict[str, object]] = []
        for f, p, n in self.by(grouping):
            row: dict[str, object] = {}
            if "function" in keys:
                row["function"] = f
            if "priority" in keys:
                row["priority"] = label(p)
            rows.append({**row, "count": n, **unknown})
        if total:
            labels = {key: "TOTAL" if i == 0 else "" for i, key in enumerate(keys)}
            rows.append({**labels, "count": self.total, **unknown})
        return rows


def why_empty(daemon: DaemonInfo) -> str:
    """Why this daemon's table says nothing about its queue, in words."""
    return (
        f"gearmand pid {daemon.pid} runs with --store-queue-on-shutdown: while it runs its "
        "table holds only what it started with, not its queue (it holds its queue in memory "
        "and writes it at shutdown)"
    )


def held_queue(daemon: DaemonInfo, job_filter: JobFilter | None = None) -> HeldQueue:
    """The daemon's `prioritystatus` (and running jobs), for the functions and priorities
    `job_filter` names; raises QueuetoolError when the daemon does not answer."""
    job_filter = job_filter or JobFilter()
    address = daemon.options.address
    with AdminClient(address, ADMIN_TIMEOUT) as client:
        cells, running = daemon_cells(client)
    priorities = {int(p) for p in job_filter.priorities}

    def named(function: str) -> bool:
        patterns = job_filter.functions
        return not patterns or any(fnmatchcase(function, p) for p in patterns)

    held = HeldQueue(daemon.pid, str(address))
    held.cells = {
        (f, p): n for (f, p), n in cells.items() if named(f) and (not priorities or p in priorities)
    }
    held.running = {f: n for f, n in running.items() if named(f)}
    unjudged = []
    if job_filter.uniques:
        unjudged.append("unique " + " or ".join(job_filter.uniques))
    if (
        job_filter.scheduled is not None
        or job_filter.run_after is not None
        or job_filter.run_before is not None
    ):
        unjudged.append("when_to_run")
    held.unjudged = tuple(unjudged)
    return held
