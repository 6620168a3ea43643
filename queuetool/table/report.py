"""`report`: what is queued, counted by one GROUP BY in the database."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..priority import Priority, label
from ..timeparse import format_epoch
from . import uuid1
from .blocked import ListFigures, blocked_from, is_priority, rule_applies
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
        return [_sum(f, p, groups) for (f, p), groups in sorted(cells.items(), key=cell_order)]

    def functions(self) -> list[str]:
        return sorted({g.function for g in self.groups if g.function is not None})


def cell_order(item: tuple) -> tuple:
    """Sort key of a ((function, priority), value) item: by function, then priority, the
    rolled-up (None) priority first."""
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
    ages: bool = True,
) -> Report:
    """Count the queue by function and priority, with scheduled jobs and payload bytes,
    (`ages`) the oldest UUIDv1 submission time, and (`blocking`: gearmand < 2.0.0's
    rules) the due jobs its priority lists block.

    One GROUP BY over the whole table: it also reads what the blocking rule needs of
    every list (table/blocked.py), which depends on the jobs a filter leaves out too,
    so a filter selects by CASE inside the aggregates rather than by WHERE.
    """
    now = int(time.time()) if now is None else now
    t = store.table
    matching = None
    if job_filter is not None and not job_filter.is_empty:
        matching = job_filter.where(t, store.dialect)
    when = sa.func.coalesce(t.c.when_to_run, 0)
    per_row: dict[str, sa.ColumnElement] = {
        "scheduled": sa.case((when > now, 1), else_=0),
        "size": store.dialect.payload_length(t.c.data),
        "when": when,
    }
    if ages:
        # By bytes: a collation's own order (Danish 'aa', numeric runs) is not the
        # digits' order that uuid1.py's proof relies on.
        per_row["oldest"] = uuid1.order_key(store.dialect.byte_order(t.c.unique_key))
    if matching is not None:
        per_row["matched"] = sa.case((matching, 1), else_=0)
    function: sa.ColumnElement = t.c.function_name
    priority: sa.ColumnElement = t.c.priority
    col = per_row
    if store.dialect.GROUP_BY_SORTS:
        # SQLite sorts to GROUP BY, and its sorter carries every column the aggregates
        # read: the whole payload, to sum its length. Per-row values in a subquery first
        # (LIMIT -1 keeps it from being flattened away) leave a few small values.
        rows_q = (
            sa.select(function, priority, *(e.label(n) for n, e in per_row.items()))
            .limit(-1)
            .subquery()
        )
        function, priority = rows_q.c.function_name, rows_q.c.priority
        col = {name: rows_q.c[name] for name in per_row}

    def chosen(value: sa.ColumnElement) -> sa.ColumnElement:
        return value if matching is None else sa.case((col["matched"] == 1, value))

    # What blocking reads of every list (its jobs, scheduled jobs and last when_to_run),
    # then what the filter selects (without one: the same, not read twice).
    figures: dict[str, sa.ColumnElement] = {
        "jobs": sa.func.count(),
        "scheduled": sa.func.coalesce(sa.func.sum(col["scheduled"]), 0),
        "last": sa.func.max(col["when"]),
        "bytes": sa.func.coalesce(sa.func.sum(chosen(col["size"])), 0),
    }
    if ages:
        figures["least"] = sa.func.min(chosen(col["oldest"]))
    if matching is not None:
        figures["chosen"] = sa.func.sum(col["matched"])
        figures["chosen_scheduled"] = sa.func.coalesce(sa.func.sum(chosen(col["scheduled"])), 0)
    query = sa.select(
        function.label("function"),
        priority.label("priority"),
        *(value.label(name) for name, value in figures.items()),
    ).group_by(function, priority)
    with store.connect(read_only=True) as conn:
        store.require_table(conn)
        rows = [_Row.of(row) for row in conn.execute(query).mappings()]
        oldest = _oldest(conn, store, matching, rows)
    lists = [
        ListFigures(
            r.function,
            r.priority,
            int(r.jobs),
            int(r.jobs - r.scheduled),
            int(r.chosen - r.chosen_scheduled),
            None,
            r.last,
        )
        for r in rows
        if rule_applies(r.priority, r.last)
    ]
    blocked = {(b.function, b.priority): b for b in blocked_from(lists)} if blocking else {}
    groups = []
    for r in rows:
        if not r.chosen:
            continue  # the filter selects none of this list
        # is_priority: a stored 1.0 would find the list of 1 (equal keys in a dict).
        cell = blocked.get((r.function, r.priority)) if is_priority(r.priority) else None
        submitted = oldest.get((r.function, r.priority))
        groups.append(
            Group(
                r.function,
                r.priority,
                int(r.chosen),
                int(r.chosen_scheduled),
                int(r.bytes),
                cell.blocked if cell else 0,
                cell.until if cell else None,
                None if submitted is None else now - submitted,
            )
        )
    return Report(groups, now)


class _Row(NamedTuple):
    """One row of report's GROUP BY."""

    function: str
    priority: int
    jobs: int  # every job of the list, as `scheduled` and `last`
    scheduled: int
    last: int  # when_to_run, NULL read as 0
    bytes: int  # of the jobs the filter selects, as `least` and `chosen...`
    chosen: int  # (without a filter: every job)
    chosen_scheduled: int
    least: object = None  # uuid1.order_key (None: ages not read)

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> _Row:
        values = dict(row)
        values.setdefault("chosen", values["jobs"])
        values.setdefault("chosen_scheduled", values["scheduled"])
        return cls(**values)


def _oldest(
    conn: Connection,
    store: QueueStore,
    matching: sa.ColumnElement[bool] | None,
    rows: Sequence[_Row],
) -> dict[tuple, int | None]:
    """(function, priority) -> the oldest submission time from the report's MIN; for a
    group whose least key is not a real UUIDv1 (table/uuid1.py), parsed key by key."""
    found: dict[tuple, int | None] = {}
    unproven = []
    for r in rows:
        try:
            found[(r.function, r.priority)] = uuid1.order_epoch(r.least)
        except ValueError:
            unproven.append((r.function, r.priority))
    if unproven:
        t = store.table
        submitted = sa.func.min(store.dialect.uuid1_epoch(t.c.unique_key))
        query = sa.select(t.c.function_name, t.c.priority, submitted).group_by(
            t.c.function_name, t.c.priority
        )
        if matching is not None:
            query = query.where(matching)
        exact = {(f, p): None if s is None else int(s) for f, p, s in conn.execute(query)}
        found.update({key: exact.get(key) for key in unproven})
    return found


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
