"""`import` and `export`: (re)load a queue offline from a job file, the fast cold start.

Pushing jobs through gearmand's protocol commits once per job (~1,300 jobs/s); writing
the rows into the stopped queue and starting the daemon loads 100,000 in seconds.

An import follows the edits' safety sequence:

1. The first pass (`check_file`), the only one over the file: every line parsed once,
   count and checksum compared with the trailer (`jobfile.JobSource.verify`), each job
   keyed if it has none and checked against what gearmand can replay on this table
   (`migrate.carry`, the rules `migrate` uses; all refusals listed together), and what
   passes written to a private spool (`import_spool.py`). All before a running daemon
   is stopped, a snapshot taken or a row committed: a file cut short or altered is
   refused with nothing written (the cold start's rows, written as they are read, are
   rolled back).
2. ONE transaction. SQLite: the spool attached, conflicts counted with a join, and the
   jobs copied by one INSERT ... SELECT in key order (sorted first unless the file
   has them so already), all in the engine; the undo snapshot of an import without
   conflicts is the spool's key list. The file's
   duplicates and the table's conflicts are settled by --on-conflict in SQL (SQLite
   compares keys byte for byte). MySQL: the spooled rows go into a TEMPORARY table
   with the queue table's own key (LIKE it, so keys compare as its collation does)
   through migrate's batched writer; then conflicts (fail: refused, listed; skip: left
   out; replace: the old rows deleted), the snapshot (the rows replaced and every key
   added or replaced: restoring it deletes the added jobs and puts the replaced ones
   back, see `restore.py`), one INSERT ... SELECT, and the rows with the file's keys
   read back: their checksum must be what the file said, less what was left out.
   Every step's row count is checked; then the commit. The cold start, an EMPTY MySQL
   table (locked), skips the TEMPORARY table: rows straight in, keys snapshot, the
   table's server-side checksum compared with the spool's, then the commit
   (`_into_empty`); a job the file holds twice rolls that back and the import goes the
   general way. Called without a first pass of the caller's (`import_jobs` with no
   `checked`), the cold start makes it itself and writes each batch as it reads the
   next (`_cold_start`): the same checks, all of them before the commit.

While the daemon runs, `import_window` runs the same inside the maintenance window
(stop, import, check, start, verify the reload, or roll back to the snapshot).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..config import DEFAULT_KEEP
from ..errors import ConnectError, ProblemsFound, UsageError, VerifyError, one_line
from ..migrate.carry import Carrier, Refusals, Row
from ..migrate.skipped import skipped_sink
from ..migrate.staging import (
    CONFLICT_CHOICES,
    StagingWriter,
    ThreadedWriter,
    Writer,
    combine,
    open_writer,
)
from ..table.checksum import Checksum, stream_query
from ..table.dialects.sqlite import insert_exact
from ..table.export import check_export_path, format_of, write_jobs
from ..table.filters import JobFilter
from ..table.jobfile import FileCheck, JobSource
from ..table.store import COLUMNS, QueueStore, conn_quote, queue_table
from .apply import Undo
from .import_spool import Spool
from .snapshot import ROWS, SnapshotInfo, _take, batched, check_keep, prune, take_rows

TEMP = "qt_import"
Progress = Callable[[int, int], None]


# -- export ----------------------------------------------------------------------------


@dataclass
class ExportResult:
    """What `export` wrote: the file, its format, and the checksum of its jobs."""

    path: Path
    fmt: str
    checksum: Checksum
    elapsed: float

    @property
    def rows(self) -> int:
        return self.checksum.rows


def export_jobs(
    store: QueueStore,
    path: Path,
    job_filter: JobFilter | None = None,
    fmt: str | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the jobs `job_filter` selects (every job by default) to `path` (`-`:
    stdout) as JSON Lines or CSV with a trailer `import` verifies. Only reads: safe
    while gearmand runs (the caller refuses a --store-queue-on-shutdown daemon, whose
    table is not its queue)."""
    started = time.monotonic()
    fmt = format_of(path, fmt)
    check_export_path(path)
    job_filter = job_filter or JobFilter()
    where = None if job_filter.is_empty else job_filter.where(store.table, store.dialect)
    # One read transaction: the file is one consistent state of the table.
    with store.connect(read_only=True) as conn, conn.begin():
        store.require_table(conn)
        total = 0
        if progress is not None:
            query = sa.select(sa.func.count()).select_from(store.table)
            total = conn.execute(query if where is None else query.where(where)).scalar_one()
        tick = None if progress is None else (lambda done: progress(done, total))
        checksum = write_jobs(store, conn, where, path, fmt, job_filter.describe(), tick)
    return ExportResult(path, fmt, checksum, time.monotonic() - started)


