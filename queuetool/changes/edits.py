"""Offline edits of the queue table: reprioritise, reschedule, purge.

Every edit follows one safety sequence (`apply_edits`): validate the request,
refuse while the queue's gearmand runs, open ONE transaction, `check` the rows the
edit will change (gearmand must be able to replay them afterwards: the edit only
sets its own columns, to values valid by construction, so the rest of each row is
what must already be right) and count them, snapshot the rows the batch will change
inside the same transaction (so the snapshot is exactly what the edit changes;
`full_snapshot` takes the whole table instead), run each edit's
single set-based UPDATE/DELETE, verify it changed exactly the rows counted, then
commit. Any failure rolls the whole batch back. `plan` is the dry run: counts and a
sample, nothing written.

An edit is a small dataclass, so several can be applied in one go (the
maintenance window batches them); each knows its statement and which columns it
sets.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..config import DEFAULT_KEEP
from ..errors import QueuetoolWarning, UsageError, VerifyError
from ..priority import Priority
from ..table.check import CheckResult, check, conditions
from ..table.export import check_export_path, export_jobs
from ..table.filters import JobFilter
from ..table.jobs import Job, select_jobs
from ..table.store import INT32_MAX, MAX_UNIQUE_BYTES, QueueStore
from ..timeparse import format_epoch
from .restore import RestoreResult, restore
from .snapshot import SnapshotInfo, check_keep, prune, take

SAMPLE = 10


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
            holder = "this MySQL queue's" if store.dialect.INT32_WHEN_TO_RUN else "a MySQL queue's"
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
            exported = export_jobs(store, conn, self.where(store), self.export)
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


# -- dry run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What an edit would do now: how many jobs it would change, how many it selects but
    finds already as asked, and the first few it would change, before and after."""

    edit: Edit
    matched: int
    sample: list[Job]
    already: int = 0
    after: list[Job | None] = field(default_factory=list)  # `sample` as the edit leaves it

    def describe(self) -> str:
        """ "reprioritise (...) to high: 5 jobs (2 already at high)"."""
        text = f"{self.edit.describe()}: {self.matched} jobs"
        if self.already:
            text += f" ({self.already} {self.edit.settled_phrase()})"
        return text


def plan(store: QueueStore, edits: Sequence[Edit], sample: int = SAMPLE) -> list[Plan]:
    """The dry run: each edit's count and sample against the current table; writes nothing.

    In a batch, later edits are counted against the table as it is, not as the
    earlier edits would leave it.
    """
    now = int(time.time())
    plans = []
    with store.connect() as conn:
        store.require_table(conn)
        for edit in edits:
            edit.validate(store)
            frozen = edit.frozen(now)
            matched = _count(conn, store, frozen.where(store))
            # The edit's own WHERE (a repair narrows its filter to repairable rows).
            query = select_jobs(store, JobFilter()).where(frozen.where(store))
            if isinstance(frozen, Reschedule) and frozen.spread:
                # The order --spread hands out times in, so each job shows its own.
                query = query.order_by(None).order_by(*stable_order(store))
            jobs = [
                Job(r.unique_key, r.function_name, r.priority, r.when_to_run, int(r.size or 0))
                for r in conn.execute(query.limit(sample))
            ]
            after = [frozen.after(job, i, matched, now) for i, job in enumerate(jobs)]
            plans.append(Plan(edit, matched, jobs, _already(conn, store, frozen), after))
    return plans


def _already(conn: Connection, store: QueueStore, edit: Edit) -> int:
    """The jobs the edit's filter selects that are already as the edit would leave them."""
    settled = edit.settled(store.table)
    if settled is None:
        return 0
    return _count(conn, store, sa.and_(edit.job_filter.where(store.table, store.dialect), settled))


