"""The kinds of offline edit of the queue table: reprioritise, reschedule, purge, repair.

An edit is a small dataclass, so several can be applied in one go (the maintenance
window batches them); each knows its rows (`where`), its single set-based statement
(`run`), which columns it sets, and how a job looks after it (for the dry run).
Applying them safely is apply.py's job.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import UsageError, VerifyError
from ..priority import Priority
from ..table.check import count_if
from ..table.export import check_export_path, write_jobs
from ..table.filters import JobFilter
from ..table.jobs import Job
from ..table.store import INT32_MAX, QueueStore
from ..timeparse import format_epoch


class Edit(ABC):
    """One change to the jobs a filter selects."""

    verb: ClassVar[str]
    job_filter: JobFilter

    def validate(self, store: QueueStore) -> None:  # noqa: B027 - optional hook
        """Raise UsageError if the request cannot be carried out on this store."""

    @abstractmethod
    def describe(self) -> str:
        """The change in words, for confirmations and results."""

    @abstractmethod
    def run(self, store: QueueStore, conn: Connection, matched: int, now: int) -> int:
        """Apply the change with one set-based statement; return the rows it changed."""

    #: The columns the edit sets, to values valid by construction: a problem in them
    #: is what the edit overwrites, not a reason to refuse it.
    sets: ClassVar[tuple[str, ...]] = ()
    #: Whether the rows must replay after the edit (a purge deletes them; a repair fixes
    #: what it can and leaves the rest to `check`).
    checked: ClassVar[bool] = True

    def where(self, store: QueueStore, table: sa.Table | None = None) -> sa.ColumnElement[bool]:
        """The rows the edit changes, in the queue table (or `table`, the same layout):
        the filter's, less those already as the edit would leave them."""
        t = store.table if table is None else table
        selected = self.job_filter.where(t, store.dialect)
        settled = self.settled(t)
        return selected if settled is None else sa.and_(selected, sa.not_(settled))

    def settled(self, table: sa.Table) -> sa.ColumnElement[bool] | None:
        """Rows the edit would leave as they are (already at its value), or None: an edit
        that changes every row it selects. Such rows are counted apart, not changed."""
        return None

    def settled_phrase(self) -> str:
        """What `settled` rows are, in words ("already at high")."""
        return "already as asked"

    def after(self, job: Job, index: int, count: int, now: int) -> Job | None:
        """The `index`-th of `count` selected jobs as the edit leaves it (None: deleted),
        for the dry run's before -> after."""
        return job

    def frozen(self, now: int) -> Edit:
        """The same edit with the filter's notion of "now" fixed, so that counting,
        changing and verifying all select the same rows."""
        return replace(self, job_filter=replace(self.job_filter, now=now))  # type: ignore[type-var]


def require_scope(job_filter: JobFilter, all_jobs: bool, verb: str, does: str) -> None:
    """An edit of every job must say so: an empty filter needs `all` (`--all`), and `all`
    excludes a filter. A forgotten filter once reprioritised a whole queue."""
    if job_filter.is_empty and not all_jobs:
        raise UsageError(
            f"{verb} without a filter would {does} every job: give a filter, or --all if "
            "that is what you mean"
        )
    if all_jobs and not job_filter.is_empty:
        raise UsageError("--all means every job: do not combine it with a filter")


@dataclass(frozen=True)
class Reprioritise(Edit):
    """Set the priority of the matched jobs (an empty filter needs `all`)."""

    job_filter: JobFilter
    to: Priority
    all: bool = False
    verb: ClassVar[str] = "reprioritise"
    sets: ClassVar[tuple[str, ...]] = ("priority",)

    def validate(self, store: QueueStore) -> None:
        require_scope(self.job_filter, self.all, "reprioritise", "change")

    def describe(self) -> str:
        return f"reprioritise ({self.job_filter.describe()}) to {Priority(self.to).label}"

    def run(self, store: QueueStore, conn: Connection, matched: int, now: int) -> int:
        t = store.table
        stmt = sa.update(t).where(self.where(store)).values(priority=int(self.to))
        return conn.execute(stmt).rowcount

    def settled(self, table: sa.Table) -> sa.ColumnElement[bool] | None:
        return _is(table.c.priority, int(self.to))

    def settled_phrase(self) -> str:
        return f"already at {Priority(self.to).label}"

    def after(self, job: Job, index: int, count: int, now: int) -> Job | None:
        return replace(job, priority=int(self.to))