# -- import ----------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What `import_jobs` did (or, dry, would do)."""

    source: str
    file: FileCheck
    on_conflict: str
    refusals: Refusals = field(default_factory=Refusals)
    generated: int = 0  # unique keys made (UUID version 1), as libgearman does
    normalised: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0  # jobs the file holds twice, left out (skip) or overridden (replace)
    added: int = 0
    replaced: int = 0
    skipped: int = 0  # already in the table, left as they were (skip)
    conflicts: int = 0  # a dry run under --on-conflict fail: already in the table
    snapshot: SnapshotInfo | None = None
    snapshot_dir: Path | None = None
    skipped_file: Path | None = None
    dry_run: bool = False
    elapsed: float = 0.0

    @property
    def written(self) -> int:
        return self.added + self.replaced

    def lines(self) -> list[str]:
        """The outcome, in words."""
        would = "would be " if self.dry_run else ""
        out = [f"{self.source}: {self.file.describe()}"]
        if self.generated:
            out.append(f"{self.generated} jobs without a unique key {would}given a UUID v1")
        for what, n in self.normalised.items():
            out.append(f"normalised: {n} {what}")
        if self.refusals:
            where = f", exported to {self.skipped_file}" if self.skipped_file else ""
            out.append(f"{self.refusals.total} jobs refused (--skip-invalid){where}:")
            out.extend(f"  {line}" for line in self.refusals.lines())
        if self.duplicates:
            kept = "the first kept" if self.on_conflict == "skip" else "the last kept"
            out.append(f"{self.duplicates} jobs the file holds more than once: {kept}")
        if self.conflicts:
            out.append(
                f"{self.conflicts} jobs are already in the table: the import would be "
                "refused (--on-conflict fail); skip keeps the table's, replace the file's"
            )
            return out
        out.append(
            f"{self.added} jobs {would}added, {self.replaced} {would}replaced, "
            f"{self.skipped} already in the table {would}left as they were "
            f"(--on-conflict {self.on_conflict})"
        )
        return out

    def undo(self, store: QueueStore) -> Undo:
        """The undo snapshot and its restore, for the maintenance window."""
        if self.snapshot is None:
            raise UsageError("this import took no snapshot, so it cannot be undone")
        return Undo(store, self.snapshot.path, self.snapshot_dir)


def check_file(
    store: QueueStore,
    source: JobSource,
    sink: Any = None,
    rows_to: Callable[[list[Row]], None] | None = None,
) -> tuple[FileCheck, Refusals]:
    """The first pass, the only one over the file: verified against its trailer, every
    job given its key if it has none and checked against what gearmand can replay on
    this table; what passes goes to the spool the second pass copies from
    (`FileCheck.spool`, removed by `source.close()`), and each such batch to `rows_to`
    as well (the cold start's writer, `_cold_start`)."""
    spool = Spool()
    source.spools.append(spool)

    def refuse(row: Row, kind: str) -> None:
        spool.refuse(row, kind)
        if sink is not None:
            sink(row, kind)

    refusals = Refusals(sink=refuse)
    carrier = _carrier(store, refusals)
    carry = carrier.carry
    # The spooled rows' checksum: the file's, corrected by the few rows that changed.
    changed_from: list[Row] = []
    changed_to: list[Row] = []
    generated = 0

    last = ""  # the previous row's key: rows in key order need no sort (`Spool.sorted`)
    descents = 0

    def each(batch: list[Row]) -> None:
        nonlocal generated, last, descents
        rows = []
        for row in batch:
            keyed = _keyed(row)
            if keyed is not row:
                generated += 1
            carried = carry(keyed)
            if carried is not row:
                changed_from.append(row)
                if carried is not None:
                    changed_to.append(carried)
            if carried is not None:
                rows.append(carried)
                key = carried[0]
                if key < last:
                    descents += 1
                last = key
        spool.add(rows)
        if rows_to is not None and rows and not refusals:
            rows_to(rows)  # after a refusal, no more: the import is refused, or goes general

    try:
        file = source.verify(each)
        spool.done()
    except BaseException:
        spool.close()  # a damaged file: nothing of it stays anywhere
        source.spools.remove(spool)
        raise
    spool.generated = generated
    spool.normalised = carrier.normalised
    spool.descents = descents
    spool.checksum = combine(
        [file.checksum, Checksum().update(changed_to)], [Checksum().update(changed_from)]
    )
    file.spool = spool
    return file, refusals


def _carrier(store: QueueStore, refusals: Refusals) -> Carrier:
    """The replay checks for this table (its backend's limits, MySQL's charsets)."""
    with store.connect(read_only=True) as conn:
        store.require_table(conn)
        charsets = store.dialect.column_charsets(conn, store.table_name)
    return Carrier(
        refusals,
        int32=store.dialect.INT32_WHEN_TO_RUN,
        nul=store.dialect.TEXT_HOLDS_NUL,
        # Text that is not UTF-8 (gearmand replays such keys) where the backend keeps it
        # byte-exact (SQLite's TEXT); refused where it cannot.
        utf8=not store.dialect.LENIENT_TEXT,
        key_charset=charsets[0],
        function_charset=charsets[1],
    )


