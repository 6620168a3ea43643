"""Due jobs that gearmand 1.1.x will not hand out: its priority lists block each other.

Before 2.0.0 a worker takes a job of a function only from that function's highest
non-empty priority list (HIGH, else NORMAL, else LOW), and only if a job in it is due
(GEARMAND.md). When every job in that top list is scheduled for later, the due jobs
in its lower lists wait: they are *blocked*. They can be handed out only once every
list above them is empty, so no earlier than the last when_to_run above them: that
is `until` (not the earliest one: after the first scheduled job runs, the next one
blocks again).

All of it is one set-based query: per (function, priority) list its due count and
last when_to_run (a GROUP BY), then the lists below a top list that has no due job.
It works on the queue table or on any query of the same columns (an edit's
predicted result, changes/blocking.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..priority import label
from ..timeparse import format_epoch


@dataclass(frozen=True, order=True)  # listed sorted: by function, then priority
class BlockedList:
    """The due jobs of one function's priority list that no 1.1.x worker gets."""

    function: str
    priority: int
    blocked: int
    until: int  # the last when_to_run in the lists above: the block lasts at least until then


@dataclass(frozen=True)
class Blocker:
    """A function whose top priority list holds only scheduled jobs, and what it blocks."""

    function: str
    priority: int  # the top list
    scheduled: int  # its jobs, all scheduled for later
    first: int  # the earliest of them
    last: int
    blocked: int  # due jobs in the lower lists
    until: int  # when the last of them can be handed out, at the earliest

    def describe(self) -> str:
        return (
            f"{self.function}: {self.blocked} due jobs blocked until {format_epoch(self.until)} "
            f"by {self.scheduled} scheduled {label(self.priority)} jobs (first at "
            f"{format_epoch(self.first)})"
        )

    def remedy(self) -> str:
        """How to free the function now, as command lines."""
        p = label(self.priority)
        return (
            f"queuetool reprioritise --function '{self.function}' --priority {p} --scheduled "
            f"--to low (keeps their time; in LOW they block nothing), or "
            f"queuetool reschedule --function '{self.function}' --priority {p} --now"
        )


def _lists(source: sa.FromClause, now: int, matching: sa.ColumnElement[bool] | None) -> sa.CTE:
    """Per (function, priority) list: its jobs, due jobs, due jobs the filter matches,
    and its first and last when_to_run. Priorities outside 0..2 are `check`'s business."""
    c = source.c
    when = sa.func.coalesce(c.when_to_run, 0)
    due = when <= now
    counted = due if matching is None else sa.and_(due, matching)
    return (
        sa.select(
            c.function_name.label("function"),
            c.priority.label("priority"),
            sa.func.count().label("jobs"),
            sa.func.sum(sa.case((due, 1), else_=0)).label("due"),
            sa.func.sum(sa.case((counted, 1), else_=0)).label("due_matching"),
            sa.func.min(when).label("first"),
            sa.func.max(when).label("last"),
        )
        .where(c.priority.between(0, 2))
        .group_by(c.function_name, c.priority)
        .cte("lists")
    )


def _blocked_query(lists: sa.CTE) -> sa.Select:
    tops = (
        sa.select(lists.c.function, sa.func.min(lists.c.priority).label("top"))
        .group_by(lists.c.function)
        .subquery("tops")
    )
    top = lists.alias("top_list")
    above = lists.alias("above")
    until = (
        sa.select(sa.func.max(above.c.last))
        .where(above.c.function == lists.c.function, above.c.priority < lists.c.priority)
        .scalar_subquery()
    )
    return (
        sa.select(
            lists.c.function,
            lists.c.priority,
            lists.c.due_matching,
            until.label("until"),
            top.c.priority.label("top"),
            top.c.jobs.label("top_jobs"),
            top.c.first.label("top_first"),
            top.c.last.label("top_last"),
        )
        .select_from(
            lists.join(tops, tops.c.function == lists.c.function).join(
                top, sa.and_(top.c.function == lists.c.function, top.c.priority == tops.c.top)
            )
        )
        .where(top.c.due == 0, lists.c.priority > tops.c.top, lists.c.due_matching > 0)
    )


def blocked_lists(
    conn: Connection,
    source: sa.FromClause,
    now: int,
    matching: sa.ColumnElement[bool] | None = None,
) -> list[BlockedList]:
    """The blocked lists of `source` (the queue table, or a query of its columns).

    `matching`: count only the blocked jobs it selects (a report's filter); whether a
    list is blocked always depends on every job of its function.
    """
    rows = conn.execute(_blocked_query(_lists(source, now, matching))).all()
    found = [BlockedList(f, int(p), int(n), int(u)) for f, p, n, u, *_ in rows if n]
    return sorted(found, key=lambda b: (b.function, b.priority))  # no order on the class


def blockers(conn: Connection, source: sa.FromClause, now: int) -> list[Blocker]:
    """Per blocked function: its top list of scheduled jobs and what it blocks."""
    found: dict[str, Blocker] = {}
    for f, _p, n, until, top, jobs, first, last in conn.execute(
        _blocked_query(_lists(source, now, None))
    ):
        old = found.get(f)
        found[f] = Blocker(
            f,
            int(top),
            int(jobs),
            int(first),
            int(last),
            int(n) + (old.blocked if old else 0),
            max(int(until), old.until if old else 0),
        )
    return [found[f] for f in sorted(found)]


def by_function(lists: list[BlockedList]) -> dict[str, tuple[int, int]]:
    """function -> (blocked jobs, until) over its lists."""
    out: dict[str, tuple[int, int]] = {}
    for b in lists:
        n, until = out.get(b.function, (0, 0))
        out[b.function] = (n + b.blocked, max(until, b.until))
    return out
