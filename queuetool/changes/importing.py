"""`import` and `export`: (re)load a queue offline from a job file, the fast cold start.

Pushing jobs through gearmand's protocol commits once per job (~1,300 jobs/s); writing
the rows into the stopped queue and starting the daemon loads 100,000 in seconds.

An import follows the edits' safety sequence:

1. The file is verified first, whole and streamed (`jobfile.JobSource.verify`): count
   and checksum must be the trailer's. A separate pass, not a check before the commit,
   so that a file cut short or altered is refused before a running daemon is stopped,
   a snapshot taken or a row written; it costs one more read of the file.
   The same pass checks every row against what gearmand can replay on this table
   (`migrate.carry`, the rules `migrate` uses) and lists all refusals together.
2. The rows go into a TEMPORARY table with the queue table's own key (LIKE it on
   MySQL, so keys compare as its collation does), through migrate's batched writer,
   which settles duplicates inside the file by --on-conflict.
3. ONE transaction: conflicts with the table (fail: refused, listed; skip: left out;
   replace: the old rows deleted), the undo snapshot (the rows the import replaces and
   every key it adds or replaces: restoring it deletes the added jobs and puts the
   replaced ones back, see `restore.py`), one INSERT ... SELECT, and the rows with the
   file's keys read back: their checksum must be what the file said, less what was
   left out; then the commit.

While the daemon runs, `import_window` runs the same inside the maintenance window
(stop, import, check, start, verify the reload, or roll back to the snapshot).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..config import DEFAULT_KEEP
from ..errors import ProblemsFound, UsageError, VerifyError
from ..migrate.carry import Carrier, Refusals, Row
from ..migrate.skipped import skipped_sink
from ..migrate.staging import CONFLICT_CHOICES, combine, open_writer
from ..table.checksum import Checksum, stream_query
from ..table.export import check_export_path, format_of, write_jobs
from ..table.filters import JobFilter
from ..table.jobfile import FileCheck, JobSource
from ..table.store import COLUMNS, QueueStore, conn_quote, queue_table
from .apply import Undo
from .snapshot import SnapshotInfo, check_keep, prune, take_rows

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
    store: QueueStore, source: JobSource, sink: Any = None
) -> tuple[FileCheck, Refusals]:
    """The first pass: the file verified against its trailer, and every job checked
    against what gearmand can replay on this table (without the keys still to be made)."""
    file = source.verify()
    refusals = Refusals(sink=sink)
    carrier = _carrier(store, refusals)
    for batch in source.batches():
        for row in batch:
            carrier.carry(_keyed(row, "0"))
    return file, refusals


def _carrier(store: QueueStore, refusals: Refusals) -> Carrier:
    with store.connect(read_only=True) as conn:
        store.require_table(conn)
        charsets = store.dialect.column_charsets(conn, store.table_name)
    return Carrier(
        refusals,
        int32=store.dialect.INT32_WHEN_TO_RUN,
        nul=store.dialect.TEXT_HOLDS_NUL,
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
    if checked is None:
        checked = check_file(store, source)
    result.file, first = checked
    if first and skip_invalid is None:
        raise ProblemsFound(
            f"{first.total} of {result.file.rows} jobs cannot be imported: "
            + "; ".join(first.lines())
            + ". Nothing was imported (--skip-invalid FILE leaves them out, in FILE)"
        )
    sink_path = skip_invalid if skip_invalid is not None and first and not dry_run else None
    if sink_path is None:
        _load_and_apply(store, source, result, Refusals(), snapshot_dir, progress)
    else:
        with skipped_sink(sink_path, lambda p: setattr(result, "skipped_file", p)) as sink:
            _load_and_apply(store, source, result, Refusals(sink=sink), snapshot_dir, progress)
    if result.snapshot is not None and keep is not None:
        prune(result.snapshot.path.parent, keep, result.snapshot)
    result.elapsed = time.monotonic() - started
    return result


def _load_and_apply(
    store: QueueStore,
    source: JobSource,
    result: ImportResult,
    refusals: Refusals,
    snapshot_dir: str | Path | None,
    progress: Progress | None,
) -> None:
    result.refusals = refusals
    with store.connect() as conn:
        store.dialect.prepare_writer(conn.connection.dbapi_connection)
        if store.dialect.TRANSACTIONAL_DDL:
            # Everything in one transaction, the TEMP table too (gone with the connection).
            trans = conn.begin()
            try:
                expected = _load(store, conn, source, result, progress)
                _apply(store, conn, result, expected, snapshot_dir)
            except BaseException:
                trans.rollback()
                raise
            if result.dry_run:
                trans.rollback()
            else:
                trans.commit()
            return
        # The writer commits its batches (into the TEMPORARY table only, which is the
        # connection's own); the queue table is touched in the one transaction after it.
        try:
            expected = _load(store, conn, source, result, progress)
            trans = conn.begin()
            try:
                _apply(store, conn, result, expected, snapshot_dir)
            except BaseException:
                trans.rollback()
                raise
            if result.dry_run:
                trans.rollback()
            else:
                trans.commit()
        finally:
            conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS `{TEMP}`")
            conn.commit()


def _load(
    store: QueueStore,
    conn: Connection,
    source: JobSource,
    result: ImportResult,
    progress: Progress | None,
) -> Checksum:
    """The file's jobs, keyed and checked, into the TEMPORARY table; returns the checksum
    of what it holds."""
    d = store.dialect
    d.drop_table(conn, TEMP, temporary=True)
    # LIKE the queue table (SQLite has one layout): its key, and on PostgreSQL its
    # layout (INTEGER or TEXT), so INSERT ... SELECT needs no cast.
    d.create_staging(conn, store, TEMP, store.table_name, temporary=True)
    carrier = _carrier_for(conn, store, result.refusals)
    if store.backend == "mysql":
        conn.commit()  # (DDL commits anyway) the writer runs its own transactions next
    duplicates = Refusals()
    writer = open_writer(store, conn, TEMP, duplicates, result.on_conflict)
    carried = Checksum()
    done = 0
    try:
        for batch in source.batches():
            rows = []
            for row in batch:
                keyed = _keyed(row)
                if keyed is not row:
                    result.generated += 1
                kept = carrier.carry(keyed)
                if kept is not None:
                    rows.append(kept)
            carried.update(rows)
            if rows:
                writer.write(rows)
            done += len(batch)
            if progress is not None:
                progress(done, result.file.rows)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    result.normalised = carrier.normalised
    if duplicates:
        raise ProblemsFound(
            f"{duplicates.total} jobs of {source.name} repeat another job's (unique_key, "
            "function) in the file (--on-conflict fail): "
            + "; ".join(line.replace(" conflict:", " duplicate:", 1) for line in duplicates.lines())
            + ". Nothing was imported"
        )
    result.duplicates = writer.skipped + writer.replaced
    return combine([carried], [writer.not_written, writer.removed])


def _carrier_for(conn: Connection, store: QueueStore, refusals: Refusals) -> Carrier:
    charsets = store.dialect.column_charsets(conn, store.table_name)
    return Carrier(
        refusals,
        int32=store.dialect.INT32_WHEN_TO_RUN,
        nul=store.dialect.TEXT_HOLDS_NUL,
        key_charset=charsets[0],
        function_charset=charsets[1],
    )


def _apply(
    store: QueueStore,
    conn: Connection,
    result: ImportResult,
    expected: Checksum,
    snapshot_dir: str | Path | None,
) -> None:
    """Inside the one transaction: conflicts, snapshot, write, read back."""
    sqlite = store.backend == "sqlite"
    table = conn_quote(store.engine, store.table_name)
    temp = conn_quote(store.engine, TEMP)
    if sqlite:
        temp = f"temp.{temp}"
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
        shown = ", ".join(f"{f}/{u}" for f, u in examples)
        raise ProblemsFound(
            f"{conflicts} jobs of the file are already in the table (e.g. {shown}): "
            "--on-conflict fail refuses them; skip keeps the table's, replace takes the "
            "file's. Nothing was imported"
        )
    if conflicts and result.on_conflict == "skip":
        # Left out: gearmand, too, keeps the job it has when the same key comes again.
        with stream_query(conn, f"SELECT {t_cols} {join}") as rows:
            left_out = Checksum().update(rows)
        expected = combine([expected], [left_out])
        if sqlite:
            conn.exec_driver_sql(f"DELETE FROM {temp} WHERE rowid IN (SELECT t.rowid {join})")
        elif store.backend == "mysql":
            conn.exec_driver_sql(f"DELETE t {join}")
        else:
            conn.exec_driver_sql(f"DELETE FROM {temp} AS t USING {table} AS q WHERE {on}")
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

    result.snapshot = take_rows(
        store, replaced_rows(), keys(), snapshot_dir, keep=None, reason="before-import"
    )
    result.snapshot_dir = result.snapshot.path.parent
    if replacing:
        if sqlite:
            deleted = conn.exec_driver_sql(
                f"DELETE FROM {table} WHERE rowid IN (SELECT q.rowid {join})"
            ).rowcount
        elif store.backend == "mysql":
            deleted = conn.exec_driver_sql(f"DELETE q {join}").rowcount
        else:
            deleted = conn.exec_driver_sql(
                f"DELETE FROM {table} AS q USING {temp} AS t WHERE {on}"
            ).rowcount
        if deleted != replacing:
            raise VerifyError(f"{deleted} jobs deleted to replace {replacing}: rolled back")
    order = " ORDER BY unique_key, function_name" if sqlite else ""
    inserted = conn.exec_driver_sql(
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {temp}{order}"
    ).rowcount
    if inserted != incoming:
        raise VerifyError(f"{inserted} jobs inserted, {incoming} expected: rolled back")
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
    from .window import _NoChange, preflight, window

    if checked is None:
        checked = check_file(store, source)
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
