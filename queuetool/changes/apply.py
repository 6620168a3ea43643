"""Applying edits: one safety sequence for every batch (`apply_edits`).

Validate the request, refuse while the queue's gearmand runs, open ONE transaction,
`check` the rows the edit will change (gearmand must be able to replay them
afterwards: the edit only sets its own columns, to values valid by construction, so
the rest of each row is what must already be right) and count them, snapshot the rows
the batch will change inside the same transaction (so the snapshot is exactly what
the edit changes; `full_snapshot` takes the whole table instead), run each edit's
single set-based UPDATE/DELETE, verify it changed exactly the rows counted, then
commit. Any failure rolls the whole batch back. The dry run is dryrun.py's `plan`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..config import DEFAULT_KEEP
from ..errors import QueuetoolWarning, UsageError, VerifyError
from ..priority import Priority
from ..table.check import CheckResult, check, conditions
from ..table.filters import JobFilter
from ..table.store import MAX_UNIQUE_BYTES, QueueStore
from .kinds import (
    Edit,
    Purge,
    Repair,
    Reprioritise,
    Reschedule,
    already_settled,
    count_edit,
)
from .restore import RestoreResult, restore
from .snapshot import SnapshotInfo, check_keep, prune, take


@dataclass(frozen=True)
class AppliedEdit:
    """One edit of a batch as applied: the rows it matched and changed."""

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

    changes: list[AppliedEdit] = field(default_factory=list)
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
        (`window.UndoableChange`) wants them; the window owns the daemon, so no guard by
        default."""
        if self.snapshot is None:
            raise UsageError("this edit took no snapshot, so it cannot be undone")
        return Undo(store, self.snapshot.path, self.snapshot_dir, guard, self.checked)


@dataclass
class Undo:
    """Puts the table back as it was before an edit (`window.UndoableChange`)."""

    store: QueueStore
    snapshot: Path
    snapshot_dir: Path | None = None
    guard: bool = False
    checked: CheckResult | None = None  # vouches for the table the edit left (the window's)

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
            batch = _Batch(store, conn, edits, frozen, result, now, by_rows, prechecked)
            if not snapshot:
                batch.run()
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
                    during=batch.run,
                )
                result.snapshot_dir = result.snapshot.path.parent
                if not result.changed:  # nothing matched: nothing to undo
                    _discard(result)
                    return _unchanged(result, edits, started)
            # Each statement changed exactly the rows counted (and checked) just before it,
            # in this transaction. No recount: on InnoDB a COUNT after a big DELETE or
            # UPDATE in the same transaction walks the undo log (seconds at 1M rows).
        result.change_seconds = time.monotonic() - batch.mark  # the commit included
    if result.snapshot is not None and keep is not None:
        prune(result.snapshot.path.parent, keep, result.snapshot)
    result.elapsed = time.monotonic() - started
    return result