@dataclass(frozen=True)
class Reschedule(Edit):
    """Set when_to_run of the matched jobs: to `at` (0 = run now), or, with `spread`
    seconds, evenly over [start, start + spread) in a stable order (start is `at`,
    or the current time when `at` is 0). An empty filter needs `all`."""

    job_filter: JobFilter
    at: int
    spread: int = 0
    all: bool = False
    verb: ClassVar[str] = "reschedule"
    sets: ClassVar[tuple[str, ...]] = ("when_to_run",)

    def start(self, now: int) -> int:
        return self.at if self.at or not self.spread else now

    def validate(self, store: QueueStore) -> None:
        require_scope(self.job_filter, self.all, "reschedule", "change")
        if self.at < 0:
            raise UsageError(f"cannot schedule before 1970: @{self.at}")
        if self.spread < 0:
            raise UsageError("--spread must not be negative")
        last = self.start(int(time.time())) + max(self.spread - 1, 0)
        if last > INT32_MAX:
            holder = (
                f"this {'MySQL' if store.backend == 'mysql' else 'PostgreSQL'} queue's"
                if store.dialect.INT32_WHEN_TO_RUN
                else "a MySQL or PostgreSQL queue's"
            )
            raise UsageError(
                f"{format_epoch(last)} is too late: {holder} when_to_run is a 32-bit INT, "
                f"which holds times up to {format_epoch(INT32_MAX)} (and `check` flags later ones)"
            )

    def describe(self) -> str:
        what = f"reschedule ({self.job_filter.describe()})"
        if self.spread:
            start = format_epoch(self.at) if self.at else "now"
            return f"{what} spread over {self.spread}s from {start}"
        return f"{what} to {format_epoch(self.at)}"

    def settled(self, table: sa.Table) -> sa.ColumnElement[bool] | None:
        # A spread gives each job its own time: only a fixed time can already be set.
        return None if self.spread else _is(table.c.when_to_run, self.at)

    def settled_phrase(self) -> str:
        return "already due now" if not self.at else f"already at {format_epoch(self.at)}"

    def after(self, job: Job, index: int, count: int, now: int) -> Job | None:
        if not self.spread or count <= 1:
            when = self.start(now) if self.spread else self.at
        else:
            when = spread_times(count, self.start(now), self.spread)[index]
        return replace(job, when_to_run=when)

    def run(self, store: QueueStore, conn: Connection, matched: int, now: int) -> int:
        t = store.table
        if not self.spread or matched <= 1:
            value = self.start(now) if self.spread else self.at
            stmt = sa.update(t).where(self.where(store)).values(when_to_run=value)
            return conn.execute(stmt).rowcount
        d = store.dialect
        # Job i (0-based, in a stable order) runs at start + floor(i * spread / n): every
        # job lands in [start, start + spread), evenly spaced. ROW_NUMBER() does it in
        # one statement on SQLite >= 3.25 and MariaDB >= 10.2 / MySQL 8.
        rank = sa.func.row_number().over(order_by=stable_order(store)) - 1
        offset = d.int_div(rank * sa.literal(self.spread, sa.Integer), sa.literal(matched))
        ranked = (
            sa.select(
                t.c.unique_key.label("uk"),
                t.c.function_name.label("fn"),
                (sa.literal(self.start(now), sa.Integer) + offset).label("new_when"),
            )
            .where(self.where(store))
            .subquery("ranked")
        )
        stmt = (
            sa.update(t)
            .values(when_to_run=ranked.c.new_when)
            .where(t.c.unique_key == ranked.c.uk, t.c.function_name == ranked.c.fn)
        )
        return conn.execute(stmt).rowcount


@dataclass(frozen=True)
class Purge(Edit):
    """Delete the matched jobs; `export` writes them first as JSON Lines."""

    job_filter: JobFilter
    all: bool = False
    export: Path | None = None
    verb: ClassVar[str] = "purge"
    checked: ClassVar[bool] = False  # the rows are gone

    def validate(self, store: QueueStore) -> None:
        require_scope(self.job_filter, self.all, "purge", "delete")
        if self.export is not None:
            check_export_path(self.export)

    def describe(self) -> str:
        return f"purge ({self.job_filter.describe()})"

    def after(self, job: Job, index: int, count: int, now: int) -> Job | None:
        return None

    def run(self, store: QueueStore, conn: Connection, matched: int, now: int) -> int:
        if self.export is not None:
            exported = write_jobs(
                store, conn, self.where(store), self.export, what="purge --export"
            ).rows
            if exported != matched:
                raise VerifyError(
                    f"exported {exported} jobs but {matched} match: nothing was purged"
                )
        return conn.execute(sa.delete(store.table).where(self.where(store))).rowcount