# -- applying --------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    edit: Edit
    matched: int
    changed: int
    already: int = 0  # selected by the filter but already as asked: left as they were

    def describe(self) -> str:
        """ "5 jobs changed, 2 already at high: reprioritise (...) to high"."""
        already = f", {self.already} {self.edit.settled_phrase()}" if self.already else ""
        return f"{self.changed} jobs changed{already}: {self.edit.describe()}"


@dataclass
class EditResult:
    """What `apply_edits` did; `restore()` puts the table back as it was before."""

    changes: list[Change] = field(default_factory=list)
    snapshot: SnapshotInfo | None = None
    elapsed: float = 0.0
    snapshot_seconds: float = 0.0
    change_seconds: float = 0.0
    snapshot_dir: Path | None = None
    checked: CheckResult | None = None  # a clean check of the whole table before the batch

    @property
    def changed(self) -> int:
        return sum(c.changed for c in self.changes)

    @property
    def matched(self) -> int:
        return sum(c.matched for c in self.changes)

    def restore(self, store: QueueStore, **kwargs: object) -> RestoreResult:
        """Put back the snapshot taken before the edit (see `restore.restore`)."""
        if self.snapshot is None:
            raise UsageError("this edit took no snapshot, so there is nothing to restore")
        kwargs.setdefault("keep", None)
        return restore(store, self.snapshot.path, self.snapshot_dir, **kwargs)  # type: ignore[arg-type]

    def undo(self, store: QueueStore, guard: bool = False) -> Undo:
        """The pre-edit snapshot and a no-argument `restore()`, as the maintenance window
        (`window.Change`) wants them; the window owns the daemon, so no guard by default."""
        if self.snapshot is None:
            raise UsageError("this edit took no snapshot, so it cannot be undone")
        return Undo(store, self.snapshot.path, self.snapshot_dir, guard, self.checked)


@dataclass
class Undo:
    """Puts the table back as it was before an edit (`window.Change`)."""

    store: QueueStore
    snapshot: Path
    snapshot_dir: Path | None = None
    guard: bool = False
    checked: CheckResult | None = None  # vouches for the table the edit left (window.Change)

    def restore(self) -> Path | None:
        """Restore the snapshot; returns the snapshot of the replaced (edited) rows."""
        result = restore(self.store, self.snapshot, self.snapshot_dir, keep=None, guard=self.guard)
        return result.before.path if result.before is not None else None