@dataclass
class _Batch:
    """Runs a batch's statements inside `apply_edits`' transaction: called by
    `snapshot.take` once the snapshot's rows are in its file (while they are hashed),
    or directly when no snapshot is taken. Fills `result.changes` and the timings."""

    store: QueueStore
    conn: Connection
    edits: Sequence[Edit]
    frozen: list[Edit]  # the edits with "now" fixed
    result: EditResult
    now: int
    by_rows: bool  # the snapshot holds only the rows the batch changes
    prechecked: Future[CheckResult] | None = None
    mark: float = field(default_factory=time.monotonic)

    def run(self, snapshot_rows: int | None = None) -> None:
        """Every edit's statement; with a snapshot, while its rows are hashed."""
        store, conn, result = self.store, self.conn, self.result
        edits, frozen = self.edits, self.frozen
        result.snapshot_seconds = time.monotonic() - self.mark
        self.mark = time.monotonic()
        if self.by_rows and not snapshot_rows:
            # No edit matches a row before the first runs, so none ever does.
            result.changes = [
                AppliedEdit(e, 0, 0, already_settled(conn, store, live))
                for e, live in zip(edits, frozen, strict=True)
            ]
            return
        checked = self.prechecked.result() if self.prechecked is not None else None
        if checked is not None and checked.ok:
            result.checked = checked
        # Unless the whole table checked clean, the first edit's scan also counts the
        # long keys the batch leaves in the table (so it reads every row).
        long_keys = _long_keys(store, frozen) if result.checked is None else None
        real = [e for e in frozen if not isinstance(e, Repair)]
        # With the table checked clean its repairs match nothing, so a rows
        # snapshot holds exactly the rows of the batch's one real edit.
        alone = snapshot_rows if self.by_rows and result.checked and len(real) == 1 else None
        for edit, live in zip(edits, frozen, strict=True):
            # Each edit sees the table as the earlier ones left it. Counted before the
            # edit runs: after it, the changed rows are settled too.
            also = {"long_keys": long_keys} if long_keys is not None else {}
            if result.checked is None:
                matched, counts = _examine(store, conn, live, also)
            else:
                count = not isinstance(live, Repair) and alone is None
                counts = count_edit(conn, store, live, matched=count)
                # The whole table checked clean: its repairs match nothing.
                matched = counts.get("matched", 0 if isinstance(live, Repair) else alone or 0)
            if long_keys is not None:
                _warn_long_keys(counts["long_keys"])
                long_keys = None
            changed = live.run(store, conn, matched, self.now) if matched else 0
            if changed != matched:
                raise VerifyError(
                    f"{live.describe()}: {matched} jobs matched but {changed} changed; "
                    "rolled back, nothing changed"
                )
            result.changes.append(AppliedEdit(edit, matched, changed, counts.get("already", 0)))


def _unchanged(result: EditResult, edits: Sequence[Edit], started: float) -> EditResult:
    result.changes = result.changes or [AppliedEdit(e, 0, 0) for e in edits]
    result.elapsed = time.monotonic() - started
    return result


def _discard(result: EditResult) -> None:
    """Remove the snapshot of a batch that changed nothing."""
    if result.snapshot is not None:
        result.snapshot.path.unlink(missing_ok=True)
        result.snapshot = None


def _examine(
    store: QueueStore, conn: Connection, edit: Edit, also: Mapping[str, sa.ColumnElement[bool]]
) -> tuple[int, dict[str, int]]:
    """How many rows the edit will change, and the counts of `also`; VerifyError if
    gearmand could not replay one of those rows afterwards. The rows are checked in a
    scan of their own (its conditions on them alone: folded into a scan of every row
    they cost SQLite more than the scan they saved); the counts take one more."""
    where = edit.where(store)
    matched = 0
    if edit.checked:
        checked = check(store, conn, where)
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
        matched = checked.rows
    counts = count_edit(conn, store, edit, matched=not edit.checked, also=also)
    return counts.pop("matched", matched), counts


class LongKeys(QueuetoolWarning):
    """The table holds jobs whose unique key gearmand corrupts on its next start."""


def _long_keys(store: QueueStore, edits: Sequence[Edit]) -> sa.ColumnElement[bool]:
    """The jobs whose unique key gearmand corrupts on its next start that the batch
    leaves in the table. An edit never changes a key, so it cannot make one, but neither
    may it pass over them silently (the window's check refuses such a table)."""
    long_key = conditions(store)["unique_key_length"]
    purged = [e.where(store) for e in edits if isinstance(e, Purge)]
    return sa.and_(long_key, sa.not_(sa.or_(*purged))) if purged else long_key


def _warn_long_keys(count: int) -> None:
    if count:
        warnings.warn(
            f"{count} jobs in the table have a unique key of {MAX_UNIQUE_BYTES + 1} bytes or "
            f"more: after a restart gearmand cuts such a key to {MAX_UNIQUE_BYTES} bytes and "
            "puts a NUL before the payload. See `queuetool check`; purge them (with --export) "
            "and submit them again with shorter keys",
            LongKeys,
            stacklevel=2,
        )


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