@dataclass(frozen=True)
class Repair(Edit):
    """Fix, without loss, rows gearmand cannot replay but whose meaning is clear.

    gearmand 1.1.20 itself stores an empty payload as NULL data, and its SQLite replay
    then refuses the row and the daemon does not start (seen here). Such a payload
    becomes an empty BLOB, a TEXT payload the BLOB of the same bytes, and a NULL
    when_to_run 0 (run now, as MySQL's replay reads it). Rows whose meaning is not
    clear (a priority of 7, a bad key) are left for `check` to report.
    """

    job_filter: JobFilter = field(default_factory=JobFilter)
    verb: ClassVar[str] = "repair"
    # A repaired value is a BLOB and an INTEGER by construction. Whatever else such a
    # row had wrong (a priority of 7) it had before: `check` reports it, and the repair
    # must not be refused for it.
    checked: ClassVar[bool] = False

    def describe(self) -> str:
        scope = "" if self.job_filter.is_empty else f" ({self.job_filter.describe()})"
        return f"repair rows gearmand cannot replay{scope}"

    def where(self, store: QueueStore, table: sa.Table | None = None) -> sa.ColumnElement[bool]:
        t = store.table if table is None else table
        return sa.and_(super().where(store, t), store.dialect.repairable(t))

    def after(self, job: Job, index: int, count: int, now: int) -> Job | None:
        return replace(job, when_to_run=job.when_to_run or 0)

    def run(self, store: QueueStore, conn: Connection, matched: int, now: int) -> int:
        values = store.dialect.repaired_values(store.table)
        return conn.execute(sa.update(store.table).where(self.where(store)).values(values)).rowcount


def _is(column: sa.ColumnElement, value: int) -> sa.ColumnElement[bool]:
    """`column = value`, false (not NULL) for a NULL: its negation must select NULLs, which
    an edit sets like any other value."""
    return sa.and_(column.is_not(None), column == value)


def stable_order(store: QueueStore) -> list[sa.ColumnElement]:
    """The order --spread hands out times in: when the job was due, then priority,
    function and unique key (byte-wise), so the same queue always spreads the same way."""
    t = store.table
    d = store.dialect
    return [
        sa.func.coalesce(t.c.when_to_run, 0),
        t.c.priority,
        d.text_key(t.c.function_name),
        d.text_key(t.c.unique_key),
    ]


def spread_times(count: int, start: int, spread: int) -> list[int]:
    """What --spread gives the jobs, in their stable order (the SQL computes the same)."""
    if count <= 1 or not spread:
        return [start] * count
    return [start + (i * spread) // count for i in range(count)]


def count_each(
    conn: Connection,
    store: QueueStore,
    conds: Mapping[str, sa.ColumnElement[bool]],
    scope: sa.ColumnElement[bool] | None,
) -> dict[str, int]:
    """How many rows each condition selects, in ONE scan of the rows `scope` selects
    (None: every row), in the caller's transaction."""
    if not conds:
        return {}
    query = sa.select(*map(count_if, conds.values())).select_from(store.table)
    row = conn.execute(query if scope is None else query.where(scope)).one()
    return {name: int(count) for name, count in zip(conds, row, strict=True)}


def count_edit(
    conn: Connection,
    store: QueueStore,
    edit: Edit,
    *,
    matched: bool = True,
    also: Mapping[str, sa.ColumnElement[bool]] | None = None,
) -> dict[str, int]:
    """In one scan, in the caller's transaction: the edit's rows ("matched", unless
    `matched` is False), the ones its filter selects that are already as it would leave
    them ("already", for an edit that has such rows) and the conditions of `also`.

    The scan reads every row when `also` counts the long keys, else the filter's rows
    when the settled ones are counted (they are not the edit's), else the edit's own."""
    conds = dict(also or {})
    if matched:
        conds["matched"] = edit.where(store)
    settled = edit.settled(store.table)
    if settled is not None:
        conds["already"] = sa.and_(edit.job_filter.where(store.table, store.dialect), settled)
    if "long_keys" in conds:
        scope = None
    elif "already" in conds:
        scope = edit.job_filter.where(store.table, store.dialect)
    else:
        scope = edit.where(store)
    return count_each(conn, store, conds, scope)


def already_settled(conn: Connection, store: QueueStore, edit: Edit) -> int:
    """The jobs the edit's filter selects that are already as the edit would leave them."""
    return count_edit(conn, store, edit, matched=False).get("already", 0)