def apply_edits(
    store: QueueStore,
    edits: Sequence[Edit],
    snapshot_dir: str | Path | None = None,
    keep: int | None = DEFAULT_KEEP,
    *,
    gearmand: str | None = None,
    force: bool = False,
    guard: bool = True,
    snapshot: bool = True,
    create_dir: bool | None = None,
    full_snapshot: bool = False,
    prechecked: Future[CheckResult] | None = None,
) -> EditResult:
    """Apply `edits` in order, in ONE transaction, after a snapshot; all or nothing.

    `snapshot_dir` None is the default state directory (created when missing); a
    given one must exist. `guard` refuses while the queue's gearmand runs (`force`
    overrides: the caller warns). A batch whose filters match nothing changes
    nothing and takes no snapshot. Raises VerifyError (nothing changed) if a row an
    edit touches would not replay afterwards, or the counts do not add up.

    The snapshot holds the rows any edit of the batch matches before the first one
    runs: enough to undo the batch, since a row a later edit changes either was
    changed by an earlier one (so it is in) or is as it was (so that edit's filter
    matched it before). An edit never adds a row nor changes a key, and each changes
    exactly the rows it matched (checked), so the other rows are not touched.

    `prechecked` is a `check` of the whole table the caller runs meanwhile with the
    daemon stopped (the maintenance window): it is waited for before the first write.
    When it is clean the rows an edit touches are only counted, not checked again (an
    edit sets valid values only), and `EditResult.checked` vouches for the table the
    batch leaves; otherwise each edit's rows are checked as usual.
    """
    started = time.monotonic()
    check_keep(keep)  # before anything: the snapshot is pruned only after the commit
    for edit in edits:
        edit.validate(store)
    if guard:
        from ..daemon.guard import ensure_stopped

        ensure_stopped(store, gearmand, force)
    now = int(time.time())
    frozen = [edit.frozen(now) for edit in edits]
    result = EditResult(snapshot_dir=Path(snapshot_dir) if snapshot_dir is not None else None)
    with store.connect() as conn:
        # A big page cache on SQLite, strict mode on MySQL (a value a column cannot hold
        # is an error, never silently cut); set before the transaction begins.
        store.dialect.prepare_writer(conn.connection.driver_connection)
        with conn.begin():
            store.require_table(conn)
            by_rows = snapshot and not full_snapshot
            mark = time.monotonic()

            def run_batch(snapshot_rows: int | None = None) -> None:
                """Every edit's statement; with a snapshot, while its rows are hashed."""
                nonlocal mark
                result.snapshot_seconds = time.monotonic() - mark
                mark = time.monotonic()
                if by_rows and not snapshot_rows:
                    # No edit matches a row before the first runs, so none ever does.
                    result.changes = [
                        Change(e, 0, 0, _already(conn, store, live))
                        for e, live in zip(edits, frozen, strict=True)
                    ]
                    return
                checked = prechecked.result() if prechecked is not None else None
                if checked is not None and checked.ok:
                    result.checked = checked
                if result.checked is None:
                    _warn_long_keys(store, conn, frozen)
                real = [e for e in frozen if not isinstance(e, Repair)]
                # With the table checked clean its repairs match nothing, so a rows
                # snapshot holds exactly the rows of the batch's one real edit.
                alone = snapshot_rows if by_rows and result.checked and len(real) == 1 else None
                for edit, live in zip(edits, frozen, strict=True):
                    # Each edit sees the table as the earlier ones left it.
                    if result.checked is None:
                        matched = _examine(store, conn, live)
                    elif isinstance(live, Repair):
                        matched = 0  # the whole table checked clean: nothing to repair
                    elif alone is not None:
                        matched = alone
                    else:
                        matched = _count(conn, store, live.where(store))
                    # Counted before the edit runs: after it, the changed rows are settled too.
                    already = _already(conn, store, live)
                    changed = live.run(store, conn, matched, now) if matched else 0
                    if changed != matched:
                        raise VerifyError(
                            f"{live.describe()}: {matched} jobs matched but {changed} changed; "
                            "rolled back, nothing changed"
                        )
                    result.changes.append(Change(edit, matched, changed, already))

            if not snapshot:
                run_batch()
            else:

                def touched(table: sa.Table) -> sa.ColumnElement[bool]:
                    return sa.or_(*(e.where(store, table) for e in frozen))

                result.snapshot = take(
                    store,
                    snapshot_dir,
                    keep=None,  # older snapshots are pruned once this one is kept
                    reason=_reason(edits),
                    conn=conn,
                    create=create_dir,
                    scope=touched if by_rows else None,
                    during=run_batch,
                )
                result.snapshot_dir = result.snapshot.path.parent
                if not result.changed:  # nothing matched: nothing to undo
                    _discard(result)
                    return _unchanged(result, edits, started)
            # Each statement changed exactly the rows counted (and checked) just before it,
            # in this transaction. No recount: on InnoDB a COUNT after a big DELETE or
            # UPDATE in the same transaction walks the undo log (seconds at 1M rows).
        result.change_seconds = time.monotonic() - mark  # the commit included
    if result.snapshot is not None and keep is not None:
        prune(result.snapshot.path.parent, keep, result.snapshot)
    result.elapsed = time.monotonic() - started
    return result


def _unchanged(result: EditResult, edits: Sequence[Edit], started: float) -> EditResult:
    result.changes = result.changes or [Change(e, 0, 0) for e in edits]
    result.elapsed = time.monotonic() - started
    return result


