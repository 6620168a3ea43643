"""One collection of a queue's figures: its table's counts and what its daemon says.

`collect` never raises for a database or a daemon that does not answer: the figures
then say which side is down and carry the error, so the exporter keeps serving.
A `--store-queue-on-shutdown` daemon's table is not its queue while it runs (it
writes new jobs only at its shutdown), so while it answers its own per-priority counts
stand in for the table's, and the figures say so (`source == "daemon"`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..daemon.admin import AdminClient, FunctionStatus, PriorityStatus, version_tuple
from ..daemon.guard import running_daemons
from ..daemon.version import FIXED_IN
from ..errors import QueuetoolError, one_line, reported_errors
from ..priority import Priority, label
from ..table.report import Report, report
from ..table.store import QueueStore

ADMIN_TIMEOUT = 3.0


@dataclass(frozen=True)
class QueueSource:
    """One queue the exporter watches: its label, its table, its daemon's admin address.

    `store_queue_on_shutdown` None means: find out from the local gearmand process
    that uses this queue (its command line), as `queuetool status` does.
    """

    name: str
    store: QueueStore
    gearmand: str | None = None
    store_queue_on_shutdown: bool | None = None
    admin_timeout: float = ADMIN_TIMEOUT


@dataclass(frozen=True)
class Cell:
    """Figures for one function and priority. None: not known from this source."""

    function: str
    priority: str  # high, normal, low, or invalid(N) for a row gearmand cannot use
    jobs: int
    scheduled: int | None = None
    payload_bytes: int | None = None
    # From the table only: None from the daemon's counts, and blocked None on 2.0.0+.
    blocked: int | None = None
    oldest_age_seconds: float | None = None

    @property
    def due(self) -> int | None:
        return None if self.scheduled is None else self.jobs - self.scheduled


@dataclass(frozen=True)
class DaemonFigures:
    """What gearmand answered: `version`, `status` and `prioritystatus`."""

    version: str
    status: list[FunctionStatus]
    priorities: list[PriorityStatus]


@dataclass(frozen=True)
class Figures:
    """One collection of one queue. `taken_at` is wall-clock time when it started."""

    queue: str
    backend: str
    table: str
    source: str  # "table", "daemon" (store-queue-on-shutdown), or "none" (not readable)
    store_queue_on_shutdown: bool
    cells: list[Cell]
    queue_up: bool
    daemon: DaemonFigures | None
    daemon_up: bool | None  # None: no admin address known for this queue
    errors: list[tuple[str, str]] = field(default_factory=list)  # (database|daemon, line)
    taken_at: float = 0.0
    duration: float = 0.0

    def functions(self) -> list[str]:
        return sorted({c.function for c in self.cells})


def collect(
    source: QueueSource, clock: Callable[[], float] = time.time, ages: bool = True
) -> Figures:
    """Read the queue's figures once; failures are recorded in the result, not raised.
    `ages`: also the oldest job's age (report's costliest column)."""
    started = clock()
    mono = time.monotonic()
    errors: list[tuple[str, str]] = []
    sqos = source.store_queue_on_shutdown
    if sqos is None:
        sqos = _runs_with_store_on_shutdown(source.store)
    daemon, daemon_up = None, None
    if source.gearmand:
        try:
            daemon = _ask_daemon(source.gearmand, source.admin_timeout)
            daemon_up = True
        except (QueuetoolError, OSError) as exc:
            daemon_up = False
            errors.append(("daemon", describe(exc)))
    cells: list[Cell] = []
    if sqos and daemon is not None:
        # The table is not this daemon's queue while it runs: its own counts are.
        cells, queue_up, origin = daemon_cells(daemon.priorities), True, "daemon"
    else:
        try:
            # gearmand before 2.0.0 (or unknown) blocks lower lists behind scheduled jobs.
            blocking = daemon is None or version_tuple(daemon.version) < FIXED_IN
            cells = table_cells(source.store, int(started), blocking, ages)
            queue_up, origin = True, "table"
        except reported_errors() as exc:
            queue_up, origin = False, "none"
            errors.append(("database", describe(exc)))
            # A lost server leaves dead connections in the pool: start afresh next time.
            source.store.close()
    return Figures(
        queue=source.name,
        backend=source.store.backend,
        table=source.store.table_name,
        source=origin,
        store_queue_on_shutdown=bool(sqos),
        cells=cells,
        queue_up=queue_up,
        daemon=daemon,
        daemon_up=daemon_up,
        errors=errors,
        taken_at=started,
        duration=time.monotonic() - mono,
    )


def table_cells(
    store: QueueStore, now: int, blocking: bool = True, ages: bool = True
) -> list[Cell]:
    """The table's counts per function and priority (the one GROUP BY of `report`),
    with every priority of a function present (0 where none) so graphs stack;
    `blocking`: count the jobs gearmand before 2.0.0 blocks; `ages`: the oldest age."""
    return report_cells(report(store, now=now, blocking=blocking, ages=ages), blocking)


def report_cells(rep: Report, blocking: bool = True) -> list[Cell]:
    """Cells from a `report`; HIGH/NORMAL/LOW of each function always, invalid when present."""
    found = {(g.function or "", label(g.priority)): g for g in rep.groups}
    keys = {(f, p.label) for f in {k[0] for k in found} for p in Priority} | set(found)
    cells = []
    for function, prio in sorted(keys, key=_cell_order):
        group = found.get((function, prio))
        cells.append(
            Cell(
                function,
                prio,
                group.count if group else 0,
                group.scheduled if group else 0,
                group.bytes if group else 0,
                blocked=(group.blocked if group else 0) if blocking else None,
                oldest_age_seconds=group.oldest_age_seconds if group else None,
            )
        )
    return cells


def daemon_cells(priorities: list[PriorityStatus]) -> list[Cell]:
    """Cells from gearmand's `prioritystatus`: job counts only (no schedule, no payload)."""
    cells = []
    for status in sorted(priorities, key=lambda s: s.function):
        for prio, count in zip(Priority, status.counts, strict=True):
            cells.append(Cell(status.function, prio.label, count))
    return cells


def describe(exc: BaseException) -> str:
    """One line for the log and the page; a URL's password is masked."""
    return one_line(exc)


def _ask_daemon(address: str, timeout: float) -> DaemonFigures:
    with AdminClient(address, timeout) as client:
        return DaemonFigures(client.version(), client.status(), client.priority_status())


def _runs_with_store_on_shutdown(store: QueueStore) -> bool:
    return any(d.options.store_queue_on_shutdown for d in running_daemons(store))


def _cell_order(key: tuple[str, str]) -> tuple[str, int, str]:
    function, prio = key
    order = {p.label: int(p) for p in Priority}
    return (function, order.get(prio, 3), prio)
