"""Whether a batch of edits would block due jobs on gearmand before 2.0.0, and the way out.

A 1.1.x worker takes a function's jobs only from its highest non-empty priority list
(table/blocked.py). Rescheduling HIGH or NORMAL jobs into the future, moving scheduled
jobs up, or purging a list's due jobs can leave a top list of scheduled jobs above
due ones: those then wait until the scheduled jobs have run. `new_blocks` predicts
that without writing: it evaluates blocked.py's query over the table *as the edits
would leave it*, a query that applies each edit's SET to the rows its WHERE matches,
chained in order (so a later edit sees what the earlier ones did, as in
apply.py), and reports the functions the batch blocks or blocks longer or more.

The way out (`unblock_edits`) adds one edit per such function that moves its
scheduled jobs above its lowest priority list holding due jobs down into that list:
they keep their times and no longer sit above any due job, so nothing waits for them,
also not after the due jobs above have been handed out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..priority import Priority, label
from ..table.blocked import Blocker, blocked_lists, blockers, by_function
from ..table.filters import JobFilter
from ..table.jobs import Job
from ..table.store import QueueStore
from ..timeparse import format_epoch
from .kinds import Edit, Purge, Reprioritise, Reschedule

COLUMNS = ("unique_key", "function_name", "priority", "when_to_run")


@dataclass(frozen=True)
class NewBlock:
    """A function whose due jobs the batch would leave blocked (more, or longer, than now)."""

    after: Blocker  # the function as the batch leaves it
    now_blocked: int = 0  # its blocked jobs before the batch

    def describe(self) -> str:
        """ "f: 3 due jobs blocked until ... by 2 scheduled high jobs (1 blocked now)"."""
        b = self.after
        text = (
            f"{b.function}: {b.blocked} due jobs blocked until {format_epoch(b.until)} by "
            f"{b.scheduled} scheduled {label(b.priority)} jobs"
        )
        return text + (f" ({self.now_blocked} blocked now)" if self.now_blocked else "")

    def short(self) -> str:
        """ "3 due jobs of f until ..."."""
        b = self.after
        return f"{b.blocked} due jobs of {b.function} until {format_epoch(b.until)}"


@dataclass(frozen=True)
class Unblock(Edit):
    """Move one function's scheduled jobs above its lowest list holding due jobs into that
    list (`to`); their when_to_run is kept. Added by `unblock_edits`; the function is
    matched byte for byte, never as a glob."""

    function: str
    to: int
    job_filter: JobFilter = field(default_factory=JobFilter)  # scheduled, priority < to
    verb: ClassVar[str] = "unblock"
    sets: ClassVar[tuple[str, ...]] = ("priority",)

    def where(self, store: QueueStore, table: sa.Table | None = None) -> sa.ColumnElement[bool]:
        t = store.table if table is None else table
        own = store.dialect.exact_match(t.c.function_name, [self.function])
        return sa.and_(own, self.job_filter.where(t, store.dialect))

    def describe(self) -> str:
        above = " or ".join(p.label for p in self.job_filter.priorities)
        return (
            f"unblock {self.function}: its scheduled {above} jobs to {label(self.to)} "
            "(their times kept)"
        )

    def run(self, store: QueueStore, conn: Connection, matched: int, now: int) -> int:
        stmt = sa.update(store.table).where(self.where(store)).values(priority=self.to)
        return conn.execute(stmt).rowcount

    def after(self, job: Job, index: int, count: int, now: int) -> Job | None:
        return Job(job.unique_key, job.function_name, self.to, job.when_to_run, job.size)


def predicted(store: QueueStore, edits: Sequence[Edit], now: int) -> sa.Subquery:
    """The table's (unique_key, function_name, priority, when_to_run) as `edits`, frozen
    at `now`, would leave it: one query, nothing written. A repair changes nothing a
    block depends on (a NULL when_to_run already counts as due)."""
    t = store.table
    d = store.dialect
    source: sa.FromClause = sa.select(*(t.c[name] for name in COLUMNS)).subquery("step0")
    for i, edit in enumerate(edits, 1):
        if not isinstance(edit, (Reprioritise, Reschedule, Purge, Unblock)):
            continue
        c = source.c
        hit = sa.case((edit.where(store, cast(sa.Table, source)), 1), else_=0)
        marked = sa.select(*(c[name] for name in COLUMNS), hit.label("hit")).subquery(f"hit{i}")
        m = marked.c
        hit_row = m.hit == 1
        priority: sa.ColumnElement = m.priority
        when: sa.ColumnElement = m.when_to_run
        if isinstance(edit, (Reprioritise, Unblock)):
            priority = sa.case((hit_row, int(edit.to)), else_=m.priority)
        elif isinstance(edit, Reschedule) and edit.spread:
            # The same times Reschedule.run gives: job i of n (in its stable order) at
            # start + floor(i * spread / n).
            order = [
                sa.func.coalesce(m.when_to_run, 0),
                m.priority,
                d.text_key(m.function_name),
                d.text_key(m.unique_key),
            ]
            rank = sa.func.row_number().over(partition_by=m.hit, order_by=order) - 1
            count = sa.func.count().over(partition_by=m.hit)
            offset = d.int_div(rank * sa.literal(edit.spread, sa.Integer), count)
            when = sa.case((hit_row, sa.literal(edit.start(now), sa.Integer) + offset), else_=when)
        elif isinstance(edit, Reschedule):
            when = sa.case((hit_row, sa.literal(edit.at, sa.Integer)), else_=m.when_to_run)
        step = sa.select(
            m.unique_key,
            m.function_name,
            priority.label("priority"),
            when.label("when_to_run"),
        )
        if isinstance(edit, Purge):
            step = step.where(sa.not_(hit_row))
        source = step.subquery(f"step{i}")
    return cast(sa.Subquery, source)


def new_blocks(
    conn: Connection, store: QueueStore, edits: Sequence[Edit], now: int
) -> list[NewBlock]:
    """The functions whose due jobs `edits` (frozen at `now`) would leave blocked: newly,
    or more of them, or until later than now. Blocks the batch does not make worse
    are `check`'s business, not the edit's."""
    before = by_function(blocked_lists(conn, store.table, now))
    found = []
    for after in blockers(conn, predicted(store, edits, now), now):
        count, until = before.get(after.function, (0, 0))
        if after.blocked > count or after.until > until:
            found.append(NewBlock(after, count))
    return found


def unblock_edits(
    conn: Connection,
    store: QueueStore,
    edits: Sequence[Edit],
    blocks: Sequence[NewBlock],
    now: int,
) -> list[tuple[Unblock, int]]:
    """For each blocked function: the edit that moves its scheduled jobs above its lowest
    list with due jobs (as `edits` leave the table) into that list, and how many jobs
    it would move."""
    if not blocks:
        return []
    source = predicted(store, edits, now)
    c = source.c
    when = sa.func.coalesce(c.when_to_run, 0)
    names = [b.after.function for b in blocks]
    own = store.dialect.exact_match(c.function_name, names)
    lowest = dict(
        conn.execute(
            sa.select(c.function_name, sa.func.max(c.priority))
            .where(own, when <= now, c.priority.between(0, 2))
            .group_by(c.function_name)
        ).all()
    )
    out = []
    for name in names:
        to = int(lowest.get(name, Priority.LOW))
        if to == Priority.HIGH:  # cannot be: a blocked list lies below the top one
            continue
        above = tuple(Priority(p) for p in range(to))
        edit = Unblock(name, to, JobFilter(priorities=above, scheduled=True, now=now))
        moved = conn.execute(
            sa.select(sa.func.count())
            .select_from(source)
            .where(edit.where(store, cast(sa.Table, source)))
        ).scalar_one()
        out.append((edit, int(moved)))
    return out