def _discard(result: EditResult) -> None:
    """Remove the snapshot of a batch that changed nothing."""
    if result.snapshot is not None:
        result.snapshot.path.unlink(missing_ok=True)
        result.snapshot = None


def _examine(store: QueueStore, conn: Connection, edit: Edit) -> int:
    """How many rows the edit will change; VerifyError if gearmand could not replay one
    of them afterwards. One scan: `check` counts the rows it checks."""
    if not edit.checked:
        return _count(conn, store, edit.where(store))
    checked = check(store, conn, edit.where(store))
    problems = [p for p in checked.problems if not p.kind.startswith(edit.sets or ("\0",))]
    if problems:
        found = "; ".join(
            f"{p.count} {p.description}"
            + (f" (e.g. {p.examples[0][1]}/{p.examples[0][0]})" if p.examples else "")
            for p in problems
        )
        raise VerifyError(
            f"gearmand could not replay rows this edit touches: {found}. Nothing changed; "
            "run `queuetool check` and repair those rows first"
        )
    return checked.rows


class LongKeys(QueuetoolWarning):
    """The table holds jobs whose unique key gearmand corrupts on its next start."""


def _warn_long_keys(store: QueueStore, conn: Connection, edits: Sequence[Edit]) -> None:
    """Name the jobs whose unique key gearmand corrupts on its next start that the batch
    leaves in the table. An edit never changes a key, so it cannot make one, but neither
    may it pass over them silently (the window's check refuses such a table)."""
    long_key = conditions(store)["unique_key_length"]
    purged = [e.where(store) for e in edits if isinstance(e, Purge)]
    left = sa.and_(long_key, sa.not_(sa.or_(*purged))) if purged else long_key
    count = _count(conn, store, left)
    if count:
        warnings.warn(
            f"{count} jobs in the table have a unique key of {MAX_UNIQUE_BYTES + 1} bytes or "
            f"more: after a restart gearmand cuts such a key to {MAX_UNIQUE_BYTES} bytes and "
            "puts a NUL before the payload. See `queuetool check`; purge them (with --export) "
            "and submit them again with shorter keys",
            LongKeys,
            stacklevel=2,
        )


def _count(conn: Connection, store: QueueStore, where: sa.ColumnElement[bool]) -> int:
    return conn.execute(
        sa.select(sa.func.count()).select_from(store.table).where(where)
    ).scalar_one()


def _reason(edits: Sequence[Edit]) -> str:
    verbs = sorted({e.verb for e in edits}, key=[e.verb for e in edits].index)
    return "before-" + "-".join(verbs)


# -- one edit at a time ----------------------------------------------------------------


def reprioritise(
    store: QueueStore, job_filter: JobFilter, to: Priority, *, all: bool = False, **kwargs: object
) -> EditResult:
    """Set the priority of the matched jobs (an empty filter needs `all=True`; see
    `apply_edits` for the keyword arguments)."""
    return apply_edits(store, [Reprioritise(job_filter, to, all)], **kwargs)  # type: ignore[arg-type]


def reschedule(
    store: QueueStore,
    job_filter: JobFilter,
    at: int,
    spread: int = 0,
    *,
    all: bool = False,
    **kwargs: object,
) -> EditResult:
    """Set when_to_run of the matched jobs (`at` 0 = run now), optionally spread (an
    empty filter needs `all=True`)."""
    return apply_edits(store, [Reschedule(job_filter, at, spread, all)], **kwargs)  # type: ignore[arg-type]


def purge(
    store: QueueStore,
    job_filter: JobFilter,
    *,
    all: bool = False,
    export: Path | None = None,
    **kwargs: object,
) -> EditResult:
    """Delete the matched jobs (an empty filter needs `all=True`), exporting them first."""
    return apply_edits(store, [Purge(job_filter, all, export)], **kwargs)  # type: ignore[arg-type]
