"""Due jobs that gearmand 1.1.x will not hand out: its priority lists block each other.

Before 2.0.0 a worker takes a job of a function only from that function's highest
non-empty priority list (HIGH, else NORMAL, else LOW), and only if a job in it is due
(GEARMAND.md). When every job in that top list is scheduled for later, the due jobs
in its lower lists wait: they are *blocked*. They can be handed out only once every
list above them is empty, so no earlier than the last when_to_run above them: that
is `until` (not the earliest one: after the first scheduled job runs, the next one
blocks again).

The figures come from one GROUP BY per (function, priority) list: its jobs, due
jobs, first and last when_to_run. The rule is then applied to those few rows in
Python: the lists below a top list that has no due job. `report` reads the same
figures in its own GROUP BY (no second scan); `list_figures` reads them from the queue
table or from any query of its columns (an edit's predicted result, changes/blocking.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..priority import label
from ..timeparse import format_epoch


@dataclass(frozen=True, order=True)  # sorted: by function, then priority
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


@dataclass(frozen=True)
class ListFigures:
    """One function's priority list, as the blocking rule reads it."""

    function: str
    priority: int
    jobs: int
    due: int
    due_matching: int  # due jobs a report's filter selects (all due jobs without one)
    first: int | None  # earliest and last when_to_run (NULL read as 0); first only
    last: int  # where a Blocker is made of it (report leaves it None)


def list_figures(
    conn: Connection,
    source: sa.FromClause,
    now: int,
    matching: sa.ColumnElement[bool] | None = None,
) -> list[ListFigures]:
    """The lists of `source` (the queue table, or a query of its columns), one GROUP BY."""
    c = source.c
    when = sa.func.coalesce(c.when_to_run, 0)
    due = when <= now
    counted = due if matching is None else sa.and_(due, matching)
    query = sa.select(
        c.function_name,
        c.priority,
        sa.func.count(),
        sa.func.sum(sa.case((due, 1), else_=0)),
        sa.func.sum(sa.case((counted, 1), else_=0)),
        sa.func.min(when),
        sa.func.max(when),
    ).group_by(c.function_name, c.priority)
    return [
        ListFigures(f, p, int(n), int(d), int(m), lo, hi)
        for f, p, n, d, m, lo, hi in conn.execute(query)
        if rule_applies(p, lo, hi)
    ]


def is_priority(value: object) -> bool:
    """0, 1 or 2, as an integer: other priorities are `check`'s business and block
    nothing here (a stored 0.5 or '1' is no list of gearmand's)."""
    return type(value) is int and 0 <= value <= 2


def rule_applies(priority: object, *times: object) -> bool:
    """Whether a list's figures are ones the rule reads: a priority, and integer times
    (a when_to_run of another storage class is `check`'s business too)."""
    return is_priority(priority) and all(type(t) is int for t in times)


def _blocked_below(lists: list[ListFigures]) -> dict[str, tuple[ListFigures, list[BlockedList]]]:
    """Per function whose top list has no due job: that list and the lists it blocks."""
    by_name: dict[str, list[ListFigures]] = {}
    for figures in lists:
        by_name.setdefault(figures.function, []).append(figures)
    found = {}
    for function, own in by_name.items():
        own.sort(key=lambda f: f.priority)
        top = own[0]
        if top.due:
            continue
        blocked = [
            BlockedList(
                function,
                below.priority,
                below.due_matching,
                max(above.last for above in own if above.priority < below.priority),
            )
            for below in own[1:]
            if below.due_matching
        ]
        if blocked:
            found[function] = (top, blocked)
    return found


def blocked_from(lists: list[ListFigures]) -> list[BlockedList]:
    """The blocked lists among `lists` (all lists of every function they name)."""
    return sorted(b for _, blocked in _blocked_below(lists).values() for b in blocked)


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
    return blocked_from(list_figures(conn, source, now, matching))


def blockers(conn: Connection, source: sa.FromClause, now: int) -> list[Blocker]:
    """Per blocked function: its top list of scheduled jobs and what it blocks."""
    found = _blocked_below(list_figures(conn, source, now))
    return [
        Blocker(
            function,
            top.priority,
            top.jobs,
            top.last if top.first is None else top.first,  # list_figures reads it
            top.last,
            sum(b.blocked for b in blocked),
            max(b.until for b in blocked),
        )
        for function, (top, blocked) in sorted(found.items())
    ]


def by_function(lists: list[BlockedList]) -> dict[str, tuple[int, int]]:
    """function -> (blocked jobs, until) over its lists."""
    out: dict[str, tuple[int, int]] = {}
    for b in lists:
        n, until = out.get(b.function, (0, 0))
        out[b.function] = (n + b.blocked, max(until, b.until))
    return out
