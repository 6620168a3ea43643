"""`report`: what is queued, counted by one GROUP BY in the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from ..priority import Priority, label
from ..timeparse import format_epoch
from .blocked import blocked_lists
from .filters import JobFilter
from .store import QueueStore

GROUPINGS = {
    "function": ("function",),
    "priority": ("priority",),
    "function,priority": ("function", "priority"),
}

COUNT_COLUMNS = (
    "count",
    "scheduled",
    "due",
    "bytes",
    "blocked",
    "blocked_until",
    "oldest_age_seconds",
)  # after the grouping keys


@dataclass(frozen=True)
class Group:
    """Counts for one function/priority cell (None in a key means 'all')."""

    function: str | None
    priority: int | None
    count: int
    scheduled: int
    bytes: int
    # gearmand < 2.0.0: due jobs no worker gets while a higher list of their function
    # holds only scheduled jobs (table/blocked.py), and the earliest they can run.
    blocked: int = 0
    blocked_until: int | None = None
    # The oldest submission time a UUIDv1 key (libgearman's own) carries, as an age at
    # the report's time; None when no key carries one. A hint: a key can lie.
    oldest_age_seconds: int | None = None

    @property
    def due(self) -> int:
        return self.count - self.scheduled


@dataclass
class Report:
    """The report's groups, one per function and priority, and the time it was read."""

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
    untils = [g.blocked_until for g in groups if g.blocked_until is not None]
    ages = [g.oldest_age_seconds for g in groups if g.oldest_age_seconds is not None]
    return Group(
        function,
        priority,
        sum(g.count for g in groups),
        sum(g.scheduled for g in groups),
        sum(g.bytes for g in groups),
        sum(g.blocked for g in groups),
        max(untils) if untils else None,
        max(ages) if ages else None,
    )


def report(
    store: QueueStore,
    job_filter: JobFilter | None = None,
    now: int | None = None,
    blocking: bool = True,
) -> Report:
    """Count the queue by function and priority, with scheduled jobs and payload bytes,
    the oldest UUIDv1 submission time, and (`blocking`: gearmand < 2.0.0's rules) the
    due jobs its priority lists block."""
    now = int(time.time()) if now is None else now
    t = store.table
    function: sa.ColumnElement = t.c.function_name
    priority: sa.ColumnElement = t.c.priority
    scheduled: sa.ColumnElement = sa.case((sa.func.coalesce(t.c.when_to_run, 0) > now, 1), else_=0)
    size = store.dialect.payload_length(t.c.data)
    submitted = store.dialect.uuid1_epoch(t.c.unique_key)
    where: sa.ColumnElement[bool] = sa.true()
    if job_filter is not None and not job_filter.is_empty:
        where = job_filter.where(t, store.dialect)
    if store.dialect.GROUP_BY_SORTS:
        # SQLite sorts to GROUP BY, and its sorter carries every column the aggregates
        # read: the whole payload, to sum its length. Per-row values in a subquery first
        # (LIMIT -1 keeps it from being flattened away) leave two small integers.
        rows_q = (
            sa.select(
                function,
                priority,
                scheduled.label("scheduled"),
                size.label("size"),
                submitted.label("submitted"),
            )
            .where(where)
            .limit(-1)
            .subquery()
        )
        function, priority = rows_q.c.function_name, rows_q.c.priority
        scheduled, size, where = rows_q.c.scheduled, rows_q.c.size, sa.true()
        submitted = rows_q.c.submitted
    query = (
        sa.select(
            function,
            priority,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(scheduled), 0),
            sa.func.coalesce(sa.func.sum(size), 0),
            sa.func.min(submitted),
        )
        .where(where)
        .group_by(function, priority)
    )
    with store.connect(read_only=True) as conn:
        store.require_table(conn)
        rows = conn.execute(query).all()
        blocked = {}
        if blocking and rows:
            matching = (
                None
                if job_filter is None or job_filter.is_empty
                else job_filter.where(t, store.dialect)
            )
            blocked = {(b.function, b.priority): b for b in blocked_lists(conn, t, now, matching)}
    groups = []
    for f, p, c, s, b, oldest in rows:
        cell = blocked.get((f, p))
        groups.append(
            Group(
                f,
                p,
                int(c),
                int(s),
                int(b),
                cell.blocked if cell else 0,
                cell.until if cell else None,
                None if oldest is None else now - int(oldest),
            )
        )
    return Report(groups, now)


def group_record(group: Group) -> dict[str, object]:
    """A flat dict for JSON/CSV output."""
    record: dict[str, object] = {}
    if group.function is not None:
        record["function"] = group.function
    if group.priority is not None:
        record["priority"] = label(group.priority)
    record.update(count=group.count, scheduled=group.scheduled, due=group.due, bytes=group.bytes)
    record.update(
        blocked=group.blocked,
        blocked_until=group.blocked_until,
        oldest_age_seconds=group.oldest_age_seconds,
    )
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
        # Shown only when they say something, like `invalid`: most queues have neither.
        if any(g.blocked for g in rep.groups):
            row["blocked"] = total.blocked
            row["blocked until"] = _iso(total.blocked_until) if total.blocked else ""
        if any(g.oldest_age_seconds is not None for g in rep.groups):
            row["oldest age"] = _age(total.oldest_age_seconds)
        yield row


def _age(seconds: int | None) -> str:
    """`3h12m5s`; empty when no key carries a time."""
    if seconds is None:
        return ""
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    parts.append(f"{seconds}s")
    return sign + "".join(parts)


def _iso(epoch: int | None) -> str | None:
    return None if epoch is None else format_epoch(epoch)
