"""`report`: what is queued, counted by one GROUP BY in the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from ..priority import Priority, label
from .filters import JobFilter
from .store import QueueStore

GROUPINGS = {
    "function": ("function",),
    "priority": ("priority",),
    "function,priority": ("function", "priority"),
}

COUNT_COLUMNS = ("count", "scheduled", "due", "bytes")  # after the grouping keys


@dataclass(frozen=True)
class Group:
    """Counts for one function/priority cell (None in a key means 'all')."""

    function: str | None
    priority: int | None
    count: int
    scheduled: int
    bytes: int

    @property
    def due(self) -> int:
        return self.count - self.scheduled


@dataclass
class Report:
    groups: list[Group]  # one per (function, priority) present in the table
    now: int

    def total(self) -> Group:
        return _sum(None, None, self.groups)

    def by(self, grouping: str) -> list[Group]:
        """Roll the cells up to `function`, `priority` or `function,priority`."""
        keys = GROUPINGS[grouping]
        cells: dict[tuple, list[Group]] = {}
        for g in self.groups:
            key = (
                g.function if "function" in keys else None,
                g.priority if "priority" in keys else None,
            )
            cells.setdefault(key, []).append(g)
        return [_sum(f, p, groups) for (f, p), groups in sorted(cells.items(), key=_order)]

    def functions(self) -> list[str]:
        return sorted({g.function for g in self.groups if g.function is not None})


def _order(item: tuple) -> tuple:
    (function, priority), _ = item
    return (function or "", -1 if priority is None else priority)


def _sum(function: str | None, priority: int | None, groups: list[Group]) -> Group:
    return Group(
        function,
        priority,
        sum(g.count for g in groups),
        sum(g.scheduled for g in groups),
        sum(g.bytes for g in groups),
    )


def report(
    store: QueueStore, job_filter: JobFilter | None = None, now: int | None = None
) -> Report:
    """Count the queue by function and priority, with scheduled jobs and payload bytes."""
    now = int(time.time()) if now is None else now
    t = store.table
    function, priority = t.c.function_name, t.c.priority
    scheduled = sa.case((sa.func.coalesce(t.c.when_to_run, 0) > now, 1), else_=0)
    size = store.dialect.payload_length(t.c.data)
    where = sa.true()
    if job_filter is not None and not job_filter.is_empty:
        where = job_filter.where(t, store.dialect)
    if store.dialect.GROUP_BY_SORTS:
        # SQLite sorts to GROUP BY, and its sorter carries every column the aggregates
        # read: the whole payload, to sum its length. Per-row values in a subquery first
        # (LIMIT -1 keeps it from being flattened away) leave two small integers.
        rows_q = (
            sa.select(function, priority, scheduled.label("scheduled"), size.label("size"))
            .where(where)
            .limit(-1)
            .subquery()
        )
        function, priority = rows_q.c.function_name, rows_q.c.priority
        scheduled, size, where = rows_q.c.scheduled, rows_q.c.size, sa.true()
    query = (
        sa.select(
            function,
            priority,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(scheduled), 0),
            sa.func.coalesce(sa.func.sum(size), 0),
        )
        .where(where)
        .group_by(function, priority)
    )
    with store.connect(read_only=True) as conn:
        store.require_table(conn)
        rows = conn.execute(query).all()
    groups = [Group(f, p, int(c), int(s), int(b)) for f, p, c, s, b in rows]
    return Report(groups, now)


def group_record(group: Group) -> dict[str, object]:
    """A flat dict for JSON/CSV output."""
    record: dict[str, object] = {}
    if group.function is not None:
        record["function"] = group.function
    if group.priority is not None:
        record["priority"] = label(group.priority)
    record.update(count=group.count, scheduled=group.scheduled, due=group.due, bytes=group.bytes)
    return record


def function_table(rep: Report) -> Iterator[dict[str, object]]:
    """The default table: one row per function with HIGH/NORMAL/LOW columns, then totals."""
    for name in [*rep.functions(), None]:
        cells = [g for g in rep.groups if name is None or g.function == name]
        row: dict[str, object] = {"function": name if name is not None else "TOTAL"}
        for p in Priority:
            row[p.name] = sum(g.count for g in cells if g.priority == p)
        invalid = sum(g.count for g in cells if g.priority not in (0, 1, 2))
        if invalid or any(g.priority not in (0, 1, 2) for g in rep.groups):
            row["invalid"] = invalid
        total = _sum(None, None, cells)
        row.update(total=total.count, scheduled=total.scheduled, due=total.due, bytes=total.bytes)
        yield row