def _keyed(row: Row, key: str | None = None) -> Row:
    """The row with a unique key: a job without one gets a UUID version 1, as libgearman
    gives it (uuid_generate_time_safe), so its age can still be read from the key."""
    if row[0] is None or row[0] == "":
        return (key or str(uuid.uuid1()), *row[1:])
    return row


def import_jobs(
    store: QueueStore,
    source: JobSource,
    snapshot_dir: str | Path | None = None,
    keep: int | None = DEFAULT_KEEP,
    *,
    on_conflict: str = "fail",
    dry_run: bool = False,
    skip_invalid: Path | None = None,
    guard: bool = True,
    gearmand: str | None = None,
    force: bool = False,
    checked: tuple[FileCheck, Refusals] | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Add the jobs of `source` to the queue table in one transaction, after an undo
    snapshot; all or nothing (see the module doc).

    Raises FileDamaged (nothing written) for a file that is not what its trailer says,
    ProblemsFound listing every job gearmand could not replay (unless `skip_invalid`
    names a file for them) and every conflict under --on-conflict fail. `checked` is
    the first pass's result when the caller has run it already (`check_file`).
    """
    started = time.monotonic()
    if on_conflict not in CONFLICT_CHOICES:
        raise UsageError(f"--on-conflict must be one of {', '.join(CONFLICT_CHOICES)}")
    check_keep(keep)
    if skip_invalid is not None and not dry_run:
        check_export_path(skip_invalid)
    if guard and not dry_run:
        from ..daemon.guard import ensure_stopped

        ensure_stopped(store, gearmand, force)
    result = ImportResult(source.name, FileCheck("jsonl", 0, Checksum()), on_conflict)
    result.dry_run = dry_run
    own_check = checked is None
    done = False
    straight = True  # the cold start may write into an empty table straight (`_into_empty`)
    if checked is None and not dry_run and skip_invalid is None and writes_as_it_reads(store):
        checked, done = _cold_start(store, source, result, snapshot_dir, progress)
        straight = False  # tried: not empty, or rolled back for what the general way settles
    elif checked is None:
        checked = check_file(store, source)
    try:
        if not done:
            _import_checked(
                store, source, result, checked, snapshot_dir, skip_invalid, progress, straight
            )
    finally:
        if own_check:
            _drop_spool(source, checked[0])
    if result.snapshot is not None and keep is not None:
        prune(result.snapshot.path.parent, keep, result.snapshot)
    result.elapsed = time.monotonic() - started
    return result


def writes_as_it_reads(store: QueueStore) -> bool:
    """Whether an import without a first pass of the caller's writes each batch as it
    reads the file (`_cold_start`): where the cold start goes straight into an empty
    table (`_into_empty`: MySQL). Elsewhere the import makes the same first pass itself."""
    d = store.dialect
    return d.server_checksum is not None and not d.TRANSACTIONAL_DDL


def refuse_unreplayable(checked: tuple[FileCheck, Refusals]) -> None:
    """ProblemsFound listing every job of the first pass gearmand could not replay. The
    CLI calls it before a window stops the daemon: the file alone decides it."""
    file, first = checked
    if first:
        raise ProblemsFound(
            f"{first.total} of {file.rows} jobs cannot be imported: "
            + "; ".join(first.lines())
            + ". Nothing was imported (--skip-invalid FILE leaves them out, in FILE)"
        )


def _drop_spool(source: JobSource, file: FileCheck) -> None:
    """The spool of a first pass this call made itself: gone with the call."""
    if file.spool is not None:
        file.spool.close()
        source.spools.remove(file.spool)


def _import_checked(
    store: QueueStore,
    source: JobSource,
    result: ImportResult,
    checked: tuple[FileCheck, Refusals],
    snapshot_dir: str | Path | None,
    skip_invalid: Path | None,
    progress: Progress | None,
    straight: bool = True,
) -> None:
    result.file, first = checked
    if result.file.spool is None:  # checked by a caller without the spool
        raise UsageError("the import's first pass (check_file) did not spool its rows")
    dry_run = result.dry_run
    if skip_invalid is None:
        refuse_unreplayable(checked)
    sink_path = skip_invalid if skip_invalid is not None and first and not dry_run else None
    if sink_path is None:
        _load_and_apply(store, source, result, Refusals(), snapshot_dir, progress, straight)
    else:
        with skipped_sink(sink_path, lambda p: setattr(result, "skipped_file", p)) as sink:
            refusals = Refusals(sink=sink)
            _load_and_apply(store, source, result, refusals, snapshot_dir, progress, straight)


def _load_and_apply(
    store: QueueStore,
    source: JobSource,
    result: ImportResult,
    refusals: Refusals,
    snapshot_dir: str | Path | None,
    progress: Progress | None,
    straight: bool = True,
) -> None:
    spool = result.file.spool
    for row, kind in spool.refusals():
        refusals.add(row, kind)
    result.refusals = refusals
    _spooled(result, spool)
    if store.dialect.SPOOL_COPY:
        _sqlite_copy(store, result, snapshot_dir)
        if progress is not None:
            progress(result.file.rows, result.file.rows)
        return
    with store.connect() as conn:
        store.dialect.prepare_writer(conn.connection.dbapi_connection)
        load = (store, conn, source, result, progress)
        if store.dialect.TRANSACTIONAL_DDL:
            # Everything in one transaction, the TEMP table too (gone with the connection).
            _in_one_transaction(
                conn, result, lambda: _apply(store, conn, result, _load(*load), snapshot_dir)
            )
            return
        # The writer commits its batches (into the TEMPORARY table only, which is the
        # connection's own); the queue table is touched in the one transaction after it.
        try:
            direct = straight and not result.dry_run and spool.rows > 0
            fill = functools.partial(_write_spool, spool, progress=progress)
            if not direct or not _into_empty(store, conn, result, snapshot_dir, fill):
                expected = _load(*load)
                _in_one_transaction(
                    conn, result, lambda: _apply(store, conn, result, expected, snapshot_dir)
                )
        except BaseException:
            # The first error is the one to report: a lost connection took the TEMPORARY
            # table with it, and dropping it would fail too.
            with contextlib.suppress(Exception):
                _drop_temp(store, conn)
            raise
        _drop_temp(store, conn)


def _drop_temp(store: QueueStore, conn: Connection) -> None:
    store.dialect.drop_table(conn, TEMP, temporary=True)
    conn.commit()


def _in_one_transaction(conn: Connection, result: ImportResult, work: Callable[[], None]) -> None:
    """Run `work` in one transaction: committed, or rolled back on an error and for a dry
    run (which changes nothing)."""
    trans = conn.begin()
    try:
        work()
    except BaseException:
        try:
            trans.rollback()
        except Exception:
            # The connection is gone (the server rolls back without it): the error to
            # report is the first one, not the rollback's on a dead connection.
            conn.invalidate()
        raise
    if result.dry_run:
        trans.rollback()
    else:
        trans.commit()


class _Fallback(Exception):
    """The direct way does not apply: rolled back, the import goes the general way."""


class _DirectWriter(StagingWriter):
    """Rows straight into the queue table inside the caller's one transaction: no batch
    is a transaction of its own, and a row the key refuses (the file holds a job twice,
    or two keys the table's collation calls equal) stops it (`_Fallback`)."""

    def _begin(self) -> None:
        pass

    def _end(self) -> None:
        pass

    def _undo(self) -> None:
        pass  # MySQL undid the failing statement; the caller rolls the rest back

    def write(self, batch: list[Row], statements: list[bytes] | None = None) -> None:
        if not self._write_batch(batch, statements):
            raise _Fallback("a key the table refuses")


def _spooled(result: ImportResult, spool: Spool) -> None:
    result.generated = spool.generated
    result.normalised = dict(spool.normalised)


def _cold_start(
    store: QueueStore,
    source: JobSource,
    result: ImportResult,
    snapshot_dir: str | Path | None,
    progress: Progress | None,
) -> tuple[tuple[FileCheck, Refusals], bool]:
    """The first pass with its jobs written straight into an EMPTY queue table as it
    reads them (`_into_empty`): the server inserts one batch while the file's next is
    parsed and checked, where the two passes left the server idle during the first
    (1M jobs into MariaDB: 15.6-16.0 s in two passes, 11.2-11.5 s so). Nothing is
    committed before the whole file has been verified against its trailer, the undo
    snapshot taken and the table's checksum found equal to the spool's; a damaged file
    rolls it all back.

    Returns the first pass's result and whether the import is done. Not done (rolled
    back, nothing written): the table was not empty, the file holds a job gearmand
    cannot replay or a job twice; the import then goes on from the spool the general way,
    which reports or settles them."""
    passes: list[tuple[FileCheck, Refusals]] = []

    def fill(writer: Writer) -> None:
        feed = _Feed(writer, progress)
        try:
            passes.append(check_file(store, source, rows_to=feed))
        except BaseException:
            writer.abort()
            raise
        result.file, refused = passes[0]
        if refused or feed.fallback is not None:
            writer.abort()
            raise _Fallback("jobs the general way reports or settles")
        writer.close()
        _spooled(result, result.file.spool)

    try:
        with store.connect() as conn:
            store.dialect.prepare_writer(conn.connection.dbapi_connection)
            done = _into_empty(store, conn, result, snapshot_dir, fill)
    except BaseException:
        if passes:
            _drop_spool(source, passes[0][0])
        raise
    if passes:
        return passes[0], done
    return check_file(store, source), False  # not empty, or no rollback: nothing was read


class _Feed:
    """The first pass's checked batches to the cold start's writer. A key the table
    refuses stops the feeding, not the pass: the spool must be complete for the
    general way."""

    def __init__(self, writer: Writer, progress: Progress | None) -> None:
        self.writer = writer
        self.progress = progress
        self.fallback: _Fallback | None = None
        self.done = 0

    def __call__(self, rows: list[Row]) -> None:
        if self.fallback is not None:
            return
        try:
            self.writer.write(rows)
        except _Fallback as exc:
            self.fallback = exc
            return
        self.done += len(rows)
        if self.progress is not None:
            self.progress(self.done, 0)  # the total is known at the end of the file


def _into_empty(
    store: QueueStore,
    conn: Connection,
    result: ImportResult,
    snapshot_dir: str | Path | None,
    fill: Callable[[Writer], None],
) -> bool:
    """The cold start on a server without transactional DDL (MySQL): into an EMPTY queue
    table the jobs go straight in, in one transaction, with no TEMPORARY table and no
    INSERT ... SELECT (which cost as much as writing the rows once more). The empty
    table is locked first (no conflict with it is possible); `fill(writer)` writes the
    jobs (the spooled ones, or the first pass's as it reads them) and leaves
    `result.file` with its spool; then the undo snapshot (the spool's keys) is taken
    and the table's checksum, summed on the server, must be the spool's, all before
    the commit. A key the table refuses (the file holds a job twice, or the collation
    calls two keys equal) rolls it all back and False sends the import the general
    way, which settles that by --on-conflict; so does a table that is not empty, or one
    whose engine a rollback does not undo (MyISAM). A failed COMMIT keeps the
    snapshot: the server may have committed."""
    summed = store.dialect.server_checksum
    if summed is None:
        return False
    table = conn_quote(store.engine, store.table_name)

    def direct() -> None:
        # Straight in is all or nothing only where a rollback undoes the rows written.
        if not store.dialect.rolls_back(conn, store.table_name):
            raise _Fallback("the table's engine does not roll back")
        # Not a count: that would lock and read every row of a full table to learn it.
        if not store.dialect.empty_locked(conn, table):
            raise _Fallback("the table is not empty")
        fill(ThreadedWriter(_DirectWriter(store, conn, store.table_name, Refusals())))
        spool = result.file.spool
        if not spool.rows:
            raise _Fallback("no jobs: nothing to write, nothing to undo")
        # The undo before the commit: without it nothing is committed.
        result.snapshot = _take(
            store,
            snapshot_dir,
            functools.partial(_fill_from_spool, spool, iter(())),
            ROWS,
            keep=None,
            reason="before-import",
            create=None,
        )
        result.snapshot_dir = result.snapshot.path.parent
        after = summed(conn, store.table)
        expected = spool.checksum
        if (after.rows, after.hex) != (expected.rows, expected.hex):
            raise VerifyError(
                f"after the import the table holds {after}, the file's jobs {expected}: "
                "rolled back, nothing imported"
            )
        result.added = after.rows
        written.append(True)

    written: list[bool] = []  # direct() ran to its end: what failed after it was the COMMIT
    try:
        _in_one_transaction(conn, result, direct)
    except BaseException as exc:
        if written and result.snapshot is not None:
            # The server may have committed (the connection lost during COMMIT): the
            # undo stays. Only a failure before COMMIT is known to have rolled back.
            if not isinstance(exc, Exception):
                raise  # Ctrl-C: reported as such, the snapshot kept all the same
            raise ConnectError(
                f"the import's commit failed ({one_line(exc)}): whether it took effect is "
                f"unknown, the {result.added} jobs may be in the table; its undo snapshot "
                f"is kept: `queuetool restore {result.snapshot.path}` undoes it"
            ) from exc
        if result.snapshot is not None:  # rolled back: nothing to undo
            result.snapshot.path.unlink(missing_ok=True)
            result.snapshot = result.snapshot_dir = None
        if isinstance(exc, _Fallback):
            return False
        raise
    return True


def _write_spool(spool: Spool, writer: Writer, *, progress: Progress | None) -> None:
    """Every spooled batch through `writer`, then closed; aborted on any failure."""
    done = 0
    try:
        for rows in spool.batches():
            writer.write(rows)
            done += len(rows)
            if progress is not None:
                progress(done, spool.rows)
    except BaseException:
        writer.abort()
        raise
    writer.close()


def _load(
    store: QueueStore,
    conn: Connection,
    source: JobSource,
    result: ImportResult,
    progress: Progress | None,
) -> Checksum:
    """The spooled jobs into the TEMPORARY table; returns the checksum of what it holds."""
    d = store.dialect
    d.drop_table(conn, TEMP, temporary=True)
    # LIKE the queue table (SQLite has one layout): its key, and on PostgreSQL its
    # layout (INTEGER or TEXT), so INSERT ... SELECT needs no cast.
    d.create_staging(conn, store, TEMP, store.table_name, temporary=True)
    if not d.TRANSACTIONAL_DDL:
        conn.commit()  # (DDL commits anyway) the writer runs its own transactions next
    duplicates = Refusals()
    writer = open_writer(store, conn, TEMP, duplicates, result.on_conflict)
    spool = result.file.spool
    _write_spool(spool, writer, progress=progress)
    if duplicates:
        raise _duplicates_found(duplicates, source.name)
    result.duplicates = writer.skipped + writer.replaced
    return combine([spool.checksum], [writer.not_written, writer.removed])


def _duplicates_found(duplicates: Refusals, name: str) -> ProblemsFound:
    return ProblemsFound(
        f"{duplicates.total} jobs of {name} repeat another job's (unique_key, "
        "function) in the file (--on-conflict fail): "
        + "; ".join(line.replace(" conflict:", " duplicate:", 1) for line in duplicates.lines())
        + ". Nothing was imported"
    )


def _conflicts_found(conflicts: int, examples: Sequence[Sequence[object]]) -> ProblemsFound:
    shown = ", ".join(f"{f}/{u}" for f, u in examples)
    return ProblemsFound(
        f"{conflicts} jobs of the file are already in the table (e.g. {shown}): "
        "--on-conflict fail refuses them; skip keeps the table's, replace takes the "
        "file's. Nothing was imported"
    )


# -- SQLite: a bulk copy from the attached spool ---------------------------------------


def _sqlite_copy(store: QueueStore, result: ImportResult, snapshot_dir: str | Path | None) -> None:
    """The spool attached to the queue's connection, and the import in ONE transaction,
    every statement in the engine. No TEMP table and no read-back of the rows: the
    spool's values are the checked rows with their storage classes (str, int, bytes),
    copied by SQLite as they are; counts are checked at every step."""
    spool = result.file.spool
    with store.connect() as conn:
        raw: Any = conn.connection.dbapi_connection  # sqlite3's
        # Filling the key's B-tree in key order needs no large page cache, and SQLite's
        # sorter would take as much again (see dialects/sqlite.py's OrderedLoad).
        raw.execute("PRAGMA main.cache_size = -2000")
        raw.execute("ATTACH DATABASE ? AS qtspool", (str(spool.path),))  # outside a transaction
        try:
            _in_one_transaction(
                conn, result, lambda: _sqlite_apply(store, raw, result, snapshot_dir)
            )
        finally:
            raw.execute("DETACH DATABASE qtspool")


def _sqlite_apply(
    store: QueueStore, raw: Any, result: ImportResult, snapshot_dir: str | Path | None
) -> None:
    spool = result.file.spool
    table = "main." + conn_quote(store.engine, store.table_name)
    cols = ", ".join(COLUMNS)
    on = "q.unique_key = s.unique_key AND q.function_name = s.function_name"
    # Jobs in key order already (an export of a queue whose keys are UUIDs v1, made in
    # time order) are inserted as they come, the B-tree filled left to right either way;
    # others are sorted first (inserted in file order they would land at random places).
    key_order = "" if spool.sorted else " ORDER BY unique_key, function_name"

    def one(sql: str) -> int:
        return int(raw.execute(sql).fetchone()[0])

    incoming = one("SELECT COUNT(*) FROM qtspool.rows")
    if incoming != spool.rows or incoming != spool.checksum.rows:
        raise VerifyError(
            f"the spool holds {incoming} jobs, {spool.rows} expected: nothing imported"
        )
    conflicts = one(f"SELECT COUNT(*) FROM qtspool.rows AS s JOIN {table} AS q ON {on}")
    if not conflicts and not result.dry_run and incoming:
        # The common case (an empty table, or new jobs only): straight in, in key order
        # (the key's B-tree filled left to right); the key refuses a job the file holds
        # twice, and then the general way below settles it by --on-conflict.
        raw.execute("SAVEPOINT qt_import")
        try:
            inserted = raw.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM qtspool.rows{key_order}"
            ).rowcount
        except sqlite3.IntegrityError:
            inserted = None
            raw.execute("ROLLBACK TO qt_import")
        raw.execute("RELEASE qt_import")
        if inserted is not None:
            if inserted != incoming:
                raise VerifyError(f"{inserted} jobs inserted, {incoming} expected: rolled back")
            result.added = inserted
            # The snapshot is the key list, copied from the spool in the engine too.
            result.snapshot = _take(
                store,
                snapshot_dir,
                functools.partial(_keys_from_spool, spool),
                ROWS,
                keep=None,
                reason="before-import",
                create=None,
            )
            result.snapshot_dir = result.snapshot.path.parent
            return
    # Jobs the file holds more than once: skip keeps the first, replace the last.
    distinct = one(
        "SELECT COUNT(*) FROM (SELECT 1 FROM qtspool.rows GROUP BY unique_key, function_name)"
    )
    source = "qtspool.rows"
    if distinct != incoming:
        if result.on_conflict == "fail":
            duplicates = Refusals()
            later = _cursor_rows(
                raw,
                f"SELECT {cols} FROM qtspool.rows WHERE rowid NOT IN (SELECT MIN(rowid) "
                "FROM qtspool.rows GROUP BY unique_key, function_name) ORDER BY rowid",
            )
            for row in later:
                duplicates.add(row, "conflict")
            raise _duplicates_found(duplicates, result.source)
        pick = "MIN" if result.on_conflict == "skip" else "MAX"
        source = (
            f"(SELECT * FROM qtspool.rows WHERE rowid IN (SELECT {pick}(rowid) "
            "FROM qtspool.rows GROUP BY unique_key, function_name))"
        )
        result.duplicates = incoming - distinct
        incoming = distinct
        conflicts = one(f"SELECT COUNT(*) FROM {source} AS s JOIN {table} AS q ON {on}")
    if conflicts and result.on_conflict == "fail":
        if result.dry_run:
            result.conflicts = conflicts
            return
        examples = raw.execute(
            f"SELECT s.function_name, s.unique_key FROM {source} AS s JOIN {table} AS q "
            f"ON {on} LIMIT 5"
        ).fetchall()
        raise _conflicts_found(conflicts, examples)
    new_only = ""
    if conflicts and result.on_conflict == "skip":
        # Left out: gearmand, too, keeps the job it has when the same key comes again.
        new_only = f" WHERE NOT EXISTS (SELECT 1 FROM {table} AS q WHERE {on})"
        result.skipped = conflicts
        incoming -= conflicts
    replacing = conflicts if result.on_conflict == "replace" else 0
    result.replaced, result.added = replacing, incoming - replacing
    if result.dry_run or not incoming:
        return
    q_cols = ", ".join(f"q.{c}" for c in COLUMNS)
    replaced = _cursor_rows(raw, f"SELECT {q_cols} FROM {source} AS s JOIN {table} AS q ON {on}")
    keys = _cursor_rows(raw, f"SELECT unique_key, function_name FROM {source} AS s{new_only}")
    _snapshot(store, result, replaced if replacing else (), keys, snapshot_dir)
    if replacing:
        deleted = raw.execute(
            f"DELETE FROM {table} WHERE rowid IN (SELECT q.rowid FROM {source} AS s "
            f"JOIN {table} AS q ON {on})"
        ).rowcount
        if deleted != replacing:
            raise VerifyError(f"{deleted} jobs deleted to replace {replacing}: rolled back")
    inserted = raw.execute(
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {source} AS s{new_only}{key_order}"
    ).rowcount
    if inserted != incoming:
        raise VerifyError(f"{inserted} jobs inserted, {incoming} expected: rolled back")


def _fill_from_spool(
    spool: Spool, replaced: Iterator[tuple], db: sqlite3.Connection
) -> tuple[int, int]:
    """A snapshot's fill (`snapshot._take`): the rows replaced, and the spool's keys."""
    rows = 0
    for batch in batched(replaced, 5000):
        db.execute("BEGIN")
        insert_exact(db, "rows", batch)
        db.execute("COMMIT")
        rows += len(batch)
    return rows, _keys_from_spool(spool, db)[1]


def _keys_from_spool(spool: Spool, db: sqlite3.Connection) -> tuple[int, int]:
    """A snapshot's fill (`snapshot._take`): no rows, the spool's keys."""
    db.execute("ATTACH DATABASE ? AS qtspool", (str(spool.path),))
    try:
        db.execute("BEGIN")
        keys = db.execute(
            "INSERT INTO keys SELECT unique_key, function_name FROM qtspool.rows"
        ).rowcount
        db.execute("COMMIT")
    finally:
        db.execute("DETACH DATABASE qtspool")
    return 0, keys


def _cursor_rows(raw: Any, sql: str) -> Iterator[tuple]:
    cursor = raw.execute(sql)
    try:
        while batch := cursor.fetchmany(5000):
            yield from batch
    finally:
        cursor.close()


def _snapshot(
    store: QueueStore,
    result: ImportResult,
    replaced: Any,
    keys: Any,
    snapshot_dir: str | Path | None,
) -> None:
    """The undo snapshot: the rows the import replaces and every key it adds or
    replaces (restoring it deletes the added jobs and puts the replaced ones back)."""
    result.snapshot = take_rows(
        store, replaced, keys, snapshot_dir, keep=None, reason="before-import"
    )
    result.snapshot_dir = result.snapshot.path.parent


def _apply(
    store: QueueStore,
    conn: Connection,
    result: ImportResult,
    expected: Checksum,
    snapshot_dir: str | Path | None,
) -> None:
    """Inside the one transaction: conflicts, snapshot, write, read back."""
    table = conn_quote(store.engine, store.table_name)
    temp = conn_quote(store.engine, TEMP)
    on = "q.unique_key = t.unique_key AND q.function_name = t.function_name"
    join = f"FROM {temp} AS t JOIN {table} AS q ON {on}"
    cols = ", ".join(COLUMNS)
    q_cols, t_cols = _read_columns(store, "q"), _read_columns(store, "t")
    conflicts = conn.exec_driver_sql(f"SELECT COUNT(*) {join}").scalar_one()
    incoming = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {temp}").scalar_one()
    if conflicts and result.on_conflict == "fail" and result.dry_run:
        result.conflicts = conflicts
        return
    if conflicts and result.on_conflict == "fail":
        examples = conn.exec_driver_sql(
            f"SELECT t.function_name, t.unique_key {join} LIMIT 5"
        ).all()
        raise _conflicts_found(conflicts, examples)
    if conflicts and result.on_conflict == "skip":
        # Left out: gearmand, too, keeps the job it has when the same key comes again.
        with stream_query(conn, f"SELECT {t_cols} {join}") as rows:
            left_out = Checksum().update(rows)
        expected = combine([expected], [left_out])
        store.dialect.delete_staged_conflicts(conn, temp, table, on)
        result.skipped = conflicts
        incoming -= conflicts
    if expected.rows != incoming:
        raise VerifyError(
            f"{incoming} jobs staged but {expected.rows} expected: rolled back, nothing imported"
        )
    replacing = conflicts if result.on_conflict == "replace" else 0
    result.replaced, result.added = replacing, incoming - replacing
    if result.dry_run or not incoming:
        return

    def replaced_rows() -> Iterator[tuple]:
        if replacing:
            with stream_query(conn, f"SELECT {q_cols} {join}") as rows:
                yield from rows

    def keys() -> Iterator[tuple]:
        with stream_query(conn, f"SELECT unique_key, function_name FROM {temp}") as rows:
            yield from rows

    if not (result.skipped or result.duplicates):
        # Every spooled job goes in: the snapshot's keys are the spool's, copied in
        # SQLite, not read back from the server.
        result.snapshot = _take(
            store,
            snapshot_dir,
            functools.partial(_fill_from_spool, result.file.spool, replaced_rows()),
            ROWS,
            keep=None,
            reason="before-import",
            create=None,
        )
    else:
        result.snapshot = take_rows(
            store, replaced_rows(), keys(), snapshot_dir, keep=None, reason="before-import"
        )
    result.snapshot_dir = result.snapshot.path.parent
    if replacing:
        deleted = store.dialect.delete_replaced(conn, temp, table, on)
        if deleted != replacing:
            raise VerifyError(f"{deleted} jobs deleted to replace {replacing}: rolled back")
    inserted = conn.exec_driver_sql(
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {temp}"
    ).rowcount
    if inserted != incoming:
        raise VerifyError(f"{inserted} jobs inserted, {incoming} expected: rolled back")
    if store.dialect.server_checksum is not None:
        # Summed by the server: the rows are not read back through the driver.
        q = store.table
        mine = sa.tuple_(q.c.unique_key, q.c.function_name).in_(
            sa.text(f"SELECT unique_key, function_name FROM {temp}")
        )
        after = store.dialect.server_checksum(conn, q, mine)
    else:
        with stream_query(conn, f"SELECT {q_cols} {join}") as rows:
            after = Checksum().update(rows)
    if (after.rows, after.hex) != (expected.rows, expected.hex):
        raise VerifyError(
            f"after the import the file's jobs in the table hold {after}, the file "
            f"{expected}: rolled back, nothing imported"
        )


def _read_columns(store: QueueStore, alias: str) -> str:
    """The queue columns of `alias` as the dialect reads them (PostgreSQL's TEXT
    priority and when_to_run cast to integers), so checksums and snapshots see ints."""
    t = queue_table(alias)
    return ", ".join(str(c.compile(store.engine)) for c in t.c)


# -- while gearmand runs ---------------------------------------------------------------


def import_window(
    store: QueueStore,
    source: JobSource,
    snapshot_dir: Path | None = None,
    keep: int | None = DEFAULT_KEEP,
    *,
    checked: tuple[FileCheck, Refusals] | None = None,
    import_options: dict[str, Any] | None = None,
    after_stop: Callable[[], None] | None = None,
    **options: Any,
) -> tuple[Any, ImportResult | None]:
    """`import_jobs` inside the maintenance window: stop, import, check, start, verify,
    or roll back to the import's snapshot. `options` are `window()`'s."""
    own_check = checked is None
    if checked is None:
        checked = check_file(store, source)
    try:
        return _import_window(
            store, source, snapshot_dir, keep, checked, import_options, after_stop, options
        )
    finally:
        if own_check:
            _drop_spool(source, checked[0])


def _import_window(
    store: QueueStore,
    source: JobSource,
    snapshot_dir: Path | None,
    keep: int | None,
    checked: tuple[FileCheck, Refusals],
    import_options: dict[str, Any] | None,
    after_stop: Callable[[], None] | None,
    options: dict[str, Any],
) -> tuple[Any, ImportResult | None]:
    from .window import _NoChange, preflight, window

    preflight(store)
    done: list[ImportResult] = []

    def change() -> Any:
        if after_stop is not None:
            after_stop()
        result = import_jobs(
            store,
            source,
            snapshot_dir,
            keep,
            guard=False,
            checked=checked,
            **(import_options or {}),
        )
        done.append(result)
        return result.undo(store) if result.snapshot is not None else _NoChange()

    outcome = window(store, change, **options)
    return outcome, done[0] if done else None
